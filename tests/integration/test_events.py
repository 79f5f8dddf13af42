"""Business events end to end, on the embedded executor and on two real Celery workers.

A publishing flow emits ``shipment.shipped``; subscriber flows each POST to their own path of a
real loopback downstream (tests/integration/conftest). Checked: one run per subscriber and
event, carrying the publisher's correlation id; a repeated event id and a re-executed publisher
start nothing twice; a subscriber written while events flow gets the later ones; a subscriber
whose downstream answers 503 is retried or dead-lettered on its own while the others go on;
and 500 events over 20 ordering keys (2,000 with FLOWRUN_RELIABILITY=full) reach one subscriber
in publish order per key.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import defaultdict

import pytest

from engine.app import App
from engine.events import Event
from engine.records import RunState, start
from engine.store.base import DeadLetterFilter, RunFilter
from tests.conftest import size
from tests.integration.conftest import Downstream, wait_until
from tests.integration.test_celery_limits import Mode, mode  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

PUBLISHER = """
flow: shipper
steps:
  - id: emit
    publish: {type: shipment.shipped, data: '{"shipment": shipment_id}'%s}
  - id: after
    set: {published: 'true'}
"""

SUBSCRIBER = """
flow: %(name)s
trigger: {event: {type: shipment.shipped%(extra)s}}
steps:
  - id: tell
    call:
      http:
        method: POST
        url: "${env:DOWNSTREAM_URL}/%(name)s"
        json: |
          {"shipment": shipment, "n": n, "sku": sku,
           "event": $headers."event-id", "correlation_id": $meta.correlation_id}
    retry: {max_attempts: %(attempts)d, backoff: {initial: 0.05, max: 0.2, jitter: none}}
