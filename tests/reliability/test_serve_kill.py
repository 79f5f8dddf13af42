"""Scenario: ``flowrun serve`` SIGKILLed while groups of deliveries are being recorded.

Intake records the deliveries that wait together in one write (engine/intake) and answers them
only once it is done, so a kill can land with a group half gathered, half written or written
but not yet answered. Senders post signed webhooks from many threads — several of them send
every message twice at once, so an original and its duplicate often share a group — and behave
like Shopify: no answer or a 503 is retried with the same webhook id. The server is killed in
the middle of the stream and started again (on the embedded store, the same state folder; on
Redis, beside running Celery workers). Then every message has exactly one run, every 202 named
the run that completed, and every effect reached the downstream once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.store.base import RunFilter, Store
from engine.store.sqlite import SqliteStore
from tests.reliability.conftest import (
    REFERENCE_FLOW,
    SHOP_SECRET,
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

MESSAGES = size(200, 1500)
SENDERS = 16
KILLS = size(1, 3)


def stream(senders: Senders) -> list[threading.Thread]:
    """SENDERS threads; thread i and thread i + SENDERS/2 send the same messages, so each
    message is sent twice at about the same moment."""
    half = SENDERS // 2
    deadline = time.monotonic() + 180 + MESSAGES
    return [threading.Thread(target=senders.send,
                             args=(list(range(i % half, MESSAGES, half)), deadline))
            for i in range(SENDERS)]


def send_through_kills(server: Serve, start: Callable[[], Serve]) -> Senders:
    """Stream every message (twice) while *server* is killed KILLS times, each time replaced
    by *start*; returns once every sender is done."""
    senders = Senders(server.url)
    threads = stream(senders)
    for thread in threads:
        thread.start()
    for _ in range(KILLS):
        server = kill_and_restart(server, start, senders, MESSAGES // (KILLS + 2))
    for thread in threads:
        thread.join()
    return senders


def kill_and_restart(server: Serve, start: Callable[[], Serve], senders: Senders,
                     share: int) -> Serve:
    """SIGKILL *server* once *share* more answers came in; a new one takes the senders."""
    seen = len(senders.answers)
    wait_until(lambda: len(senders.answers) >= seen + share, 120, "answers before the kill")
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    fresh: Serve = start()
    senders.url = fresh.url
    return fresh


def check(store: Store, senders: Senders, downstream: Downstream, scenario: str,
          stranded: list[str]) -> None:
    runs = store.list_runs(RunFilter(flow="reference-orders", limit=100_000))
    per_message = Counter(str(run.key) for run in runs)
    final = senders.final()
    by_id = {run.run_id: run for run in runs}
    accepted = [a for a in senders.answers if a.status == 202]
    ledger = Ledger.of(downstream, "/orders")
    expected = {f"m-{n:06d}" for n in range(MESSAGES)}
    report(scenario, messages=MESSAGES, kills=KILLS, requests=len(senders.answers),
           statuses=dict(Counter(str(a.status) for a in senders.answers)),
           runs=dict(Counter(run.status for run in runs)), effects=ledger.effects,
           missing=len(ledger.missing(expected)), doubled=len(ledger.doubled()),
           stranded=stranded)
    assert {m for m, a in final.items() if a.status not in (200, 202)} == set()
    assert {m: n for m, n in per_message.items() if n != 1} == {}  # one run per message
    assert set(per_message) == expected
    lost = [a.message for a in accepted if a.run_id not in by_id]
    assert lost == [], "a 202 named a run that is not recorded"
    assert {run.status for run in runs} == {"succeeded"}
    assert ledger.missing(expected) == set() and ledger.doubled() == {}
    assert stranded == []


def test_serve_killed_mid_group_embedded(tmp_path: Path, downstream: Downstream) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "reference-orders.yaml").write_text(REFERENCE_FLOW, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    env.update(FLOWRUN_HOME=str(tmp_path / "home"), FLOWRUN_SECRET_SHOP=SHOP_SECRET,
               DOWNSTREAM_URL=downstream.url, FLOWRUN_RELOAD_INTERVAL="0")
    logs = iter(range(100))
    started: list[Serve] = []

    def start() -> Serve:
        server = Serve(env, flows, tmp_path / f"serve-{next(logs)}.log")
        started.append(server)
        return server

    try:
        senders = send_through_kills(start(), start)
        store = SqliteStore(tmp_path / "home" / "state.db")
        with contextlib.suppress(AssertionError):  # check() says what is missing
            wait_until(lambda: store.count_runs("reference-orders").get("succeeded", 0)
                       >= MESSAGES, 60 + MESSAGES * 0.2, "every run to finish")
        stranded = [str(s.key) for s in store.active_runs()]
        check(store, senders, downstream, "serve-kill-embedded", stranded)
        store.close()
    finally:
        for server in started:
            server.close()


def test_serve_killed_mid_group_on_redis(cluster: Cluster, downstream: Downstream,
                                         serve: list[Serve],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    use_reference_flow(cluster, downstream, monkeypatch)
    cluster.env["FLOWRUN_CELERY_REAP_INTERVAL"] = "2"
    app, server = start_cluster(cluster, serve)
    assert server is not None
    logs = iter(range(100))

    def start() -> Serve:
        fresh = Serve(cluster.env, cluster.flows, cluster.home / f"serve-{next(logs)}.log")
        serve.append(fresh)
        return fresh

    senders = send_through_kills(server, start)
    stranded = finish(app, "reference-orders", MESSAGES, 90 + MESSAGES * 0.5)
    check(app.store, senders, downstream, "serve-kill-redis", stranded)
