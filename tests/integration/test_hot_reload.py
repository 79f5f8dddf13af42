"""Hot reload: a changed flow file takes new runs; runs in flight finish on their version.

The flow's first step is a call the downstream holds until the test lets go, so one run is in
flight while the file changes under it. Then an invalid edit is refused: logged with file, line
and column, and the version before keeps taking runs.

On Celery the workers do not watch the files here (``FLOWRUN_RELOAD_INTERVAL=0``): the producer
reloads, and a worker rebuilds the version a run names from the text kept in Redis.
"""

from __future__ import annotations

import logging
import threading

import pytest

from engine.app import App
from tests.integration.conftest import Downstream, wait_until
from tests.integration.test_celery_limits import Mode, mode  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

FLOW = """
flow: greet
steps:
  - id: hold
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/hold"}
    output: vars.answer
  - id: shape
    transform: '{"greeting": "%s " & name}'
"""

# a misspelt key on line 10 (the text starts with a newline), column 5: refused
INVALID = FLOW % "Hi" + "    retyr: {max_attempts: 3}\n"


def write(on: Mode, text: str) -> None:
    (on.cluster.flows / "greet.yaml").write_text(text, encoding="utf-8")


def current(app: App) -> str:
    return app.flows.flows["greet"].version


def test_new_runs_take_the_new_version_and_an_invalid_edit_is_refused(
        mode: Mode,  # noqa: F811 - the fixture imported above
        downstream: Downstream, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FLOWRUN_RELOAD_INTERVAL", "0.1")  # this process's watcher
    mode.cluster.env["FLOWRUN_RELOAD_INTERVAL"] = "0"  # the workers': versions come from Redis
    write(mode, FLOW % "Hello")
    release = threading.Event()

    def hold_first(count: int) -> None:
        if count == 1:
            release.wait(30)

    downstream.hooks["/hold"] = hold_first
    app = mode.start(downstream)
    app.executor.start(resume=False)  # starts the watcher (already started when embedded)
    old = current(app)

    in_flight = app.accept(app.flows.flows["greet"], {"name": "Ada"}).run_id
    wait_until(lambda: downstream.calls("/hold"), 30, "the first run to be in its call")
    write(mode, FLOW % "Good day")
    new = wait_until(lambda: current(app) != old and current(app), 10, "the reload")
    fresh = app.accept(app.flows.flows["greet"], {"name": "Grace"}).run_id
    release.set()

    first, second = (app.wait_for(r, timeout=30)[0] for r in (in_flight, fresh))
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert first.envelope["body"] == {"greeting": "Hello Ada"}  # finished on its version
    assert second.envelope["body"] == {"greeting": "Good day Grace"}
    assert (first.flow_version, second.flow_version) == (old, new)
    assert [s.envelope["meta"]["flow_version"] for s in (first, second)] == [old, new]
    assert app.store.get_flow_version("greet", old) == FLOW % "Hello"

    caplog.set_level(logging.INFO, logger="flowrunner.reload")
    write(mode, INVALID)
    path = mode.cluster.flows / "greet.yaml"
    wait_until(lambda: "flow change refused" in caplog.text, 10, "the invalid edit to be seen")
    problems = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"{path}:10:5" in line and "retyr" in line for line in problems), problems
    assert current(app) == new
    after = app.accept(app.flows.flows["greet"], {"name": "Alan"}).run_id
    state = app.wait_for(after, timeout=30)[0]
    assert (state.status, state.flow_version) == ("succeeded", new)
    assert state.envelope["body"] == {"greeting": "Good day Alan"}
