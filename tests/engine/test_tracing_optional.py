"""flowrunner without OpenTelemetry: a process where its packages cannot be imported at all.

Each test runs `flowrun run` in a subprocess whose import system refuses every ``opentelemetry``
module (a finder first on ``sys.meta_path``) and notes each attempt. With tracing off, a run
with an outbound HTTP call succeeds and nothing so much as tries to import the packages; with
``FLOWRUN_OTEL=true`` the command stops with one line naming what to install. (Libraries may
look for the packages themselves — redis-py 8 does, for metrics of its own — so the tests name
the module that tried.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.conftest import ROOT

BLOCKED = """
import atexit, json, os, sys

attempted = []


class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            frame = sys._getframe(1)  # the module whose import statement this is
            while frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            attempted.append(frame.f_globals.get("__name__"))
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoOpenTelemetry())


@atexit.register
def report():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    with open(os.environ["REPORT"], "w") as out:
        json.dump({"attempted": attempted, "loaded": loaded}, out)


from engine.cli import main

main()
"""

FLOW = """flow: partner-call
steps:
  - id: tell
    call:
      http: {{method: POST, url: "{url}"}}
"""


def ours(module: str | None) -> bool:
    return (module or "").split(".")[0] in ("engine", "connectors", "worker")


def flowrun_blocked(tmp_path: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                   dict[str, list[str]]]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "partner-call.yaml").write_text(FLOW.format(url=url), encoding="utf-8")
    (tmp_path / "order.json").write_text('{"order": 1}', encoding="utf-8")
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED, encoding="utf-8")
    report = tmp_path / "report.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWRUN_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, str(script), "run", "partner-call", "-i", "order.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**clean, "PYTHONPATH": str(ROOT), "REPORT": str(report),
             "FLOWRUN_HOME": str(tmp_path / "home"), **env})
    return done, json.loads(report.read_text(encoding="utf-8"))


def test_without_the_packages_a_run_calls_its_partner_and_never_tries_them(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders", method="POST").respond_with_json({"ok": True})
    done, report = flowrun_blocked(tmp_path, httpserver.url_for("/orders"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    request, _ = httpserver.log[0]
    assert "traceparent" not in request.headers
    assert [m for m in report["attempted"] if ours(m)] == []
    assert report["loaded"] == []


def test_tracing_switched_on_without_the_packages_says_what_to_install(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    done, report = flowrun_blocked(tmp_path, httpserver.url_for("/orders"), FLOWRUN_OTEL="true")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: FLOWRUN_OTEL is on but OpenTelemetry is not installed (opentelemetry is "
        "missing): pip install 'flowrunner-ipaas[otel]'"]
    assert report["loaded"] == []
    assert [m for m in report["attempted"] if ours(m)] == ["engine.otel"]
    assert httpserver.log == []
