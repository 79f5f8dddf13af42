"""Retry and failure handling at run time, through `App` and the embedded executor.

The flows call real loopback servers (pytest-httpserver); the server's own clock shows when each
attempt arrived, so back-off and Retry-After are checked as the downstream sees them. Lower
bounds of deliberate delays only — no performance assertions.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.dsl.retry import RetryPolicy
from engine.records import RunState
from engine.retry import base_delay, jittered, next_delay
from engine.settings import Settings
from engine.store.base import DeadLetterFilter
from engine.types import StepError

MakeApp = Callable[..., App]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    """An App over flow files written into tmp_path, its executor started; stopped afterwards."""
    apps: list[App] = []

    def make(flows: dict[str, str], workers: int = 4, start: bool = True) -> App:
        folder = tmp_path / "flows"
        folder.mkdir(exist_ok=True)
        for name, text in flows.items():
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        app = App(Settings(home=tmp_path / "home", flows=folder, workers=workers))
        assert app.flows.ok, [str(p) for p in app.flows.problems.errors]
        apps.append(app)
        if start:
            app.executor.start()
        return app

    yield make
    for app in apps:
        app.executor.stop(timeout=2)
        app.store.close()


class Recorder:
    """Answers requests from a script of (status, headers, body) and records their arrival."""

    def __init__(self, *answers: tuple[int, dict[str, str], str]):
        self.answers = list(answers)
        self.arrivals: list[float] = []
        self.bodies: list[str] = []

    def __call__(self, request: Request) -> Response:
        self.arrivals.append(time.time())
        self.bodies.append(request.get_data(as_text=True))
        index = min(len(self.arrivals), len(self.answers)) - 1
        status, headers, body = self.answers[index]
        return Response(body, status=status, headers=headers, content_type="application/json")

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


def call_flow(url: str, *, retry: str = "{max_attempts: 3, backoff: {initial: 0.05s, "
              "jitter: none}}", on_failure: str = "dead_letter", flow_id: str = "orders",
              extra_steps: str = "") -> str:
    return f"""
flow: {flow_id}
defaults:
  retry: {retry}
  on_failure: {on_failure}
