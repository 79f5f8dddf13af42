"""Kill the process with work pending, start again: the recorded runs resume and complete.

A real child process (``python -c`` with an `App`) takes a message and starts calling a loopback
server; the test SIGKILLs it — while the run waits for its retry, or in the middle of a call —
then starts a new `App` on the same FLOWRUN_HOME. The run resumes from its checkpoint, keeps its
history, and a step that had already succeeded is not called again. On the embedded SQLite store
and on PostgreSQL alone (FLOWRUN_DATABASE_URL with the embedded executor) alike.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.records import RunState
from engine.settings import Settings
from engine.store.base import DeadLetterFilter, RunFilter
from engine.store.postgres import PostgresStore
from engine.store.sqlite import SqliteStore
from tests.conftest import wait_until

CHILD = """
import sys, time
from pathlib import Path
from engine.app import App
from engine.settings import Settings

app = App(Settings(home=Path(sys.argv[1]), flows=Path(sys.argv[2])))
accepted = app.accept(app.flows.flows["orders"], {"order": 7})
app.executor.start(resume=False)
print(accepted.run_id, flush=True)
time.sleep(120)
"""

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """Answers each path from a script of statuses (the last one repeats) and records arrivals."""

    def __init__(self, slow_first: str = "", **scripts: list[int]):
        self.scripts = scripts
        self.slow_first = slow_first  # the first request to this path is answered after 0.5 s
        self.requests: dict[str, list[tuple[float, str]]] = {path: [] for path in scripts}
        self.slow_arrived = threading.Event()

    def __call__(self, request: Request) -> Response:
        path = request.path.strip("/")
        seen = self.requests[path]
        seen.append((time.time(), request.headers.get("Idempotency-Key", "")))
        if len(seen) == 1 and path == self.slow_first:
            self.slow_arrived.set()
            time.sleep(0.5)
        script = self.scripts[path]
        status = script[min(len(seen), len(script)) - 1]
        return Response(json.dumps({"n": len(seen)}), status=status,
                        content_type="application/json")


@pytest.fixture(params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path,
          httpserver: HTTPServer) -> Iterator[Callable[..., dict[str, object]]]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" \
        else None
    apps: list[App] = []
    children: list[subprocess.Popen[str]] = []

    def make(server: Server, backoff: str) -> dict[str, object]:
        for path in server.scripts:
            httpserver.expect_request(f"/{path}").respond_with_handler(server)
        folder = tmp_path / "flows"
        folder.mkdir()
        (folder / "orders.yaml").write_text(f"""flow: orders
defaults:
  retry: {{max_attempts: 4, backoff: {{initial: {backoff}, jitter: none}}}}
steps:
  - id: reserve
    call:
      http: {{method: POST, url: "{httpserver.url_for('/reserve')}"}}
    output: vars.reserved
  - id: confirm
    call:
      http: {{method: POST, url: "{httpserver.url_for('/confirm')}"}}
    output: vars.confirmed
