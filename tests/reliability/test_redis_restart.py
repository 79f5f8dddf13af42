"""Scenario 2: Redis killed and restarted while webhooks arrive at a real ``flowrun serve``.

Redis runs with AOF and ``appendfsync always``. Senders post signed webhooks from several
threads and behave like Shopify: an answer other than 2xx is retried later with the same
webhook id. Redis is SIGKILLed in the middle of the stream and restarted on the same port and
data folder. While it is away the server answers 503 with Retry-After, never a 202 it cannot
keep and never a 500; afterwards every message that got a 202 (or, retried, a 200 duplicate)
completes, its effect reaches the downstream once, and nothing is lost or doubled.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.reliability.conftest import (
    Cluster,
    Downstream,
    Ledger,
    RestartableRedis,
    Senders,
    Serve,
    finish,
    report,
    size,
    start_cluster,
    use_reference_flow,
    wait_until,
)

pytestmark = pytest.mark.integration

MESSAGES = size(150, 1000)
SENDERS = 8
OUTAGE = size(2, 5)  # seconds Redis stays down


def test_redis_killed_mid_stream_loses_no_accepted_webhook(
        cluster: Cluster, downstream: Downstream, restartable_redis: RestartableRedis,
        serve: list[Serve], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.redis_url = restartable_redis.url
    cluster.env["FLOWRUN_REDIS_URL"] = restartable_redis.url
    use_reference_flow(cluster, downstream, monkeypatch)
    # the stuck-run sweep (runs whose task the outage lost) is tuned short, as the visibility
    # timeout is; it runs well inside the 20 s without progress that ends the wait
    cluster.env["FLOWRUN_CELERY_REAP_INTERVAL"] = "2"
    app, server = start_cluster(cluster, serve)
    assert server is not None

    senders = Senders(server.url)
    deadline = time.monotonic() + 120 + MESSAGES
    threads = [threading.Thread(target=senders.send, args=(list(range(i, MESSAGES, SENDERS)),
                                                           deadline)) for i in range(SENDERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait_until(lambda: len(senders.answers) >= MESSAGES // 3, 120, "a third of the webhooks")
    restartable_redis.kill()
    down_from = time.monotonic()
    time.sleep(OUTAGE)
    down_until = time.monotonic()
    restartable_redis.start()
    for thread in threads:
        thread.join()

    stranded = finish(app, "reference-orders", MESSAGES, 90 + MESSAGES * 0.5)
    elapsed = time.monotonic() - started
    final = senders.final()
    during = [a for a in senders.answers if a.sent >= down_from and a.answered <= down_until]
    statuses = sorted({a.status for a in senders.answers})
    ledger = Ledger.of(downstream, "/orders")
    expected = {f"m-{n:06d}" for n in range(MESSAGES)}
    counts = app.store.count_runs("reference-orders")
    report("redis-restart", messages=MESSAGES, stranded=stranded, requests=len(senders.answers),
           answers_503=sum(a.status == 503 for a in senders.answers),
           answers_during_outage=len(during), outage_seconds=OUTAGE, runs=counts,
           effects=ledger.effects, missing=len(ledger.missing(expected)),
           doubled=len(ledger.doubled()), seconds=round(elapsed, 1))

    stuck = {s.key: [(a.status, a.run_id == s.run_id) for a in senders.answers
                     if a.message == s.key] for s in app.store.active_runs()}
    assert stuck == {}  # each stuck message with the answers its sender got
    assert stranded == [], "runs left queued by a lost task were not queued again by the sweep"
    assert during, "no request was answered while Redis was down: the scenario proved nothing"
    assert {a.status for a in during} == {503}
    assert all(a.retry_after for a in senders.answers if a.status == 503)
    assert statuses in ([202, 503], [200, 202, 503]), statuses  # never a 500, never no answer
    assert {m: a.status for m, a in final.items() if a.status not in (200, 202)} == {}
    assert set(final) == expected
    assert counts == {"succeeded": MESSAGES}  # one run per webhook id, every one finished
    assert ledger.missing(expected) == set()
    assert ledger.doubled() == {}
    assert ledger.effects == MESSAGES
    assert "unhandled error" not in server.text()  # the server's 500 handler never ran
