"""The garbage collector of long-running processes: start-up frozen, collections rarer; and
``FLOWRUN_GC_TUNING=false`` keeps Python's defaults. Checked in fresh interpreters and on a
real `flowrun serve`, whose /metrics says how many objects it froze."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from engine import gc_tuning
from tests.engine.server_support import serve_process

ROOT = Path(__file__).resolve().parents[2]
FLOW = """\
flow: kept
trigger:
  webhook:
    path: /hooks/kept
steps:
  - id: keep
    set: {kept: 'true'}
"""
PROBE = ("import gc, json; from engine import gc_tuning; "
         "before = gc.get_threshold(); gc_tuning.settle({enabled}); "
         "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))")


def _settled(enabled: bool) -> tuple[list[int], list[int], int]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(enabled=enabled)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    before, after, frozen = json.loads(done.stdout)
    return before, after, frozen


def test_settle_freezes_start_up_and_sets_the_thresholds() -> None:
    before, after, frozen = _settled(True)
    assert before == [700, 10, 10]  # Python's defaults, in a fresh interpreter
    assert after == list(gc_tuning.THRESHOLDS)
    assert frozen > 1000  # the modules imported so far, at least


def test_settle_disabled_changes_nothing() -> None:
    before, after, frozen = _settled(False)
    assert after == before == [700, 10, 10]
    assert frozen == 0


def _frozen_objects(tmp_path: Path, **env: str) -> float:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "kept.yaml").write_text(FLOW, encoding="utf-8")
    env = {**os.environ, "FLOWRUN_HOME": str(tmp_path / "home"), **env}
    with serve_process(tmp_path / "flows", env, "--no-access-log") as (url, _), \
            requests.Session() as http:
        http.trust_env = False
        # the server takes a delivery as before
        assert http.post(url + "/hooks/kept", json={"n": 1}, timeout=10).status_code == 202
        lines = [line for line in http.get(url + "/metrics", timeout=10).text.splitlines()
                 if line.startswith("flowrun_gc_frozen_objects ")]
    assert len(lines) == 1, lines
    return float(lines[0].split()[1])


@pytest.mark.parametrize("tuning", ["default", "false"])
def test_flowrun_serve_freezes_its_start_up_unless_told_not_to(tmp_path: Path,
                                                               tuning: str) -> None:
    env = {} if tuning == "default" else {"FLOWRUN_GC_TUNING": tuning}
    frozen = _frozen_objects(tmp_path, **env)
    if tuning == "default":
        assert frozen > 10_000  # the server's modules, flows and clients
    else:
        assert frozen == 0