""", encoding="utf-8")
        home = tmp_path / "home"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWRUN_DATABASE_URL": database_url or ""}
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(folder)],
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        children.append(child)
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id, "the child process did not accept the message"

        def restart() -> App:
            app = App(Settings(home=home, flows=folder, database_url=database_url))
            apps.append(app)
            return app

        def recorded(run_id: str) -> RunState | None:
            store = PostgresStore(database_url) if database_url else \
                SqliteStore(home / "state.db")
            try:
                return store.get_run(run_id)
            finally:
                store.close()

        return {"child": child, "run_id": run_id, "home": home, "restart": restart,
                "recorded": recorded}

    yield make
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
    for app in apps:
        app.executor.stop(timeout=2)
        app.store.close()


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait(5) == -signal.SIGKILL


def test_a_run_waiting_for_its_retry_resumes_after_sigkill(
        setup: Callable[..., dict[str, object]]) -> None:
    server = Server(reserve=[200], confirm=[503, 200])
    ctx = setup(server, backoff="1s")
    run_id, recorded = str(ctx["run_id"]), ctx["recorded"]
    wait_until(lambda: (recorded(run_id) or RunState("", "", "", {}, {})).status
               == "retrying")
    kill(ctx["child"])  # type: ignore[arg-type]
    killed_at = time.time()

    before = recorded(run_id)
    assert before is not None and before.status == "retrying"
    assert before.due_at is not None and before.due_at > killed_at  # the retry was still ahead
    assert [a["status"] for a in before.attempts] == [503]
    assert len(server.requests["confirm"]) == 1

    app = ctx["restart"]()  # type: ignore[operator]
    app.executor.start()
    state, = app.wait_for(run_id, timeout=15)
    assert state.status == "succeeded", state.error
    # resumed from the checkpoint: the step that had succeeded was not called again
    assert len(server.requests["reserve"]) == 1
    confirms = server.requests["confirm"]
    assert len(confirms) == 2
    assert confirms[1][0] - confirms[0][0] >= 1.0  # the back-off held across the restart
    assert confirms[0][1] == confirms[1][1] == f"{run_id}-confirm"
    # nothing recorded was lost
    assert state.created_at == before.created_at
    assert state.original == {"body": {"order": 7}, "headers": {}}
    assert [(s["id"], s["status"], s["attempts"]) for s in state.steps] == [
        ("reserve", "succeeded", 1), ("confirm", "succeeded", 2)]
    assert state.envelope["vars"]["reserved"]["status"] == 200
    assert state.envelope["vars"]["confirmed"]["body"] == {"n": 2}
    assert app.store.get_flow_version("orders", state.flow_version) is not None
    assert app.store.list_dead_letters(DeadLetterFilter(status=None)) == []
    assert [s.run_id for s in app.store.list_runs(RunFilter())] == [run_id]


def test_a_run_killed_in_the_middle_of_a_call_is_done_again_with_the_same_key(
        setup: Callable[..., dict[str, object]]) -> None:
    server = Server(slow_first="reserve", reserve=[200], confirm=[200])
    ctx = setup(server, backoff="100ms")
    run_id, recorded = str(ctx["run_id"]), ctx["recorded"]
    assert server.slow_arrived.wait(10)
    kill(ctx["child"])  # type: ignore[arg-type]
    before = recorded(run_id)
    assert before is not None and before.status == "queued" and before.steps == []

    app = ctx["restart"]()  # type: ignore[operator]
    app.executor.start()
    state, = app.wait_for(run_id, timeout=15)
    assert state.status == "succeeded", state.error
    # at least once: the interrupted call is made again, with the same Idempotency-Key
    reserves = server.requests["reserve"]
    assert len(reserves) == 2
    assert reserves[0][1] == reserves[1][1] == f"{run_id}-reserve"
    assert len(server.requests["confirm"]) == 1


def test_a_run_killed_during_a_later_step_keeps_the_earlier_steps_output(
        setup: Callable[..., dict[str, object]]) -> None:
    """The checkpoint after a call holds the envelope with that call's output: resumed after
    a kill in the next step, the run still has it, and the first call is not repeated."""
    server = Server(slow_first="confirm", reserve=[200], confirm=[200])
    ctx = setup(server, backoff="100ms")
    run_id, recorded = str(ctx["run_id"]), ctx["recorded"]
    assert server.slow_arrived.wait(10)
    kill(ctx["child"])  # type: ignore[arg-type]
    before = recorded(run_id)
    assert before is not None and before.status == "running" and before.position == 1
    assert before.envelope["vars"]["reserved"]["status"] == 200

    app = ctx["restart"]()  # type: ignore[operator]
    app.executor.start()
    state, = app.wait_for(run_id, timeout=15)
    assert state.status == "succeeded", state.error
    assert len(server.requests["reserve"]) == 1
    assert len(server.requests["confirm"]) == 2
    assert state.envelope["vars"]["reserved"]["body"] == {"n": 1}
    assert [s["id"] for s in state.steps] == ["reserve", "confirm"]


def test_a_run_is_never_recorded_as_ended_without_its_dead_letter(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    """Every save of a dead-lettered run carries its entry (one transaction): a crash between
    two saves can never leave a dead-lettered run whose message is in no dead-letter entry."""
    httpserver.expect_request("/erp").respond_with_data("no", status=400)
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "orders.yaml").write_text(f"""flow: orders
steps:
  - id: send
    call:
      http: {{method: POST, url: "{httpserver.url_for('/erp')}"}}
""", encoding="utf-8")
    app = App(Settings(home=tmp_path / "home", flows=folder))
    saves: list[tuple[str, bool]] = []
    save_run = app.store.save_run

    def recording(state: RunState, **kwargs: object) -> None:
        saves.append((state.status, kwargs.get("dead_letter") is not None))
        save_run(state, **kwargs)  # type: ignore[arg-type]

    app.store.save_run = recording  # type: ignore[method-assign]
    try:
        accepted = app.accept(app.flows.flows["orders"], {"order": 1})
        state = app.executor.process(accepted.run_id)
        assert state is not None and state.status == "dead_lettered"
        assert saves == [("dead_lettered", True)]
    finally:
        app.store.close()
