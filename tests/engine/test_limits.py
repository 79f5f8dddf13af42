"""Token buckets and concurrency slots: in-process (embedded) and in a real Redis (workers).

A token bucket of rate r and burst b grants at most ``b + r × w`` tokens in any window of w
seconds, reserving the rest in the future in order. Each test checks that property on the grant
times the bucket itself hands out, so it is exact — no scheduling jitter involved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest
import redis

from engine.dsl.flow import RateLimit
from engine.limits import LocalBucket, RedisLimits
from engine.store.redis import RedisStore


def over_budget(grants: list[float], limit: RateLimit, slack: float = 1e-3) -> list[str]:
    """Windows [grants[i], grants[j]] holding more grants than the bucket allows."""
    grants = sorted(grants)
    bad = []
    for i, first in enumerate(grants):
        for j in range(i, len(grants)):
            allowed = limit.burst + limit.per_second * (grants[j] - first) + slack
            if j - i + 1 > allowed:
                bad.append(f"{j - i + 1} grants in {grants[j] - first:.3f} s (allowed "
                           f"{allowed:.2f})")
    return bad


def grants_from(threads: int, takes: int, taker: Callable[[], Callable[[], float]],
                clock: Callable[[], float]) -> list[float]:
    """When each token is granted — *clock* at the take plus the wait answered — for *takes*
    tokens in each of *threads* threads at once, each taking with its own ``taker()``."""
    grants: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        take = taker()
        for _ in range(takes):
            at = clock() + take()
            with lock:
                grants.append(at)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return grants


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_grants_burst_then_reserves_one_per_interval_in_order() -> None:
    clock = Clock()
    bucket = LocalBucket(clock)
    limit = RateLimit(name="erp-eu", per_second=5, burst=3)
    waits = [bucket.take(limit) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.2, 0.4, 0.6])
    clock.now += 2.0  # a quiet spell refills up to the burst, never beyond
    assert [bucket.take(limit) for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_local_bucket_keeps_a_budget_per_name() -> None:
    bucket = LocalBucket(Clock())
    eu, us = RateLimit(name="erp-eu", per_second=1), RateLimit(name="erp-us", per_second=1)
    assert bucket.take(eu) == 0.0 and bucket.take(us) == 0.0
    assert bucket.take(eu) == pytest.approx(1.0)


def test_local_bucket_grants_from_many_threads_stay_within_the_bucket() -> None:
    # a grant's time is the bucket's own clock reading (taken under its lock) plus the wait it
    # gave: read outside the lock, a thread preempted in between would misdate its grant
    seen = threading.local()

    def clock() -> float:
        seen.now = time.monotonic()
        return float(seen.now)

    bucket = LocalBucket(clock)
    limit = RateLimit(name="erp-eu", per_second=50, burst=5)

    def take() -> float:
        wait = bucket.take(limit)
        return float(seen.now) + wait

    grants = grants_from(4, 40, lambda: take, lambda: 0.0)
    assert len(grants) == 160
    assert over_budget(grants, limit) == []


def test_redis_bucket_shared_by_clients_stays_within_the_bucket(redis_url: str) -> None:
    limit = RateLimit(name="erp-eu", per_second=5, burst=2)

    def worker() -> Callable[[], float]:  # each thread its own client, as a worker would be
        return partial(RedisLimits(RedisStore(redis_url)).take, limit)

    grants = grants_from(3, 10, worker, time.time)
    assert len(grants) == 30
    # grant times are read on the clients after the script ran, a few ms late: half a token
    # of slack (100 ms at 5/s) absorbs that; a bucket per client would be 3 times over
    assert over_budget(grants, limit, slack=0.5) == []
    # 30 tokens at 5/s with a burst of 2: the last one is reserved ~5.6 s ahead
    assert max(grants) - min(grants) == pytest.approx((30 - 2) / 5, abs=0.3)


def test_redis_slots_admit_the_limit_and_queue_the_rest(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limits = RedisLimits(RedisStore(redis_url))
    assert limits.acquire_slot("bulk", "run-1", 2, 30, "run-1", 30)
    assert limits.acquire_slot("bulk", "run-2", 2, 30, "run-2", 30)
    assert not limits.acquire_slot("bulk", "run-3", 2, 30, "run-3", 30)
    assert limits.acquire_slot("bulk", "run-1", 2, 30, "run-1", 30)  # a holder may renew
    assert limits.holders("bulk") == 2
    # the waiter is rechecked at the latest after the lease, through the due set
    assert client.zscore("flowrun:due", "run-3") == pytest.approx(time.time() + 30, abs=2)
    assert limits.release_slot("bulk", "run-1") == "run-3"  # the oldest waiter is woken now
    assert client.zscore("flowrun:due", "run-3") == pytest.approx(time.time(), abs=2)
    assert limits.acquire_slot("bulk", "run-3", 2, 30, "run-3", 30)
    assert client.zcard("flowrun:slots:bulk:waiting") == 0


def test_a_dead_holders_slot_is_freed_after_its_lease(redis_url: str) -> None:
    limits = RedisLimits(RedisStore(redis_url))
    assert limits.acquire_slot("bulk", "dead-run", 1, 0.3, "dead-run", 0.3)
    assert not limits.acquire_slot("bulk", "next-run", 1, 30, "next-run", 30)
    time.sleep(0.4)  # the holder never renews: its worker died
    assert limits.acquire_slot("bulk", "next-run", 1, 30, "next-run", 30)
    assert not limits.renew_slot("bulk", "dead-run", 30)  # a late renewal takes nothing back
    assert limits.holders("bulk") == 1