steps:
  - id: send
    call:
      http: {{method: POST, url: "{url}"}}
    output: vars.resp
{extra_steps}"""


def finished(app: App, run_id: str, timeout: float = 15.0) -> list[RunState]:
    tree = app.wait_for(run_id, timeout=timeout)
    assert tree and all(s.done for s in tree), [(s.run_id, s.status) for s in tree]
    return tree


def run(app: App, body: object, flow: str = "orders") -> list[RunState]:
    accepted = app.accept(app.flows.flows[flow], body)
    return finished(app, accepted.run_id)


# -- retried, then succeeded -------------------------------------------------------------------
def test_503_then_200_is_retried_and_succeeds(make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((503, {}, '{"busy": true}'), (200, {}, '{"id": 9}'))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"))})
    state, = run(app, {"n": 1})
    assert state.status == "succeeded", state.error
    assert len(server.arrivals) == 2
    assert server.gaps()[0] >= 0.05
    record = app.store.get_run(state.run_id)
    assert record is not None
    assert record.steps == [{**record.steps[0], "id": "send", "kind": "call",
                             "status": "succeeded", "attempts": 2}]
    assert record.envelope["vars"]["resp"]["body"] == {"id": 9}
    assert app.store.list_dead_letters(DeadLetterFilter()) == []


def test_a_run_accepted_before_start_is_not_attempted_twice_at_once(
        make_app: MakeApp, httpserver: HTTPServer) -> None:
    """Accepted before the executor started, the run is queued AND resumed on start; still,
    its attempts keep the back-off and no attempt is made twice."""
    server = Recorder((503, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 3, backoff: {initial: 0.4s, multiplier: 1, jitter: none}}")},
        start=False)
    accepted = app.accept(app.flows.flows["orders"], {})
    app.executor.start()
    state, = finished(app, accepted.run_id)
    assert state.status == "dead_lettered"
    assert len(server.arrivals) == 3
    assert all(gap >= 0.4 for gap in server.gaps()), server.gaps()
    assert [a["attempt"] for a in (state.error or {})["attempts"]] == [1, 2, 3]


def test_retry_after_is_respected(make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((429, {"Retry-After": "2"}, '{"slow": "down"}'), (200, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 3, backoff: {initial: 0.01s, jitter: none}}")})
    state, = run(app, {})
    assert state.status == "succeeded", state.error
    assert len(server.arrivals) == 2
    assert server.gaps()[0] >= 2.0


def test_retry_after_is_ignored_when_the_policy_says_so(make_app: MakeApp,
                                                        httpserver: HTTPServer) -> None:
    server = Recorder((429, {"Retry-After": "30"}, "{}"), (200, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 2, respect_retry_after: false, backoff: {initial: 0.01s}}")})
    state, = run(app, {})
    assert state.status == "succeeded", state.error
    assert len(server.arrivals) == 2


# -- not retried -------------------------------------------------------------------------------
def test_400_is_not_retried_and_dead_lettered_with_the_truncated_body(
        make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((400, {}, "E" * 4000))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"),
                                        retry="{max_attempts: 5}")})
    state, = run(app, {"order": "A1"})
    assert state.status == "dead_lettered"
    assert len(server.arrivals) == 1
    entry, = app.store.list_dead_letters(DeadLetterFilter(flow="orders"))
    assert entry.run_id == state.run_id and entry.step == "send"
    assert entry.reason["status"] == 400
    assert entry.reason["gave_up"] == "not retryable"
    assert entry.reason["detail"]["body"] == "E" * 4000
    assert entry.original == {"body": {"order": "A1"}, "headers": {}}


def test_give_up_on_wins_over_retry_on(make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((503, {}, "{}"), (200, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 4, give_up_on: [503], backoff: {initial: 0.01s}}")})
    state, = run(app, {})
    assert state.status == "dead_lettered"
    assert len(server.arrivals) == 1
    assert (state.error or {})["gave_up"] == "not retryable"


def test_a_status_outside_retry_on_is_not_retried(make_app: MakeApp,
                                                  httpserver: HTTPServer) -> None:
    server = Recorder((500, {}, "{}"), (200, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 4, retry_on: {http_status: [503]}, backoff: {initial: 0.01s}}")})
    state, = run(app, {})
    assert state.status == "dead_lettered"
    assert len(server.arrivals) == 1


def test_attempts_exhausted_dead_letter_keeps_every_attempt(make_app: MakeApp,
                                                            httpserver: HTTPServer) -> None:
    server = Recorder((503, {}, "{}"), (502, {}, "{}"), (504, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"))})
    state, = run(app, {})
    assert state.status == "dead_lettered"
    entry, = app.store.list_dead_letters(DeadLetterFilter(flow="orders"))
    attempts = entry.reason["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == [503, 502, 504]
    assert [a["kind"] for a in attempts] == ["http"] * 3
    assert all(f"answered {a['status']}" in a["error"] for a in attempts)
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in attempts)
    assert attempts[0]["at"] < attempts[1]["at"] < attempts[2]["at"]
    assert entry.reason["gave_up"] == "gave up after 3 attempt(s)"
    assert state.steps[-1]["attempts"] == 3 and state.steps[-1]["status"] == "failed"


def test_max_elapsed_ends_the_retries(make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((503, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 10, max_elapsed: 0.5s, backoff: {initial: 0.2s, multiplier: 1, "
              "jitter: none}}")})
    state, = run(app, {})
    assert state.status == "dead_lettered"
    assert 2 <= len(server.arrivals) <= 3
    assert (state.error or {})["gave_up"] == "retry window (max_elapsed) exhausted"


# -- jitter ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("jitter", "low", "high"), [("full", 0.0, 1.0), ("equal", 0.5, 1.0),
                                                     ("none", 1.0, 1.0)])
def test_jitter_bounds(jitter: str, low: float, high: float) -> None:
    policy = RetryPolicy.model_validate({"max_attempts": 10, "backoff": {
        "initial": 2, "multiplier": 3, "max": 60, "jitter": jitter}})
    error = StepError("busy", kind="http", retryable=True, status=503)
    rng = random.Random(7)
    for attempt in range(1, 10):
        base = base_delay(policy, attempt)
        assert base == min(60.0, 2.0 * 3 ** (attempt - 1))
        assert jittered(policy, base, lambda: 0.0) == pytest.approx(base * low)
        assert jittered(policy, base, lambda: 1.0) == pytest.approx(base * high)
        for _ in range(200):
            delay = next_delay(policy, error, attempt, 0.0, rng.random)
            assert delay is not None
            assert base * low <= delay <= base * high
    assert next_delay(policy, error, 10, 0.0) is None


def test_equal_jitter_at_run_time_waits_at_least_half_the_delay(
        make_app: MakeApp, httpserver: HTTPServer) -> None:
    server = Recorder((503, {}, "{}"), (503, {}, "{}"), (200, {}, "{}"))
    httpserver.expect_request("/orders").respond_with_handler(server)
    app = make_app({"orders": call_flow(
        httpserver.url_for("/orders"),
        retry="{max_attempts: 3, backoff: {initial: 0.3s, multiplier: 2, jitter: equal}}")})
    state, = run(app, {})
    assert state.status == "succeeded", state.error
    first, second = server.gaps()
    assert first >= 0.15 and second >= 0.3


# -- on_failure at run time --------------------------------------------------------------------
def test_on_failure_drop(make_app: MakeApp, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders").respond_with_data("no", status=400)
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"), on_failure="drop")})
    state, = run(app, {})
    assert state.status == "dropped"
    assert (state.error or {})["status"] == 400
    assert app.store.list_dead_letters(DeadLetterFilter(status=None)) == []


def test_on_failure_goto_sees_the_error(make_app: MakeApp, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders").respond_with_data("bad sku", status=422)
    report = Recorder((200, {}, "{}"))
    httpserver.expect_request("/report").respond_with_handler(report)
    steps = f"""
  - id: done
    set: {{outcome: '"sent"'}}
    next: end
  - id: report
    call:
      http: {{method: POST, url: "{httpserver.url_for('/report')}", json: "$vars.error"}}
  - id: after_report
    set: {{outcome: '"reported " & $string($vars.error.status)'}}
