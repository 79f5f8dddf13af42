"""Delayed retries fire exactly once, even when the delay is longer than the visibility timeout.

The workers run with a 2 s visibility timeout and the retry is due 6 s after the failure: had
the retry been a Celery countdown/ETA message, the Redis transport would have handed it to the
other worker again while it waited. It waits in the ``flowrun:due`` sorted set instead, and the
pumps — one per worker process here, several at once — move it to the queue once.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from engine.celery_executor import DuePump
from engine.store.redis import RedisStore
from tests.integration.conftest import STORES, Cluster, Downstream

pytestmark = pytest.mark.integration

LATER = """
flow: later
steps:
  - id: send
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/flaky"}
    retry:
      max_attempts: 3
      backoff: {initial: 6s, jitter: none}
      retry_on: {http_status: [503]}
    output: vars.answer
"""


@pytest.mark.parametrize("cluster", STORES, indirect=True)
def test_retry_due_after_the_visibility_timeout_runs_once(
        cluster: Cluster, downstream: Downstream) -> None:
    (cluster.flows / "later.yaml").write_text(LATER, encoding="utf-8")
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    downstream.hooks["/flaky"] = lambda count: 503 if count == 1 else None
    workers = [cluster.start_worker("one"), cluster.start_worker("two")]
    app = cluster.app()  # loads flows while the workers start
    for worker in workers:
        worker.wait_ready()
    accepted = app.accept(app.flows.flows["later"], {"order": 7})

    state = app.wait_for(accepted.run_id, timeout=40)[0]
    assert state.status == "succeeded", state.error
    # longer than a redelivery would take (visibility 2 s + restore sweep 1 s): none comes
    time.sleep(3.5)
    calls = downstream.calls("/flaky")
    assert len(calls) == 2
    assert calls[0]["key"] == calls[1]["key"]
    assert calls[1]["at"] >= calls[0]["at"] + 6 - 0.05  # not before it was due
    assert state.steps[-1]["attempts"] == 2
    assert list(downstream.effects.values()) == [1]
    client = redis.Redis.from_url(cluster.redis_url)
    assert client.zcard("flowrun:due") == 0 and client.zcard("flowrun:due:moving") == 0


def test_competing_pumps_move_each_due_run_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    sent: list[str] = []
    lock = threading.Lock()

    def send(run_id: str) -> None:
        with lock:
            sent.append(run_id)

    pumps = [DuePump(RedisStore(redis_url), send) for _ in range(4)]
    now = time.time()
    for i in range(500):
        pumps[0].schedule(f"run-{i}", now - 1 if i < 400 else now + 3600)
    barrier = threading.Barrier(len(pumps))

    def race(pump: DuePump) -> None:
        barrier.wait()
        for _ in range(20):
            pump.pump_once(batch=7)

    threads = [threading.Thread(target=race, args=(p,)) for p in pumps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == sorted(f"run-{i}" for i in range(400))
    assert client.zcard("flowrun:due") == 100  # not due yet: still waiting
    assert client.zcard("flowrun:due:moving") == 0


def test_a_claim_whose_pump_died_before_sending_goes_back_and_is_sent(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)

    def die(run_id: str) -> None:
        raise ConnectionError("pump process lost before the task was sent")

    dying = DuePump(RedisStore(redis_url), die, claim_lease=0.2)
    dying.schedule("run-1", time.time() - 1)
    with pytest.raises(ConnectionError):
        dying.pump_once()
    assert client.zcard("flowrun:due") == 0 and client.zcard("flowrun:due:moving") == 1

    sent: list[str] = []
    healthy = DuePump(RedisStore(redis_url), sent.append, claim_lease=0.2)
    assert healthy.pump_once() == 0  # the claim is still within its lease: not stolen
    time.sleep(0.3)
    assert healthy.pump_once() == 1
    assert sent == ["run-1"] and client.zcard("flowrun:due:moving") == 0
