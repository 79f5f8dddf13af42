"""Tracing configured the standard way: `flowrun run` in a subprocess with FLOWRUN_OTEL and the
OpenTelemetry SDK's own OTEL_* variables — a working exporter, and the one-line errors of a
setting that cannot be used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLOW = """flow: hello
steps:
  - id: note
    log: {message: '"hello"'}
"""


def flowrun_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "m.json").write_text("{}", encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWRUN_", "OTEL_"))}
    return subprocess.run([sys.executable, "-m", "engine.cli", "run", "hello", "-i", "m.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**clean, "PYTHONPATH": str(ROOT),
                               "FLOWRUN_HOME": str(tmp_path / "home"), **env})


def test_the_console_exporter_prints_the_runs_spans(tmp_path: Path) -> None:
    done = flowrun_run(tmp_path, FLOWRUN_OTEL="true", OTEL_TRACES_EXPORTER="console",
                       OTEL_SERVICE_NAME="hello-tracing")
    assert done.returncode == 0, done.stderr
    for name in ("intake hello", "run hello", "step note"):
        assert f'"name": "{name}"' in done.stdout
    assert '"service.name": "hello-tracing"' in done.stdout


@pytest.mark.parametrize(("env", "line"), [
    ({"FLOWRUN_OTEL": "true", "OTEL_TRACES_EXPORTER": "zipkn"},
     "Error: OpenTelemetry could not be set up from the environment "
     "(OTEL_TRACES_EXPORTER='zipkn', OTEL_EXPORTER_OTLP_PROTOCOL='http/protobuf'): Requested "
     "component 'zipkn' not found in entry point 'opentelemetry_traces_exporter'"),
    ({"FLOWRUN_OTEL": "yes-please"},
     "Error: bad settings: FLOWRUN_OTEL: Input should be a valid boolean, unable to interpret "
     "input"),
], ids=["unknown-exporter", "not-a-boolean"])
def test_a_setting_that_cannot_be_used_is_one_line(tmp_path: Path, env: dict[str, str],
                                                   line: str) -> None:
    done = flowrun_run(tmp_path, **env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [line]
