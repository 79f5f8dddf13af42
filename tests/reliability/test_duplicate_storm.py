"""Scenario 5: a storm of duplicate webhook deliveries — the same webhook ids, sent at the same
time from many threads to a real ``flowrun serve`` — starts one run per idempotency key.

Every copy of a delivery is signed and identical. Exactly one copy per id is answered 202; the
others get 200 with ``duplicate: true`` and the same run id. Two workers run the flow; the
downstream sees each message's effect once.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.reliability.conftest import (
    Cluster,
    Downstream,
    Ledger,
    Serve,
    message,
    report,
    settle,
    signed,
    size,
    start_cluster,
    use_reference_flow,
)

pytestmark = pytest.mark.integration

KEYS = size(25, 200)
COPIES = size(8, 20)
THREADS = size(16, 32)


def test_duplicate_storm_starts_one_run_per_webhook_id(
        cluster: Cluster, downstream: Downstream, serve: list[Serve],
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_reference_flow(cluster, downstream, monkeypatch)
    app, server = start_cluster(cluster, serve)
    assert server is not None
    local = threading.local()

    def deliver(n: int) -> tuple[int, int, dict[str, object]]:
        if not hasattr(local, "http"):
            local.http = requests.Session()
            local.http.trust_env = False
        body = json.dumps(message(n)).encode()
        answer = local.http.post(server.url + "/hooks/orders", data=body, timeout=60,
                                 headers=signed(body, f"storm-{n}"))
        return n, answer.status_code, answer.json()

    # the copies of one id are next to each other, so the pool sends them at the same time
    storm = [n for n in range(KEYS) for _ in range(COPIES)]
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(deliver, storm))
    settle(lambda: app.store.count_runs("reference-orders").get("succeeded", 0) >= KEYS,
           60 + KEYS)

    by_key: dict[int, list[tuple[int, dict[str, object]]]] = defaultdict(list)
    for n, status, data in answers:
        by_key[n].append((status, data))
    firsts = {n: sorted(s for s, _ in got) for n, got in by_key.items()}
    run_ids = {n: {str(d.get("run_id")) for _, d in got} for n, got in by_key.items()}
    ledger = Ledger.of(downstream, "/orders")
    expected = {f"m-{n:06d}" for n in range(KEYS)}
    counts = app.store.count_runs("reference-orders")
    report("duplicate-storm", ids=KEYS, copies=COPIES, threads=THREADS, requests=len(answers),
           accepted_202=sum(s == 202 for _, s, _ in answers),
           duplicates_200=sum(s == 200 for _, s, _ in answers), runs=counts,
           effects=ledger.effects, doubled=len(ledger.doubled()))

    assert firsts == {n: [200] * (COPIES - 1) + [202] for n in range(KEYS)}
    assert all(d.get("duplicate") is True for _, s, d in answers if s == 200)
    assert {n: len(ids) for n, ids in run_ids.items()} == {n: 1 for n in range(KEYS)}
    assert counts == {"succeeded": KEYS}
    assert ledger.missing(expected) == set()
    assert ledger.doubled() == {}
    assert ledger.effects == KEYS