"""

CONSUMERS = ("channel", "crm", "notice")


def subscriber(name: str, *, attempts: int = 3, extra: str = "") -> str:
    return SUBSCRIBER % {"name": name, "attempts": attempts, "extra": extra}


def runs_of(app: App, flow: str) -> list[RunState]:
    return app.store.list_runs(RunFilter(flow=flow, limit=5000))


def all_done(app: App, flow: str, count: int) -> bool:
    runs = runs_of(app, flow)
    return len(runs) == count and all(r.done for r in runs)


def publish(app: App, body: dict[str, object]) -> RunState:
    accepted = app.accept(app.flows.flows["shipper"], body)
    (state,) = app.wait_for(accepted.run_id, timeout=60)
    assert state.status == "succeeded", state.error
    return state


def test_each_subscriber_runs_once_per_event_with_the_publishers_correlation_id(
        mode: Mode, downstream: Downstream) -> None:  # noqa: F811 - the fixture
    mode.write("shipper", PUBLISHER % "")
    for name in CONSUMERS:
        mode.write(name, subscriber(name))
    app = mode.start(downstream, workers=({}, {}))

    first = publish(app, {"shipment_id": "S1"})
    second = publish(app, {"shipment_id": "S2"})

    for name in CONSUMERS:
        wait_until(lambda name=name: all_done(app, name, 2), 60, f"{name}'s two runs")
        runs = {r.envelope["body"]["shipment"]: r for r in runs_of(app, name)}
        assert sorted(runs) == ["S1", "S2"]
        for publisher, run in ((first, runs["S1"]), (second, runs["S2"])):
            assert run.status == "succeeded" and run.trigger == "event"
            assert run.correlation_id == publisher.correlation_id
            assert run.parent_run_id == publisher.run_id
            assert run.envelope["headers"]["event-type"] == "shipment.shipped"
            assert run.envelope["headers"]["event-source-flow"] == "shipper"
            assert run.envelope["meta"]["event"]["id"] == f"{publisher.run_id}:emit"
        calls = downstream.calls(f"/{name}")
        assert sorted(c["body"]["shipment"] for c in calls) == ["S1", "S2"]
        assert {c["body"]["correlation_id"] for c in calls} == {first.correlation_id,
                                                                second.correlation_id}
    published = first.envelope["meta"]["events"]
    assert [(e["type"], len(e["subscribers"])) for e in published] == [("shipment.shipped", 3)]


def test_the_same_event_id_published_again_starts_no_second_run(
        mode: Mode, downstream: Downstream) -> None:  # noqa: F811 - the fixture
    mode.write("shipper", PUBLISHER % ", id: shipment_id")
    for name in CONSUMERS:
        mode.write(name, subscriber(name))
    app = mode.start(downstream, workers=({}, {}))

    # two deliveries of the same shipment: the event id is the shipment id
    publish(app, {"shipment_id": "S7"})
    again = publish(app, {"shipment_id": "S7"})
    assert again.envelope["meta"]["events"][0]["subscribers"] == []

    # the publisher executed again from the same record, as after a crash before its save:
    # its default event id (run and step) is the same, and the copy starts nothing
    mode.write("shipper", PUBLISHER % "")
    app.versions.use(app.loader.load_paths([mode.cluster.flows]))
    flow = app.flows.flows["shipper"]
    state = start(flow, {"shipment_id": "S8"})
    app.store.create_run(state)
    copy_before = copy.deepcopy(state)
    app.executor.submit_many(app.core.run(flow, state))
    assert len(state.envelope["meta"]["events"][0]["subscribers"]) == 3
    app.executor.submit_many(app.core.run(flow, copy_before))

    for name in CONSUMERS:
        wait_until(lambda name=name: all_done(app, name, 2), 60, f"{name}'s runs")
        assert sorted(r.envelope["body"]["shipment"] for r in runs_of(app, name)) == ["S7", "S8"]
        assert sorted(c["body"]["shipment"] for c in downstream.calls(f"/{name}")) == ["S7", "S8"]


def test_a_subscriber_added_while_events_flow_gets_the_later_ones(
        mode: Mode, downstream: Downstream, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    mode.write("shipper", PUBLISHER % "")
    mode.write("channel", subscriber("channel"))
    mode.cluster.env["FLOWRUN_RELOAD_INTERVAL"] = "0.2"  # the workers publish: they reload
    app = mode.start(downstream, workers=({}, {}))
    before = [publish(app, {"shipment_id": f"B{i}"}) for i in range(5)]

    mode.write("late", subscriber("late"))
    if mode.name == "embedded":
        assert app.watcher is not None and app.watcher.check() is not None
    else:
        for worker in mode.cluster.workers:
            wait_until(lambda w=worker: "flow late reloaded" in w.text(), 30,
                       f"worker {worker.name} to load the new subscriber")
    after = [publish(app, {"shipment_id": f"A{i}"}) for i in range(5)]

    wait_until(lambda: all_done(app, "channel", 10), 60, "the first subscriber's runs")
    wait_until(lambda: all_done(app, "late", 5), 60, "the new subscriber's runs")
    late = sorted(r.envelope["body"]["shipment"] for r in runs_of(app, "late"))
    assert late == [f"A{i}" for i in range(5)]
    assert [len(s.envelope["meta"]["events"][0]["subscribers"]) for s in before + after] == \
        [1] * 5 + [2] * 5


def test_a_failing_subscriber_holds_no_other_back_and_gets_its_backlog_once(
        mode: Mode, downstream: Downstream) -> None:  # noqa: F811 - the fixture
    mode.write("shipper", PUBLISHER % "")
    mode.write("channel", subscriber("channel"))
    mode.write("crm", subscriber("crm", attempts=100))  # down for a while, then back
    mode.write("legacy", subscriber("legacy", attempts=2))  # down for good
    recovered = threading.Event()
    downstream.hooks["/crm"] = lambda count: None if recovered.is_set() else 503
    downstream.hooks["/legacy"] = lambda count: 503
    app = mode.start(downstream, workers=({}, {}))

    publishers = [publish(app, {"shipment_id": f"S{i}"}) for i in range(3)]
    wait_until(lambda: all_done(app, "channel", 3), 60, "the healthy subscriber")
    wait_until(lambda: all_done(app, "legacy", 3), 60, "the subscriber that stays down")
    assert [r.status for r in runs_of(app, "channel")] == ["succeeded"] * 3
    crm = runs_of(app, "crm")
    assert len(crm) == 3 and not any(r.done for r in crm)  # still retrying, nobody waits for it

    recovered.set()
    wait_until(lambda: all_done(app, "crm", 3), 60, "the CRM backlog")
    assert [r.status for r in runs_of(app, "crm")] == ["succeeded"] * 3
    calls = downstream.calls("/crm")
    assert len(calls) > 3  # refused at first, retried
    keys = {c["key"] for c in calls}
    assert len(keys) == 3 and all(downstream.effects[k] == 1 for k in keys)  # once each
    assert sorted({c["body"]["shipment"] for c in calls}) == ["S0", "S1", "S2"]

    entries = app.store.list_dead_letters(DeadLetterFilter(limit=100))
    assert sorted((e.flow_id, e.envelope["body"]["shipment"]) for e in entries) == [
        ("legacy", "S0"), ("legacy", "S1"), ("legacy", "S2")]
    by_run = {p.run_id: p for p in publishers}
    assert all(e.correlation_id == by_run[e.envelope["meta"]["event"]["source_run"]]
               .correlation_id for e in entries)


def test_events_of_one_key_are_handled_in_publish_order(
        mode: Mode, downstream: Downstream) -> None:  # noqa: F811 - the fixture
    mode.write("stock", subscriber("stock", extra=", key: sku").replace("shipment.shipped",
                                                                       "stock.moved"))
    rng = random.Random(19)

    def delay(count: int) -> None:
        time.sleep(rng.uniform(0, 0.004))  # random step durations shuffle any unordered run

    downstream.hooks["/stock"] = delay
    app = mode.start(downstream, threads=4, workers=({}, {}))

    # bursts of one key, as a stock count posts many movements of one SKU at once: without
    # the lines, the runs of a burst would be in steps side by side and finish in any order
    # 500 discriminates: with the lines switched off (engine/ordering's enter always yes) it
    # fails on both executors, at the first SKU it checks
    total, skus = size(500, 2000), [f"SKU-{k}" for k in range(20)]
    order: list[str] = []
    while len(order) < total:
        order.extend([rng.choice(skus)] * rng.randint(1, 8))
    published: dict[str, list[int]] = defaultdict(list)
    for n, sku in enumerate(order[:total]):
        app.publish(Event("stock.moved", f"move-{n}", {"n": n, "sku": sku},
                          correlation_id=f"c{n}", source_flow="test"))
        published[sku].append(n)
    wait_until(lambda: len(downstream.calls("/stock")) >= total, 300, "every event handled")
    wait_until(lambda: all_done(app, "stock", total), 60, "every subscriber run recorded")

    handled: dict[str, list[int]] = defaultdict(list)
    for call in downstream.calls("/stock"):
        handled[call["body"]["sku"]].append(call["body"]["n"])
    assert sorted(handled) == sorted(skus)
    for sku, numbers in handled.items():
        assert numbers == published[sku], f"{sku}: handled out of publish order or not once"
