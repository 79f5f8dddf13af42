"""The PostgreSQL store at 100,000 runs: bytes per run, and how fast the console's lookups stay.

Creates a database of its own on a PostgreSQL server (``--url``, default the local server on
127.0.0.1:5432 as user postgres), migrates it, and records RUNS runs through the real
`PostgresStore` in intake-sized groups (`create_runs`, 100 at a time, each with an idempotency
key), as `flowrun serve` does: Shopify-order bodies, five flows, most runs succeeded and a few
dead-lettered with their entry. Then it measures, on the warm server:

* bytes per run: the runs table with its indexes and TOAST, per run; and the whole database
  (idempotency keys, dead letters, counts) per run;
* p50/p95 of the lookups behind `flowrun runs --key`, the console's flow + status list, the
  correlation id search, the dead-letter list of a flow, and the run counts;
* intake: runs recorded per second by groups of 100 (one transaction each).

The database is dropped at the end. Writes bench/results/postgres_store.json.

    python bench/postgres_store.py [--runs 100000] [--url postgresql://...] [--output PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.common import figure, output_path, write_result  # noqa: E402
from engine.records import DeadLetter, RunState  # noqa: E402
from engine.store import pg_migrations  # noqa: E402
from engine.store.base import DeadLetterFilter, RunFilter  # noqa: E402
from engine.store.postgres import PostgresStore  # noqa: E402

FLOWS = ["shopify-order-intake", "marketplace-order-intake", "erp-invoice", "wms-shipment",
         "supplier-ack"]
GROUP = 100
QUERIES = 300
GOAL_LOOKUP_MS = 20.0  # a console page or `flowrun runs --key` answered well within a blink


def order_run(n: int, body: dict[str, Any], rng: random.Random) -> tuple[RunState, str]:
    body = copy.deepcopy(body)
    body["id"], body["order_number"] = 5_000_000 + n, 10_000 + n // 2  # each order twice
    run_id = uuid.uuid4().hex
    status = rng.choices(["succeeded", "dead_lettered", "queued", "filtered"],
                         [90, 2, 3, 5])[0]
    now = 1_790_000_000.0 + n
    envelope = {"body": body, "headers": {"x-shopify-topic": "orders/create"}, "vars": {},
                "meta": {"run_id": run_id}}
    state = RunState(run_id=run_id, flow_id=FLOWS[n % len(FLOWS)], flow_version="v1",
                     envelope=envelope, original={"body": body, "headers": envelope["headers"]},
                     status=status, key=str(body["order_number"]),
                     correlation_id=uuid.uuid4().hex, created_at=now, updated_at=now,
                     steps=[{"id": "map", "status": "ok", "attempts": 1, "ms": 1.2},
                            {"id": "erp", "status": "ok", "attempts": 1, "ms": 48.0}])
    return state, f"delivery-{n}"


def timed(fn: Callable[[], object], times: int) -> dict[str, float]:
    seen = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        seen.append((time.perf_counter() - started) * 1000)
    seen.sort()
    return {"p50": round(statistics.median(seen), 3),
            "p95": round(seen[int(len(seen) * 0.95) - 1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--output")
    args = parser.parse_args()

    name = f"flowrun_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(args.url, dbname=name)
    try:
        result = measure(url, args.runs)
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    figures = [
        figure("bytes per run (runs table, indexes, TOAST)", result["bytes_per_run"], "B"),
        figure("bytes per run (whole database)", result["db_bytes_per_run"], "B"),
        *(figure(f"{what} p95", values["p95"], "ms", GOAL_LOOKUP_MS)
          for what, values in result["lookups"].items()),
        figure("intake: runs recorded per second (groups of 100)", result["intake_runs_per_s"],
               "runs/s", better="higher"),
    ]
    for item in figures:
        print(f"  {item['name']}: {item['value']} {item['unit']}")
    write_result(output_path(args.output, "postgres_store"), "postgres_store",
                 {"runs": args.runs, "server": result["server"],
                  "record_bytes": result["record_bytes"], "lookups": result["lookups"]},
                 figures)


def measure(url: str, runs: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        pg_migrations.upgrade(conn)
    rng = random.Random(7)
    body = json.loads((ROOT / "flows" / "samples" / "shopify-order.json").read_text())
    store = PostgresStore(url)
    recorded = 0.0
    keys, correlations = [], []
    record_bytes = 0
    try:
        for start in range(0, runs, GROUP):
            group = [order_run(n, body, rng) for n in range(start, min(runs, start + GROUP))]
            began = time.perf_counter()
            store.create_runs([(state, ("orders", key, 7 * 86400)) for state, key in group])
            recorded += time.perf_counter() - began
            for state, _ in group:
                if state.status == "dead_lettered":
                    state.error = {"message": "step 'erp': ERP answered 422", "step": "erp"}
                    store.save_run(state, dead_letter=DeadLetter.for_run(state))
            keys.append(str(group[0][0].key))
            correlations.append(group[-1][0].correlation_id)
            if start == 0:
                from engine.records import encode_run

                record_bytes = len(encode_run(group[0][0]))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            row = conn.execute(
                "SELECT pg_total_relation_size('runs'), pg_database_size(current_database()), "
                "version()").fetchone()
            assert row is not None
            runs_bytes, db_bytes, server = int(row[0]), int(row[1]), str(row[2])
        lookups = {
            "runs by business key (flowrun runs --key)": timed(
                lambda: store.list_runs(RunFilter(key=rng.choice(keys), limit=50)), QUERIES),
            "runs of a flow in a status, newest 50 (console)": timed(
                lambda: store.list_runs(RunFilter(flow=rng.choice(FLOWS), status=rng.choice(
                    ["succeeded", "dead_lettered", "queued"]), limit=50)), QUERIES),
            "runs of a flow, newest 50": timed(
                lambda: store.list_runs(RunFilter(flow=rng.choice(FLOWS), limit=50)), QUERIES),
            "runs by correlation id": timed(
                lambda: store.list_runs(RunFilter(correlation_id=rng.choice(correlations))),
                QUERIES),
            "open dead letters of a flow, newest 50": timed(
                lambda: store.list_dead_letters(DeadLetterFilter(flow=rng.choice(FLOWS),
                                                                 limit=50)), QUERIES),
            "run counts by status (console, /metrics)": timed(store.count_runs, QUERIES // 3),
        }
    finally:
        store.close()
    return {"server": server.split(" on ")[0], "record_bytes": record_bytes,
            "bytes_per_run": round(runs_bytes / runs), "db_bytes_per_run": round(db_bytes / runs),
            "lookups": lookups, "intake_runs_per_s": round(runs / recorded)}


if __name__ == "__main__":
    main()
