"""Scenario 4: poison messages get a clear error — a 4xx at intake or a dead-letter entry with
its reason — and the worker keeps serving the good messages sent between them.

The webhook server runs in this process under uvicorn (real HTTP on loopback) over the cluster's
Redis; one Celery worker subprocess runs the flow. Poison: a 10 MB body, JSON nested 10,000
deep, invalid UTF-8, and payloads that make the flow's JSONata explode (unbounded recursion, a
range of a billion numbers, arithmetic on text). Good messages are interleaved with them.
"""

from __future__ import annotations

import json

import pytest

from tests.engine.server_support import serving
from tests.reliability.conftest import (
    Cluster,
    Downstream,
    Ledger,
    dead_letters,
    report,
    settle,
    size,
    use_reference_flow,
)

pytestmark = pytest.mark.integration

GOOD = size(20, 200)
FLOW = """
flow: poison-guard
key: $string(message)
trigger:
  webhook: {path: /hooks/poison, max_body: 1048576}
steps:
  - id: explode
    transform: |
      (
        $depth := function($x) { $x <= 0 ? 0 : 1 + $depth($x - 1) };
        {
          "message": message,
          "depth": $depth($exists(depth) ? depth : 1),
          "sum": $sum([1..($exists(n) ? n : 1)])
        }
      )
  - id: deliver
    call:
      http: {method: POST, url: "${env:DOWNSTREAM_URL}/poison-ok"}
    output: vars.receipt
"""
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> bytes:
    return b'{"message": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


#: poison refused at intake: (name, body, headers, expected status)
AT_INTAKE = [
    ("10 MB body", json.dumps({"message": "big", "pad": "x" * 10_000_000}).encode(), JSON, 413),
    ("10,000-deep nesting", nested(10_000), JSON, 400),
    ("invalid UTF-8", b'{"message": "bad \xff\xfe utf-8"}', JSON, 400),
    ("invalid UTF-8 text", b"\xc3\x28 not text", {"Content-Type": "text/plain"}, 400),
]
#: poison that parses but makes the flow's expression explode: (message, body, reason text)
IN_FLOW: list[tuple[str, dict[str, object], str]] = [
    ("p-recursion", {"depth": 100_000}, "U1001"),
    ("p-range", {"n": 1_000_000_000}, "D2014"),
    ("p-text-range", {"n": "many"}, "T200"),
]


def test_poison_gets_a_clear_error_and_the_worker_keeps_serving(
        cluster: Cluster, downstream: Downstream, monkeypatch: pytest.MonkeyPatch) -> None:
    use_reference_flow(cluster, downstream, monkeypatch, FLOW, "poison-guard")
    worker = cluster.start_worker("w1")
    app = cluster.app()
    worker.wait_ready()
    refused: dict[str, tuple[int, str]] = {}
    accepted: dict[str, str] = {}
    codes: dict[str, str] = {}  # poison for the flow: the error code its entry must name
    with serving(app) as server:
        for n in range(GOOD):
            poison = AT_INTAKE[n // 2 % len(AT_INTAKE)] if n % 2 == 0 else None
            if poison is not None:
                name, body, headers, _ = poison
                answer = server.post("/hooks/poison", body, headers)
                refused[name] = (answer.status_code, answer.json().get("error", ""))
            if n % 3 == 0:
                kind, data, code = IN_FLOW[n // 3 % len(IN_FLOW)]
                message = f"{kind}-{n:06d}"
                codes[message] = code
                answer = server.post("/hooks/poison", json.dumps({"message": message, **data}),
                                     JSON)
                accepted[message] = answer.json()["run_id"]
            good = f"m-{n:06d}"
            answer = server.post("/hooks/poison", json.dumps({"message": good}), JSON)
            assert answer.status_code == 202, answer.text
            accepted[good] = answer.json()["run_id"]

        settle(lambda: all((s := app.store.get_run(r)) is not None and s.done
                           for r in accepted.values()), 60 + GOOD * 2)
    states = {m: app.store.get_run(r) for m, r in accepted.items()}
    outcome = {m: s.status if s else "missing" for m, s in states.items()}
    entries = {str(e.key): str(e.reason.get("message", "")) for e in
               dead_letters(app.store, "poison-guard")}
    ledger = Ledger.of(downstream, "/poison-ok")
    goods = {m for m in accepted if m.startswith("m-")}
    report("poison", good=GOOD, refused_at_intake=len(refused), dead_lettered=len(entries),
           delivered=ledger.effects, worker_restarts=0 if worker.process.poll() is None else 1)

    assert {name: status for name, (status, _) in refused.items()} == {
        name: status for name, _, _, status in AT_INTAKE}
    assert all(error and "Traceback" not in error for _, error in refused.values())
    assert {m: outcome[m] for m in codes} == {m: "dead_lettered" for m in codes}
    assert {m: "step 'explode'" in entries[m] and code in entries[m]
            for m, code in codes.items()} == {m: True for m in codes}, entries
    assert set(entries) == set(codes)
    assert {m: outcome[m] for m in goods} == {m: "succeeded" for m in goods}
    assert ledger.missing(goods) == set() and ledger.doubled() == {}
    assert ledger.unexpected(goods) == set()
    assert worker.process.poll() is None  # the same worker process served them all
    assert app.store.count_runs("poison-guard") == {"succeeded": GOOD,
                                                    "dead_lettered": len(codes)}
