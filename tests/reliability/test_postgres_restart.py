"""PostgreSQL crashed and restarted while webhooks arrive at a real ``flowrun serve``.

Twice: with the records in PostgreSQL and the hot state in Redis (FLOWRUN_DATABASE_URL and
FLOWRUN_REDIS_URL, Celery workers), and with PostgreSQL alone (the embedded executor in
``flowrun serve``). The server is a private cluster this test starts (never the machine's),
stopped in ``immediate`` mode — a crash: sessions cut, recovery from the WAL on start — in the
middle of the stream and started again on the same port and data. Senders behave like Shopify:
an answer other than 2xx is retried with the same webhook id. While PostgreSQL is away the
server answers 503 with Retry-After, never a 202 it cannot keep; afterwards every message that
got a 202 (or, retried, a 200 duplicate) has run, its effect reached the downstream once, and
nothing is lost or doubled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from engine.app import App
from engine.settings import Settings
from tests.postgres_fixture import PrivateCluster, create_database, migrate, wait_for
from tests.reliability.conftest import (
    ROOT,
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

pytestmark = pytest.mark.integration

MESSAGES = size(150, 1000)
SENDERS = 8
OUTAGE = size(4, 8)  # seconds PostgreSQL stays down


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    try:
        yield server
    finally:
        server.destroy()


@pytest.mark.parametrize("redis", [True, False], ids=["with-redis", "postgres-only"])
def test_postgres_crashed_mid_stream_loses_no_accepted_webhook(
        cluster: Cluster, downstream: Downstream, private_postgres: PrivateCluster,
        serve: list[Serve], monkeypatch: pytest.MonkeyPatch, redis: bool) -> None:
    url = create_database(private_postgres.url)
    migrate(url)
    cluster.database_url = url
    cluster.env["FLOWRUN_DATABASE_URL"] = url
    # a store that cannot reach PostgreSQL answers within a second: a 503 during the outage
    cluster.env["FLOWRUN_BUSY_TIMEOUT"] = "1"
    cluster.env["FLOWRUN_CELERY_REAP_INTERVAL"] = "2"
    use_reference_flow(cluster, downstream, monkeypatch)
    if redis:
        app, server = start_cluster(cluster, serve)
    else:  # flowrun serve runs the flows itself; this process only reads the records
        del cluster.env["FLOWRUN_REDIS_URL"]
        server = Serve(cluster.env, cluster.flows, cluster.home / "serve.log")
        serve.append(server)
        app = App(Settings(database_url=url, flows=cluster.flows, home=cluster.home / "reader",
                           schemas=ROOT / "schemas"))
        cluster.apps.append(app)
    assert server is not None

    senders = Senders(server.url)
    deadline = time.monotonic() + 120 + MESSAGES
    threads = [threading.Thread(target=senders.send, args=(list(range(i, MESSAGES, SENDERS)),
                                                           deadline)) for i in range(SENDERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait_until(lambda: len(senders.answers) >= MESSAGES // 3, 120, "a third of the webhooks")
    private_postgres.stop("immediate")
    down_from = time.monotonic()
    time.sleep(OUTAGE)
    down_until = time.monotonic()
    private_postgres.start()
    wait_for(url)
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
    report("postgres-restart" if redis else "postgres-only-restart", messages=MESSAGES,
           stranded=stranded, requests=len(senders.answers),
           answers_503=sum(a.status == 503 for a in senders.answers),
           answers_during_outage=len(during), outage_seconds=OUTAGE, runs=counts,
           effects=ledger.effects, missing=len(ledger.missing(expected)),
           doubled=len(ledger.doubled()), seconds=round(elapsed, 1))

    stuck = {s.key: [(a.status, a.run_id == s.run_id) for a in senders.answers
                     if a.message == s.key] for s in app.store.active_runs()}
    assert stuck == {}
    assert stranded == []
    assert during, "no request was answered while PostgreSQL was down: the scenario proved nothing"
    assert {a.status for a in during} == {503}
    assert all(a.retry_after for a in senders.answers if a.status == 503)
    assert statuses in ([202, 503], [200, 202, 503]), statuses  # never a 500, never no answer
    assert {m: a.status for m, a in final.items() if a.status not in (200, 202)} == {}
    assert set(final) == expected
    # every 202 names a run that is recorded and ran: one run per webhook id
    accepted = {a.run_id for a in senders.answers if a.status == 202}
    assert {r: (s.status if (s := app.store.get_run(r)) else "missing")
            for r in accepted} == dict.fromkeys(accepted, "succeeded")
    assert counts == {"succeeded": MESSAGES}
    assert ledger.missing(expected) == set()
    assert ledger.doubled() == {}
    assert ledger.effects == MESSAGES
    assert "unhandled error" not in server.text()