"""
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"),
                                        on_failure="{goto: report}", extra_steps=steps)})
    state, = run(app, {"sku": "X"})
    assert state.status == "succeeded", state.error
    assert state.envelope["vars"]["outcome"] == "reported 422"
    sent = json.loads(report.bodies[0])
    assert sent["step"] == "send" and sent["status"] == 422 and sent["kind"] == "http"
    assert sent["detail"]["body"] == "bad sku"
    assert "answered 422" in sent["message"]
    assert [s["id"] for s in state.steps] == ["send", "report", "after_report"]
    assert state.steps[0]["status"] == "failed"


def test_on_failure_flow_hands_off_with_the_reason(make_app: MakeApp,
                                                   httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders").respond_with_data("gone", status=404)
    fallback = f"""
flow: fallback
steps:
  - id: park
    call:
      http: {{method: POST, url: "{httpserver.url_for('/parked')}", json: "$vars.error"}}
"""
    parked = Recorder((201, {}, "{}"))
    httpserver.expect_request("/parked").respond_with_handler(parked)
    app = make_app({"orders": call_flow(httpserver.url_for("/orders"),
                                        on_failure="{flow: fallback}"),
                    "fallback": fallback})
    parent, child = run(app, {"po": 5})
    assert parent.status == "handed_off"
    assert (parent.error or {})["status"] == 404
    assert child.flow_id == "fallback" and child.status == "succeeded", child.error
    assert child.trigger == "handoff" and child.parent_run_id == parent.run_id
    assert child.correlation_id == parent.correlation_id
    assert child.envelope["body"] == {"po": 5}
    assert child.envelope["vars"]["error"]["status"] == 404
    assert json.loads(parked.bodies[0])["step"] == "send"
    assert app.store.list_dead_letters(DeadLetterFilter(status=None)) == []


def test_on_failure_dead_letter_is_the_default(make_app: MakeApp, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/orders").respond_with_data("no", status=409)
    flow = call_flow(httpserver.url_for("/orders")).replace("  on_failure: dead_letter\n", "")
    app = make_app({"orders": flow})
    state, = run(app, {})
    assert state.status == "dead_lettered"
    entry, = app.store.list_dead_letters(DeadLetterFilter())
    assert entry.reason["status"] == 409


# -- the worker never sleeps -------------------------------------------------------------------
def test_a_worker_never_sleeps_through_a_backoff(make_app: MakeApp,
                                                 httpserver: HTTPServer) -> None:
    slow = Recorder((503, {}, "{}"), (200, {}, "{}"))
    httpserver.expect_request("/slow").respond_with_handler(slow)
    httpserver.expect_request("/fast").respond_with_data("{}", content_type="application/json")
    app = make_app({
        "slow": call_flow(httpserver.url_for("/slow"), flow_id="slow", retry="{max_attempts: 2, "
                          "backoff: {initial: 3s, jitter: none}}"),
        "fast": call_flow(httpserver.url_for("/fast"), flow_id="fast"),
    }, workers=1)
    waiting = app.accept(app.flows.flows["slow"], {})
    deadline = time.monotonic() + 5
    while (app.store.get_run(waiting.run_id) or RunState("", "", "", {}, {})).status != "retrying":
        assert time.monotonic() < deadline, "the slow run never reached its retry"
        time.sleep(0.01)
    other = app.accept(app.flows.flows["fast"], {})
    fast, = finished(app, other.run_id)
    still = app.store.get_run(waiting.run_id)
    assert fast.status == "succeeded"
    assert still is not None and still.status == "retrying"
    slow_state, = finished(app, waiting.run_id)
    assert slow_state.status == "succeeded"
    assert fast.updated_at < slow_state.updated_at
    assert slow.gaps()[0] >= 3.0
