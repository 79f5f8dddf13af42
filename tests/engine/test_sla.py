"""Business SLAs through a real App: an ERP on loopback that is down or answers, runs that breach
a ``within: 2s`` deadline, the alert flow calling a pager on loopback once per breach — with two
sweepers at once — and ``flowrun_sla_breaches_total``.

Time is moved, not slept through: the sweep's clock (`SlaWatch.clock`) and the runner's clock
(which stamps when a run finished) are set ahead of the wall clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.app import App
from engine.records import RunState
from engine.sla import SlaWatch
from engine.store.base import DeadLetterFilter, RunFilter
from tests.conftest import wait_until

MakeApp = Callable[..., App]


class Pager:
    """A loopback pager: records each alert it receives."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.alerts.append(json.loads(request.get_data(as_text=True)))
        return Response("{}", status=200, content_type="application/json")


def flows(erp: str, pager: str) -> dict[str, str]:
    return {
        "orders": f"""
            flow: orders
            key: order
            sla:
              within: 2s
              rules:
                - key: "B2B-*"
                  within: 4h
              alert: {{flow: late-order-handling}}
            defaults:
              retry: {{max_attempts: 20, backoff: {{initial: 30s, jitter: none}}}}
            steps:
              - id: erp
                call:
                  http: {{method: POST, url: "{erp}"}}
            """,
        "late-order-handling": f"""
            flow: late-order-handling
            steps:
              - id: page
                call:
                  http: {{method: POST, url: "{pager}"}}
            """,
    }


@pytest.fixture
def pager(httpserver: HTTPServer) -> Pager:
    found = Pager()
    httpserver.expect_request("/hooks/late").respond_with_handler(found)
    return found


def accept(app: App, order: str) -> str:
    return app.accept(app.flows.flows["orders"], {"order": order}).run_id


def status_of(app: App, run_id: str) -> RunState:
    state = app.store.get_run(run_id)
    assert state is not None
    return state


def breaches_metric(app: App) -> float:
    return app.metrics.registry.get_sample_value("flowrun_sla_breaches_total",
                                                 {"flow": "orders"}) or 0.0


def sweeper(app: App, ahead: float) -> SlaWatch:
    """Another process's sweeper over the same store (a second owner of the lease)."""
    return SlaWatch(app.store, app.versions, app.executor, app.metrics,
                    clock=lambda: time.time() + ahead)


