"""Intake dedupe: a message whose idempotency key was seen starts no second run.

Messages go through `App.accept` (what the webhook server, poller and CLI use) for a flow whose
trigger names the key; the flow calls a loopback server, so a duplicate run would show as a
second request there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

from engine.app import Accepted, App
from engine.store.base import RunFilter


def flow(url: str, flow_id: str = "shop-orders", hook: str = "/hooks/orders") -> str:
    return f"""flow: {flow_id}
key: $string(order)
trigger:
  webhook:
    path: {hook}
    idempotency_key: $headers."x-delivery-id"
steps:
  - id: send
    call:
      http: {{method: POST, url: "{url}"}}
"""


@pytest.fixture
def start_app(running_app: Callable[..., App],
              httpserver: HTTPServer) -> Callable[..., App]:
    """An App over the shop and b2b webhook flows calling a loopback ERP, executor started."""
    httpserver.expect_request("/erp").respond_with_data("{}", content_type="application/json")
    flows = {"shop-orders": flow(httpserver.url_for("/erp")),
             "b2b-orders": flow(httpserver.url_for("/erp"), "b2b-orders", "/hooks/b2b")}
    return lambda **settings: running_app(flows, **settings)


def deliver(app: App, delivery: str | None, order: int = 1,
            flow_id: str = "shop-orders") -> Accepted:
    headers = {"x-delivery-id": delivery} if delivery is not None else {}
    return app.accept(app.flows.flows[flow_id], {"order": order}, headers, trigger="webhook")


def done(app: App, accepted: Accepted) -> None:
    state, = app.wait_for(accepted.run_id, timeout=10)
    assert state.status == "succeeded", state.error


def test_a_repeated_delivery_starts_no_second_run(start_app: Callable[..., App],
                                                  httpserver: HTTPServer) -> None:
    app = start_app()
    first = deliver(app, "d-1")
    done(app, first)
    second = deliver(app, "d-1", order=1)
    assert second.duplicate and not first.duplicate
    assert second.run_id == first.run_id
    assert second.correlation_id == first.correlation_id
    time.sleep(0.2)  # a second run, had one been started, would have called by now
    assert len(app.store.list_runs(RunFilter())) == 1
    assert len(httpserver.log) == 1


def test_the_duplicate_is_answered_while_the_first_is_still_running(
        start_app: Callable[..., App], httpserver: HTTPServer) -> None:
    app = start_app()
    app.executor.stop()  # nothing runs: the first run stays queued
    first = deliver(app, "d-1")
    second = deliver(app, "d-1")
    assert second.duplicate and second.run_id == first.run_id
    recorded, = app.store.list_runs(RunFilter())
    assert recorded.run_id == first.run_id and recorded.status == "queued"


def test_many_threads_one_key_one_run(start_app: Callable[..., App],
                                      httpserver: HTTPServer) -> None:
    app = start_app()
    barrier = threading.Barrier(12)
    answers: list[Accepted] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        accepted = deliver(app, "same-delivery")
        with lock:
            answers.append(accepted)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(answers) == 12
    assert len({a.run_id for a in answers}) == 1
    assert sum(not a.duplicate for a in answers) == 1
    done(app, answers[0])
    assert len(app.store.list_runs(RunFilter())) == 1
    assert len(httpserver.log) == 1


def test_different_keys_and_different_flows_are_separate(start_app: Callable[..., App]) -> None:
    app = start_app()
    a = deliver(app, "d-1")
    b = deliver(app, "d-2")
    c = deliver(app, "d-1", flow_id="b2b-orders")  # the key is scoped to its flow
    assert not (a.duplicate or b.duplicate or c.duplicate)
    assert len({a.run_id, b.run_id, c.run_id}) == 3
    for accepted in (a, b, c):
        done(app, accepted)


def test_no_key_in_the_message_means_no_dedupe(start_app: Callable[..., App]) -> None:
    app = start_app()
    first, second = deliver(app, None), deliver(app, None)
    empty = deliver(app, "")
    assert not (first.duplicate or second.duplicate or empty.duplicate)
    assert len({first.run_id, second.run_id, empty.run_id}) == 3


def test_the_key_is_forgotten_after_its_ttl(start_app: Callable[..., App]) -> None:
    app = start_app(idempotency_ttl="300ms")
    first = deliver(app, "d-1")
    assert deliver(app, "d-1").duplicate
    time.sleep(0.35)
    later = deliver(app, "d-1")
    assert not later.duplicate and later.run_id != first.run_id
    assert deliver(app, "d-1").run_id == later.run_id


def test_keys_survive_a_restart(start_app: Callable[..., App]) -> None:
    first_app = start_app()
    first = deliver(first_app, "d-1")
    done(first_app, first)
    first_app.executor.stop()
    second_app = start_app()
    again = deliver(second_app, "d-1")
    assert again.duplicate and again.run_id == first.run_id


def test_the_flow_version_of_an_accepted_run_is_kept(start_app: Callable[..., App]) -> None:
    app = start_app()
    accepted = deliver(app, "d-9", order=9)
    done(app, accepted)
    state = app.store.get_run(accepted.run_id)
    assert state is not None and state.key == "9"
    compiled = app.flows.flows["shop-orders"]
    assert state.flow_version == compiled.version
    assert app.store.get_flow_version("shop-orders", compiled.version) == compiled.text
