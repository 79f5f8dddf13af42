"""A secret used by a call must never show: not in logs, run records, dead letters, CLI output.

The secret (FLOWRUN_SECRET_ERP_KEY) goes into a header, the URL's query (in the URL text and as
a parameter) and the bearer token of calls to a loopback server that echoes everything it got
back in its error answer. Then every output is searched for it: log records at DEBUG (all
loggers but the test server's own), run records and dead-letter entries as stored (the raw
SQLite files included), error messages, and stdout/stderr of `flowrun run -v --trace`,
`flowrun runs`, `flowrun dlq list/show/replay`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.cli import main
from engine.settings import Settings
from engine.store.base import DeadLetterFilter, RunFilter

SECRET = "Zq9-erp-KEY-7741xy"


def echo(request: Request) -> Response:
    """Everything the request carried, back in a 500 answer (a careless downstream)."""
    return Response(json.dumps({"headers": dict(request.headers), "url": request.url,
                                "args": request.args.to_dict()}),
                    status=500, content_type="application/json")


def leaky_flow(server: HTTPServer) -> str:
    return f"""flow: leaky
defaults:
  retry: {{max_attempts: 2, backoff: {{initial: 10ms, jitter: none}}}}
steps:
  - id: lookup
    call:
      http:
        method: GET
        url: "{server.url_for('/ok')}?key=${{secret:ERP_KEY}}"
        headers: {{X-Api-Key: "${{secret:ERP_KEY}}"}}
    output: vars.lookup
  - id: send
    call:
      http:
        method: POST
        url: "{server.url_for('/fail')}?sig=${{secret:ERP_KEY}}"
        headers: {{X-Api-Key: "${{secret:ERP_KEY}}", X-Trace: "k={{{{ $string(order) }}}}"}}
        params: {{token: "${{secret:ERP_KEY}}"}}
        auth: {{bearer: "${{secret:ERP_KEY}}"}}
"""


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("FLOWRUN_SECRET_ERP_KEY", SECRET)
    httpserver.expect_request("/ok").respond_with_data('{"found": true}',
                                                       content_type="application/json")
    httpserver.expect_request("/fail").respond_with_handler(echo)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "leaky.yaml").write_text(leaky_flow(httpserver), encoding="utf-8")
    (tmp_path / "order.json").write_text('{"order": 42}', encoding="utf-8")
    return {"home": tmp_path / "home", "flows": flows, "tmp": tmp_path, "server": httpserver}


def stored_bytes(home: Path) -> bytes:
    """The state database as it is on disk (main file, WAL and shared memory)."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("state.db*")))


def server_saw_the_secret(server: HTTPServer) -> None:
    """The secret really was sent (so its absence elsewhere means redaction, not a no-op)."""
    fail = [r for r, _ in server.log if r.path == "/fail"]
    assert fail, "the failing call was never made"
    request = fail[0]
    assert request.headers["X-Api-Key"] == SECRET
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.args["sig"] == SECRET and request.args["token"] == SECRET


def test_nothing_in_process_shows_the_secret(world: dict[str, Any],
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = App(Settings(home=world["home"], flows=world["flows"]))
    try:
        app.executor.start()
        accepted = app.accept(app.flows.flows["leaky"], {"order": 42})
        state, = app.wait_for(accepted.run_id, timeout=10)
        assert state.status == "dead_lettered"
        entry, = app.store.list_dead_letters(DeadLetterFilter())
    finally:
        app.executor.stop(timeout=2)
        app.store.close()
    server_saw_the_secret(world["server"])
    assert "answered 500" in entry.message
    assert entry.reason["detail"]["body"]  # the echo was kept — with the secret masked
    assert "***" in entry.reason["detail"]["body"]

    outputs = {
        "run record": json.dumps(state.to_dict()),
        "dead-letter entry": json.dumps(entry.to_dict()),
        "error message": entry.message + json.dumps(state.error),
        "attempt errors": json.dumps(entry.reason["attempts"]),
    }
    ours = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any(r.levelno == logging.DEBUG for r in ours)
    for record in ours:
        outputs[f"log {record.name}: {record.msg!r}"] = record.getMessage() + repr(
            getattr(record, "exc_text", "") or "")
    for where, text in outputs.items():
        assert SECRET not in text, where
    assert SECRET.encode() not in stored_bytes(world["home"])


def flowrun(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWRUN_HOME": str(world["home"]),
           "FLOWRUN_FLOWS": str(world["flows"])}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env,
                          cwd=world["tmp"], capture_output=True, text=True, timeout=60)


def cli(world: dict[str, Any], *args: str) -> Result:
    """A read-only `flowrun` command in this process (same command, same settings)."""
    result = CliRunner().invoke(main, list(args), env={"FLOWRUN_HOME": str(world["home"]),
                                                       "FLOWRUN_FLOWS": str(world["flows"])})
    assert result.exit_code == 0, result.output
    return result


def test_no_command_output_shows_the_secret(world: dict[str, Any]) -> None:
    outputs: dict[str, str] = {}
    ran = flowrun(world, "-v", "run", "leaky", "--flows", str(world["flows"]),
                  "--input", str(world["tmp"] / "order.json"), "--trace")
    assert ran.returncode == 1, ran.stderr
    assert "dead_lettered" in ran.stdout and "DEBUG" in ran.stderr
    outputs["run"] = ran.stdout + ran.stderr
    server_saw_the_secret(world["server"])

    runs = cli(world, "runs", "--json")
    run_id = json.loads(runs.stdout)[0]["run_id"]
    outputs["runs --json"] = runs.output
    outputs["runs"] = cli(world, "runs").output
    shown = cli(world, "runs", "show", run_id, "--json")
    assert run_id in shown.stdout
    outputs["runs show --json"] = shown.output
    outputs["runs show"] = cli(world, "runs", "show", run_id).output
    listed = cli(world, "dlq", "list", "--json")
    entry_id = json.loads(listed.stdout)[0]["id"]
    outputs["dlq list --json"] = listed.output
    outputs["dlq list"] = cli(world, "dlq", "list").output
    entry = cli(world, "dlq", "show", entry_id)
    assert "answered 500" in entry.stdout
    outputs["dlq show"] = entry.output
    replay = flowrun(world, "-v", "dlq", "replay", entry_id)
    assert replay.returncode == 1 and "dead_lettered" in replay.stdout
    outputs["dlq replay"] = replay.stdout + replay.stderr

    for where, text in outputs.items():
        assert SECRET not in text, f"{where}:\n{text}"
    assert SECRET.encode() not in stored_bytes(world["home"])

    # and the records say what happened, with the secret masked
    app = App(Settings(home=world["home"], flows=world["flows"]))
    try:
        states = app.store.list_runs(RunFilter(flow="leaky"))
        assert {s.status for s in states} == {"dead_lettered"}
        assert all("***" in (s.error or {})["message"] for s in states)
    finally:
        app.store.close()