def test_runs_open_past_their_deadline_are_announced_once_even_with_two_sweepers(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager) -> None:
    httpserver.expect_request("/erp").respond_with_json({"busy": True}, status=503)
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    late = [accept(app, f"C-{i}") for i in range(3)]
    b2b = accept(app, "B2B-1")  # 4h: not late yet
    for run_id in [*late, b2b]:
        wait_until(lambda r=run_id: status_of(app, r).status == "retrying", what="a retry")

    assert app.sla.sweep() == 0  # nothing is past its deadline by the wall clock
    first, second = sweeper(app, 10), sweeper(app, 10)
    claimed: list[int | None] = []
    barrier = threading.Barrier(2)

    def sweep(watch: SlaWatch) -> None:
        barrier.wait()
        claimed.append(watch.sweep())

    threads = [threading.Thread(target=sweep, args=(w,)) for w in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(n or 0 for n in claimed) == 3

    wait_until(lambda: len(pager.alerts) >= 3, what="three alerts")
    alerts = wait_until(lambda: app.store.list_runs(RunFilter(flow="late-order-handling")))
    wait_until(lambda: all(s.done for s in app.store.list_runs(
        RunFilter(flow="late-order-handling"))), what="the alert runs to finish")
    assert sorted(a["sla"]["run_id"] for a in pager.alerts) == sorted(late)  # type: ignore[index]
    assert all(a["sla"]["status"] == "retrying" for a in pager.alerts)  # type: ignore[index]
    assert all(a["sla"]["late_by_s"] > 7 for a in pager.alerts)  # type: ignore[index]
    assert len(alerts) == 3

    # a later sweep, and one by a process started afresh, claim nothing and announce nothing
    assert first.sweep() == 0 and sweeper(app, 60).sweep() == 0
    assert len(app.store.list_runs(RunFilter(flow="late-order-handling"))) == 3
    assert breaches_metric(app) == 3
    assert b"flowrun_sla_breaches_total{flow=\"orders\"} 3.0" in app.metrics.exposition()

    breaches = {b.run_id: b for b in app.store.list_breaches("orders")}
    assert sorted(breaches) == sorted(late)
    assert {b.alert_run_id for b in breaches.values()} == {s.run_id for s in alerts}
    assert app.store.get_breach(b2b) is None


def test_a_run_that_succeeds_after_its_deadline_is_claimed_at_finish(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager) -> None:
    httpserver.expect_request("/erp").respond_with_json({"id": 1})
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    on_time = accept(app, "C-1")
    assert app.wait_for(on_time)[0].status == "succeeded"
    app.runner.clock = lambda: time.time() + 5  # the next run finishes 5 s "later"
    slow = accept(app, "C-2")
    assert app.wait_for(slow)[0].status == "succeeded"

    breach = wait_until(lambda: app.store.get_breach(slow), what="the breach")
    assert breach.status == "succeeded" and 2 < breach.late_by < 6
    assert app.store.get_breach(on_time) is None
    wait_until(lambda: len(pager.alerts) == 1, what="the alert")
    assert pager.alerts[0]["sla"]["run_id"] == slow  # type: ignore[index]
    assert sweeper(app, 60).sweep() == 0  # the on-time run left the due-set when it succeeded
    assert breaches_metric(app) == 1


def test_a_dead_lettered_run_is_late_once_its_deadline_passes(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager) -> None:
    httpserver.expect_request("/erp").respond_with_json({"bad": "order"}, status=422)
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    run_id = accept(app, "C-9")
    assert app.wait_for(run_id)[0].status == "dead_lettered"
    assert app.sla.sweep() == 0 and app.store.get_breach(run_id) is None
    assert sweeper(app, 10).sweep() == 1
    breach = app.store.get_breach(run_id)
    assert breach is not None and breach.status == "dead_lettered"
    wait_until(lambda: len(pager.alerts) == 1, what="the alert")


def test_a_breach_without_a_loaded_alert_flow_is_counted_and_recorded(
        running_app: MakeApp, httpserver: HTTPServer, tmp_path) -> None:
    httpserver.expect_request("/erp").respond_with_json({}, status=503)
    app = running_app({"orders": flows(httpserver.url_for("/erp"), "")["orders"].replace(
        "alert: {flow: late-order-handling}", "")})
    run_id = accept(app, "C-1")
    wait_until(lambda: status_of(app, run_id).status == "retrying", what="a retry")
    assert sweeper(app, 10).sweep() == 1
    breach = app.store.get_breach(run_id)
    assert breach is not None and breach.alert_run_id is None
    assert breaches_metric(app) == 1


def test_flowrun_runs_list_late_shows_the_late_runs(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager, tmp_path) -> None:
    from click.testing import CliRunner

    from engine.cli import main

    httpserver.expect_request("/erp").respond_with_json({}, status=503)
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    late, fine = accept(app, "C-7"), accept(app, "B2B-7")
    for run_id in (late, fine):
        wait_until(lambda r=run_id: status_of(app, r).status == "retrying", what="a retry")
    assert sweeper(app, 10).sweep() == 1
    env = {"FLOWRUN_HOME": str(tmp_path / "home"), "FLOWRUN_FLOWS": str(tmp_path / "flows")}
    result = CliRunner().invoke(main, ["runs", "list", "--late", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["run_id"], row["key"], row["status"], row["open"]) == (late, "C-7", "retrying",
                                                                       True)
    table = CliRunner().invoke(main, ["runs", "--late", "--flow", "orders"], env=env)
    assert table.exit_code == 0, table.output
    assert "LATE BY" in table.output and late[:12] in table.output
    assert fine[:12] not in table.output
    assert "and counting" in table.output


def test_a_replay_that_succeeds_before_the_deadline_makes_the_run_on_time(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager) -> None:
    answers = [(422, {"bad": "sku"}), (200, {"id": 1})]

    def erp(request: Request) -> Response:
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return Response(json.dumps(body), status=status, content_type="application/json")

    httpserver.expect_request("/erp").respond_with_handler(erp)
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    stuck = accept(app, "B2B-5")  # 4 h to succeed
    assert app.wait_for(stuck)[0].status == "dead_lettered"
    (entry,) = app.store.list_dead_letters(DeadLetterFilter())
    replay = app.replay(entry.id)
    assert app.wait_for(replay.run_id)[0].status == "succeeded"
    wait_until(lambda: not app.store.sla_due(time.time() + 5 * 3600, 10),
               what="the replayed run to leave the due-set")
    assert sweeper(app, 5 * 3600).sweep() == 0
    assert app.store.get_breach(stuck) is None and pager.alerts == []


def test_an_alert_the_pager_refuses_is_retried_then_dead_lettered_and_not_sent_again(
        running_app: MakeApp, httpserver: HTTPServer) -> None:
    pager_calls: list[str] = []

    def pager_down(request: Request) -> Response:
        pager_calls.append(request.get_data(as_text=True))
        return Response('{"down": true}', status=503, content_type="application/json")

    httpserver.expect_request("/erp").respond_with_json({}, status=503)
    httpserver.expect_request("/hooks/late").respond_with_handler(pager_down)
    texts = flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late"))
    texts["late-order-handling"] = texts["late-order-handling"].replace(
        "steps:", "defaults:\n              retry: {max_attempts: 2, backoff: {initial: 10ms, "
                  "jitter: none}}\n            steps:")
    app = running_app(texts)
    run_id = accept(app, "C-3")
    wait_until(lambda: status_of(app, run_id).status == "retrying", what="a retry")
    assert sweeper(app, 10).sweep() == 1
    breach = app.store.get_breach(run_id)
    assert breach is not None and breach.alert_run_id is not None
    alert = app.wait_for(breach.alert_run_id)[0]
    assert alert.status == "dead_lettered" and len(pager_calls) == 2
    (entry,) = app.store.list_dead_letters(DeadLetterFilter(flow="late-order-handling"))
    assert json.loads(pager_calls[0])["sla"]["run_id"] == run_id
    assert entry.run_id == alert.run_id
    assert sweeper(app, 20).sweep() == 0 and len(pager_calls) == 2


def test_a_run_still_open_at_the_very_instant_of_its_deadline_is_late_not_forgotten(
        running_app: MakeApp, httpserver: HTTPServer, pager: Pager) -> None:
    httpserver.expect_request("/erp").respond_with_json({"bad": "order"}, status=422)
    app = running_app(flows(httpserver.url_for("/erp"), httpserver.url_for("/hooks/late")))
    run_id = accept(app, "C-7")
    state = app.wait_for(run_id)[0]
    assert state.status == "dead_lettered" and state.deadline is not None
    deadline = state.deadline
    at_deadline = SlaWatch(app.store, app.versions, app.executor, app.metrics,
                           clock=lambda: deadline)
    # not succeeded by its deadline: late by 0 s, claimed once, never dropped from the watch
    assert at_deadline.sweep() == 1
    breach = app.store.get_breach(run_id)
    assert breach is not None and breach.late_by == 0.0
    assert sweeper(app, 10).sweep() == 0  # claimed already
    wait_until(lambda: len(pager.alerts) == 1, what="the alert")
