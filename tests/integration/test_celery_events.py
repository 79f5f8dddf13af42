"""Celery as its users see it: task events on a real event receiver, the task named by flow and
business key, and a dead-lettered run as the task's FAILURE with its reason.

A real ``celery -A worker worker`` on a real redis-server; a `celery.events.EventReceiver` on
the same Redis collects what Flower would show. Runs are accepted by the producer App in this
process, whose intake queues them in the store's write (`WireMessages`) and sends their
``task-sent`` events; the worker sends received, started, succeeded and failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery.result import AsyncResult

from engine.celery_events import DeadLettered
from engine.celery_executor import make_celery
from engine.settings import Settings
from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

FLOW = """\
flow: shopify-order-intake
key: '"#" & $string(order)'
steps:
  - id: triage
    route:
      - when: qty < 1
        dead_letter: no quantity
      - otherwise: keep
  - id: keep
    set: {q: qty}
"""


class Events:
    """Every event an EventReceiver on the cluster's Redis gets, in a background thread."""

    def __init__(self, redis_url: str):
        self.celery = make_celery(Settings(redis_url=redis_url))
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.connection = self.celery.connection_for_read()
        self.receiver = self.celery.events.Receiver(self.connection,
                                                    handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self._capture, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.got.append(event)

    def _capture(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.got if e["type"] == kind
                    and all(e.get(k) == v for k, v in fields.items())]

    def close(self) -> None:
        self.receiver.should_stop = True
        self.thread.join(10)
        self.connection.release()


@pytest.fixture
def events(cluster: Cluster) -> Iterator[Events]:
    import redis

    watching = Events(cluster.redis_url)
    watching.thread.start()
    client = redis.Redis.from_url(cluster.redis_url)
    # events are published, not queued: the receiver must be subscribed before any is sent
    wait_until(lambda: client.pubsub_numpat() > 0, 10, "the event receiver to subscribe")
    client.close()
    try:
        yield watching
    finally:
        watching.close()


def test_task_events_name_flow_and_key_and_a_dead_letter_is_a_failure_with_its_reason(
        cluster: Cluster, events: Events) -> None:
    (cluster.flows / "orders.yaml").write_text(FLOW, encoding="utf-8")
    worker = cluster.start_worker("events")
    worker.wait_ready()
    app = cluster.app()
    flow = app.flows.flows["shopify-order-intake"]
    good = app.accept(flow, {"order": 1001, "qty": 2}, {}, trigger="manual")
    bad = app.accept(flow, {"order": 1002, "qty": 0}, {}, trigger="manual")
    states = {a.run_id: app.wait_for(a.run_id, timeout=40)[0] for a in (good, bad)}
    assert states[good.run_id].status == "succeeded"
    assert states[bad.run_id].status == "dead_lettered"
    wait_until(lambda: events.of("task-succeeded") and events.of("task-failed"), 20,
               "the worker's task-succeeded and task-failed events")

    # sent (by intake), received and started (by the worker): Flower's flowrun.run rows
    [sent_good] = events.of("task-sent", args="shopify-order-intake key=#1001")
    [sent_bad] = events.of("task-sent", args="shopify-order-intake key=#1002")
    assert sent_good["name"] == "flowrun.run" and sent_good["queue"] == "flowrun"
    for sent in (sent_good, sent_bad):
        [received] = events.of("task-received", uuid=sent["uuid"])
        assert (received["name"], received["args"]) == ("flowrun.run", sent["args"])
        assert events.of("task-started", uuid=sent["uuid"])
    [succeeded] = events.of("task-succeeded", uuid=sent_good["uuid"])
    assert succeeded["result"] == "'succeeded'"

    # the dead letter: FAILURE with the reason, in the event and in the result backend
    [failed] = events.of("task-failed", uuid=sent_bad["uuid"])
    assert "dead-lettered at step triage (route)" in failed["exception"]
    assert bad.run_id in failed["exception"]
    result = AsyncResult(sent_bad["uuid"], app=events.celery)
    assert result.state == "FAILURE"
    assert isinstance(result.result, DeadLettered)
    reason, details = result.result.args
    assert reason == f"shopify-order-intake run {bad.run_id} dead-lettered at step triage (route)"
    assert details == {"run_id": bad.run_id, "flow": "shopify-order-intake", "step": "triage",
                       "key": "#1002", "reason_kind": "route", "status": None,
                       "correlation_id": states[bad.run_id].correlation_id}
    # nothing is stored for a success: the run record is the result
    assert AsyncResult(sent_good["uuid"], app=events.celery).state == "PENDING"

    # acknowledged, not retried by Celery nor given back: nothing is left unacknowledged, the
    # worker logged it as expected (no traceback), and the run has one dead-letter entry
    redis = app.store.redis  # type: ignore[attr-defined]
    wait_until(lambda: redis.hlen("unacked") == 0, 10, "every task to be acknowledged")
    assert not events.of("task-retried") and not events.of("task-rejected")
    assert app.store.count_dead_letters() == {"shopify-order-intake": 1}
    log = worker.text()
    assert "raised expected: DeadLettered" in log and "Traceback" not in log
