"""Runs whose worker died are queued again; a run that keeps killing workers is dead-lettered.

Stuck: the workers run with a visibility timeout of five minutes, so within the test the
broker never gives the dead worker's task back — only the reaper can rescue the run. It finds
the run in flight with its lease expired, queues it again, and the other worker resumes it with
the same Idempotency-Key. The flow is limited to one run at a time, so the same test shows the
dead worker's concurrency slot coming free once its lease runs out.

Poison: the downstream kills the worker process that calls it (as an out-of-memory kill would),
every time. After ``FLOWRUN_CELERY_MAX_DELIVERIES`` such deliveries the run is dead-lettered as
poison instead of taking another process down, and the worker goes on serving other runs.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import redis

from engine.records import start
from engine.store.base import DeadLetterFilter
from engine.store.redis import RedisStore
from tests.integration.conftest import STORES, Cluster, Downstream, wait_until

# stuck and poison runs on Redis alone and with the records in PostgreSQL (where the run's Redis
# hash holds only its count of deliveries)
pytestmark = [pytest.mark.integration,
              pytest.mark.parametrize("cluster", STORES, indirect=True)]

SINGLE = """
flow: single
concurrency: 1
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/single"}
    output: vars.answer
"""

POISON = """
flow: poison
steps:
  - id: shape
    transform: '{"order": order}'
  - id: crash
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/poison"}
    output: vars.answer
"""


def test_reaper_requeues_a_run_whose_worker_died_and_frees_its_slot(
        cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "single.yaml").write_text(SINGLE, encoding="utf-8")
    cluster.env.update({"DOWNSTREAM_URL": downstream.url,
                        "FLOWRUN_CELERY_VISIBILITY_TIMEOUT": "300",
                        "FLOWRUN_CELERY_REAP_INTERVAL": "1"})
    started, release = threading.Event(), threading.Event()

    def hang_first(count: int) -> None:
        if count == 1:  # the first call is received and never answered: its worker dies
            started.set()
            release.wait(30)

    downstream.hooks["/single"] = hang_first
    workers = [cluster.start_worker("one"), cluster.start_worker("two")]
    app = cluster.app()
    for worker in workers:
        worker.wait_ready()
    first = app.accept(app.flows.flows["single"], {"order": 1}).run_id
    assert started.wait(30), "no worker called the downstream"
    store = app.store
    assert isinstance(store, RedisStore)
    owner = wait_until(lambda: store.lock_owner(f"run:{first}"), 10, "the lease")
    victim = next(w for w in workers if w.pid == int(owner.split(":")[1]))
    survivor = next(w for w in workers if w is not victim)
    victim.kill(signal.SIGKILL)
    victim.process.wait(10)
    release.set()
    second = app.accept(app.flows.flows["single"], {"order": 2}).run_id  # needs the slot

    states = [app.wait_for(r, timeout=40)[0] for r in (first, second)]
    assert [s.status for s in states] == ["succeeded", "succeeded"], [s.error for s in states]
    assert f"run {first} was in a worker that stopped" in survivor.text()
    keys = [r["key"] for r in downstream.calls("/single")]
    # the rescued call kept its key (the second run may have taken the freed slot first)
    assert sorted(keys.count(k) for k in set(keys)) == [1, 2] and keys[0] == f"{first}-send"
    assert sorted(downstream.effects.values()) == [1, 1]
    client = redis.Redis.from_url(cluster.redis_url)
    assert client.zcard("flowrun:inflight") == 0
    # the rescued delivery ended: no delivery of either run is counted as died any more
    assert [client.hget(f"flowrun:run:{r}", "deliveries") in (None, b"0")
            for r in (first, second)] == [True, True]
    assert client.zcard("flowrun:slots:single") == 0


def test_a_run_that_keeps_killing_its_worker_is_dead_lettered_as_poison(
        cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "poison.yaml").write_text(POISON, encoding="utf-8")
    cluster.env.update({"DOWNSTREAM_URL": downstream.url, "FLOWRUN_CELERY_MAX_DELIVERIES": "2"})
    client = redis.Redis.from_url(cluster.redis_url)

    def kill_the_caller(count: int) -> int | None:
        if count > 2:
            return None  # a third call would mean the poison run was delivered again
        for key in client.keys("flowrun:lock:run:*"):
            owner = client.get(key)
            if isinstance(owner, bytes):  # host:pid:thread:token of the process in the call
                os.kill(int(owner.decode().split(":")[1]), signal.SIGKILL)
        return 500  # never sent: the process that asked is gone

    downstream.hooks["/poison"] = kill_the_caller
    worker = cluster.start_worker("pool", pool="prefork", concurrency=2)
    app = cluster.app()
    worker.wait_ready()
    run_id = app.accept(app.flows.flows["poison"], {"order": 13}).run_id

    state = app.wait_for(run_id, timeout=60)[0]
    assert state.status == "dead_lettered"
    assert state.error is not None
    assert (state.error["kind"], state.error["step"], state.error["deliveries"]) == \
        ("poison", "shape", 2)  # where it resumes: the transform is not checkpointed
    assert "stopped its worker 2 times in a row, each time after resuming at step 'shape'" \
        in state.error["message"]
    entries = app.store.list_dead_letters(DeadLetterFilter(flow="poison"))
    assert [(e.run_id, e.reason["kind"]) for e in entries] == [(run_id, "poison")]
    assert entries[0].original["body"] == {"order": 13}  # the original message is kept
    assert len(downstream.calls("/poison")) == 2

    # the worker lost two pool processes, not its ability to work
    assert worker.process.poll() is None
    again = app.accept(app.flows.flows["poison"], {"order": 14}).run_id
    downstream.hooks.pop("/poison")
    assert app.wait_for(again, timeout=30)[0].status == "succeeded"


def test_a_run_left_queued_by_a_lost_task_is_queued_again_once_per_period(
        cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "single.yaml").write_text(SINGLE, encoding="utf-8")
    cluster.env.update({"DOWNSTREAM_URL": downstream.url, "FLOWRUN_CELERY_REAP_INTERVAL": "1",
                        "FLOWRUN_CELERY_STRANDED_AFTER": "3"})
    app = cluster.app()
    flow = app.flows.flows["single"]
    # the run is recorded, but its task never reaches the broker (as when kombu loses it
    # between taking it off the queue and noting it unacknowledged)
    stranded = start(flow, {"order": 7})
    app.versions.remember(flow)
    assert app.store.create_run(stranded) is None
    worker = cluster.start_worker("one")
    worker.wait_ready()
    state, = app.wait_for(stranded.run_id, timeout=40)
    assert state.status == "succeeded", state.error
    assert f"run {stranded.run_id} has been queued for over 3 s" in worker.text()
    assert list(downstream.effects.values()) == [1]
    client = redis.Redis.from_url(cluster.redis_url)
    assert client.exists(f"flowrun:requeued:{stranded.run_id}")  # once per period
