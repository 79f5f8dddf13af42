"""Redis fails over under load: the primary SIGKILLed while webhooks arrive and runs execute.

A real primary, a replica and three sentinels (`tests/sentinel_fixture`); ``flowrun serve`` and
two Celery workers reach the broker and the state through ``FLOWRUN_REDIS_URL=sentinel://...``.
Senders post signed webhooks from several threads and behave like Shopify (an answer other than
2xx is retried later with the same webhook id). In the middle of the stream the primary is
killed; the sentinels promote the replica, and the killed server is restarted, to come back as
the new primary's replica. Every webhook that got a 202 (or, retried, a 200 duplicate) has its
run finish; the downstream applies each message's effect once (one Idempotency-Key per
message); nothing is lost and nothing is done twice.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.reliability.conftest import (
    Cluster,
    Downstream,
    Ledger,
    Senders,
    Serve,
    finish,
    report,
    size,
    start_cluster,
    use_reference_flow,
    wait_until,
)
from tests.sentinel_fixture import SentinelGroup

pytestmark = pytest.mark.integration

MESSAGES = size(120, 1000)
SENDERS = 6


def test_a_primary_killed_mid_stream_fails_over_losing_and_doubling_nothing(
        cluster: Cluster, downstream: Downstream, sentinel_group: SentinelGroup,
        serve: list[Serve], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.redis_url = sentinel_group.url
    cluster.env["FLOWRUN_REDIS_URL"] = sentinel_group.url
    use_reference_flow(cluster, downstream, monkeypatch)

    def slow(n: int) -> None:
        time.sleep(0.02)  # runs are in the workers' steps when the primary dies

    downstream.hooks["/orders"] = slow
    cluster.env["FLOWRUN_CELERY_REAP_INTERVAL"] = "2"
    app, server = start_cluster(cluster, serve)
    assert server is not None

    senders = Senders(server.url)
    deadline = time.monotonic() + 180 + MESSAGES
    threads = [threading.Thread(target=senders.send, args=(list(range(i, MESSAGES, SENDERS)),
                                                           deadline)) for i in range(SENDERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait_until(lambda: len(senders.answers) >= MESSAGES // 3, 120, "a third of the webhooks")
    in_flight = app.store.count_runs("reference-orders")
    old = sentinel_group.kill_primary()
    killed_at = time.monotonic()
    new = sentinel_group.wait_failover(old)
    promoted_at = time.monotonic()
    sentinel_group.restart(old)  # a supervisor brings it back: the new primary's replica
    for thread in threads:
        thread.join()

    stranded = finish(app, "reference-orders", MESSAGES, 120 + MESSAGES * 0.5)
    elapsed = time.monotonic() - started
    final = senders.final()
    statuses = sorted({a.status for a in senders.answers})
    ledger = Ledger.of(downstream, "/orders")
    expected = {f"m-{n:06d}" for n in range(MESSAGES)}
    counts = app.store.count_runs("reference-orders")
    report("sentinel-failover", messages=MESSAGES, stranded=stranded,
           requests=len(senders.answers), answers_503=sum(a.status == 503 for a in senders.answers),
           refused=sum(a.status in (0, 503) for a in senders.answers),
           runs_at_kill=in_flight, failover_seconds=round(promoted_at - killed_at, 1),
           runs=counts, effects=ledger.effects, requests_downstream=ledger.requests,
           missing=len(ledger.missing(expected)), doubled=len(ledger.doubled()),
           seconds=round(elapsed, 1))

    assert new != old
    assert sum(in_flight.values()) < MESSAGES, "the primary died after the stream: no test"
    assert sum(in_flight.get(s, 0) for s in ("queued", "running", "retrying")), \
        "no run was waiting or executing when the primary died: no test"
    assert stranded == [], "runs left active after the failover"
    assert set(statuses) <= {0, 200, 202, 503}, statuses  # never a 500
    accepted = {m for m, a in final.items() if a.status in (200, 202)}
    assert accepted == expected  # every sender got its 202 (or 200) in the end
    assert counts == {"succeeded": MESSAGES}  # one run per webhook id, every one finished
    assert ledger.missing(expected) == set()
    assert ledger.doubled() == {}  # no message's effect under two keys
    assert all(n == 1 for n in downstream.effects.values())
    assert ledger.effects == MESSAGES
    assert "unhandled error" not in server.text()
