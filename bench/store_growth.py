"""Store growth: bytes a run keeps, queries over a long history, and how fast pruning clears it.

For each backend (embedded SQLite, Redis — a redis-server of its own on loopback), records
--runs finished runs of five flows the way intake and the workers leave them: the ~3.4 KB
Shopify order of the other benchmarks as body, webhook headers, one step, a business key;
94 % succeeded, 5 % filtered, 1 % dead-lettered with their dead-letter entry. Runs are written
in groups of 200 (`create_runs`, one transaction or one script per group) already finished:
the record is the one a worker's last save leaves, without timing the message path. Then:

* bytes per run — SQLite: the pages in use (page_count − freelist_count, after a WAL
  checkpoint); Redis: the ``used_memory`` delta — divided by the runs, next to the body;
* p50/p95 of the operators' queries: runs by business key, by flow and status (each status),
  and the console's flow-health view (engine/console/views.flow_health);
* pruning: every body compacted (retention ``bodies: 0s``), then every run removed, in the
  store's own batches — records per second, and bytes per run once compacted; from these, the
  bytes per run kept on average in the steady state of ``runs: 14d, bodies: 2d`` (two days of
  full records, twelve of summaries).

Prints a table and writes bench/results/store_growth.json.

    python bench/store_growth.py [--runs 1000000] [--backends sqlite,redis] [--samples 200]
                                 [--step set|transform] [--output PATH]

The step's record is the runner's own, so FLOWRUN_STEP_SNAPSHOTS=0 measures a run without
its output snapshot.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, output_path, write_result  # noqa: E402
from bench.sidebyside.load import order_body  # noqa: E402

GOALS = {"bytes_per_run_over_body": 1.3, "query_p95_ms": 100.0}
#: the steady state reported: runs kept 14 days, their bodies 2 (docs/retention.md)
KEEP_DAYS, BODY_DAYS = 14, 2
FLOWS = [f"bench-orders-{n}" for n in range(5)]
GROUP = 200
FLOW = """\
flow: {name}
key: $string(order_number)
trigger:
  webhook: {{path: /hooks/{name}}}
steps:
  - id: remember
{step}
"""
#: the flow's one step (--step): `set` leaves the body as it is, `transform` makes a new one
STEPS = {"set": "    set: {{seen: 'true'}}",
         "transform": "    transform: '$merge([$, {{\"seen\": true}}])'",
         "two-transforms": "    transform: '$merge([$, {{\"seen\": true}}])'\n"
                           "  - id: again\n"
                           "    transform: '$merge([$, {{\"again\": true}}])'"}
HEADERS = {"content-type": "application/json", "x-shopify-topic": "orders/create",
           "x-shopify-shop-domain": "bench-shop.myshopify.com", "x-shopify-api-version":
           "2024-10", "x-shopify-hmac-sha256": "u4nZ2cW3qTq7yH0x6JwJ5l8mQk1rV3Jt7Zc0bq0b2hY=",
           "user-agent": "Shopify-Captain-Hook"}


# -- the history -------------------------------------------------------------------------------
def history(app: Any, runs: int, body: dict[str, Any], now: float) -> dict[str, int]:
    """Write *runs* finished runs spread over the 14 days before *now*; statuses written."""
    from engine.records import DeadLetter, start

    rng = random.Random(7)
    flows = [app.flows.flows[name] for name in FLOWS]
    written: dict[str, int] = {}
    group: list[Any] = []
    for i in range(runs):
        flow = flows[i % len(flows)]
        at = now - 14 * 86400 * (1 - i / runs)
        message = {**body, "order_number": 1_000_000 + i}
        headers = {**HEADERS, "x-shopify-webhook-id": f"{i:08x}-bench"}
        state = start(flow, message, headers, trigger="webhook", now=at)
        # the step's record as the runner leaves it (with its output snapshot, unless
        # FLOWRUN_STEP_SNAPSHOTS=0)
        app.runner.advance(flow, state)
        state.created_at, state.updated_at = at, at + 0.05
        roll = rng.random()
        state.status = "dead_lettered" if roll < 0.01 else "filtered" if roll < 0.06 \
            else "succeeded"
        written[state.status] = written.get(state.status, 0) + 1
        if state.status == "dead_lettered":
            state.error = {"step": "remember", "kind": "http", "message": "ERP answered 422"}
            entry = DeadLetter.for_run(state)
            entry.created_at = at
            app.store.save_run(state, dead_letter=entry)
            continue
        group.append((state, None))
        if len(group) == GROUP:
            app.store.create_runs(group)
            group = []
    if group:
        app.store.create_runs(group)
    return written


# -- measuring ---------------------------------------------------------------------------------
def latency(samples: int, query: Callable[[int], object]) -> dict[str, float]:
    times = []
    for n in range(samples):
        started = time.perf_counter()
        query(n)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def queries(app: Any, runs: int, samples: int) -> dict[str, dict[str, float]]:
    from engine.console.views import flow_health
    from engine.store.base import RunFilter

    rng = random.Random(11)
    keys = [str(1_000_000 + rng.randrange(runs)) for _ in range(samples)]
    out = {"runs by business key": latency(samples, lambda n: app.store.list_runs(
        RunFilter(key=keys[n], limit=50)))}
    for status in ("succeeded", "filtered", "dead_lettered"):
        out[f"runs by flow and status ({status})"] = latency(
            samples, lambda n, s=status: app.store.list_runs(RunFilter(
                flow=FLOWS[n % len(FLOWS)], status=s, limit=50)))
    out["console flow health"] = latency(max(10, samples // 10), lambda n: flow_health(app))
    return out


class Backend:
    """Builds the store and an `App` on it, and says how much it holds."""

    def __init__(self, name: str, folder: Path, flows: Path):
        self.name, self.folder, self.flows = name, folder, flows
        self.server: Any = None

    def app(self) -> Any:
        from engine.app import App
        from engine.settings import Settings

        settings = Settings(home=self.folder / "home", flows=self.flows)
        if self.name == "redis":
            from tests.redis_fixture import RedisServer

            self.server = RedisServer(self.folder / "redis")
            settings = Settings(home=self.folder / "home", flows=self.flows,
                                redis_url=self.server.url)
        return App(settings)

    def used(self, app: Any) -> int:
        """Bytes in use now: SQLite's pages in use, Redis's used_memory."""
        if self.name == "redis":
            return int(app.store.redis.info("memory")["used_memory"])
        db = app.store._db()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * db.execute("PRAGMA page_size").fetchone()[0])

    def close(self, app: Any) -> None:
        app.store.close()
        if self.server is not None:
            self.server.stop()


def measure(name: str, runs: int, samples: int, body: dict[str, Any], body_bytes: int,
            tmp: Path, step: str = "set") -> dict[str, Any]:
    from engine.store.base import Keep, RetentionPolicy

    flows = tmp / "flows"
    flows.mkdir(exist_ok=True)
    for flow in FLOWS:
        text = FLOW.format(name=flow, step=STEPS[step].format())
        (flows / f"{flow}.yaml").write_text(text, encoding="utf-8")
    backend = Backend(name, tmp / name, flows)
    app = backend.app()
    try:
        empty = backend.used(app)
        now = time.time()
        started = time.perf_counter()
        statuses = history(app, runs, body, now)
        write_s = time.perf_counter() - started
        full = backend.used(app) - empty
        print(f"{name}: {runs} runs written in {write_s:.1f} s; {full / runs:.0f} bytes per run",
              flush=True)
        measured = queries(app, runs, samples)
        for what, figures in measured.items():
            print(f"  {what}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms", flush=True)
        later = now + 1
        started = time.perf_counter()
        compacted = app.store.prune(RetentionPolicy(Keep(runs=None, bodies=0.0,
                                                         dead_letters=None)), later)
        compact_s = time.perf_counter() - started
        small = backend.used(app) - empty
        started = time.perf_counter()
        removed = app.store.prune(RetentionPolicy(Keep(runs=0.0, bodies=None,
                                                       dead_letters=None)), later)
        remove_s = time.perf_counter() - started
        left = backend.used(app) - empty
    finally:
        backend.close(app)
    n_compacted, n_removed = compacted.total, removed.total
    print(f"  compacted {n_compacted} in {compact_s:.1f} s, {small / runs:.0f} bytes per run "
          f"after; removed {n_removed} in {remove_s:.1f} s", flush=True)
    steady = (BODY_DAYS * full + (KEEP_DAYS - BODY_DAYS) * small) / KEEP_DAYS / runs
    return {"runs": runs, "statuses": statuses, "write_seconds": round(write_s, 1),
            "bytes_in_use": full, "bytes_per_run": round(full / runs),
            "bytes_per_run_over_body": round(full / runs / body_bytes, 2),
            "queries": measured,
            "compacted": n_compacted, "compact_seconds": round(compact_s, 2),
            "compact_per_s": round(n_compacted / compact_s) if compact_s else None,
            "bytes_per_run_compacted": round(small / runs),
            "steady_bytes_per_run": round(steady),
            "steady_bytes_per_run_over_body": round(steady / body_bytes, 2),
            "removed": n_removed, "remove_seconds": round(remove_s, 2),
            "remove_per_s": round(n_removed / remove_s) if remove_s else None,
            "bytes_in_use_after_removal": left}


def figures_of(name: str, got: dict[str, Any]) -> list[dict[str, Any]]:
    label = {"sqlite": "SQLite", "redis": "Redis"}[name]
    out = [figure(f"{label}: retained bytes per run ÷ body", got["bytes_per_run_over_body"],
                  "×", GOALS["bytes_per_run_over_body"],
                  note=f"{got['bytes_per_run']} bytes per run at {got['runs']} runs"),
           figure(f"{label}: bytes per run once compacted", got["bytes_per_run_compacted"],
                  "bytes"),
           figure(f"{label}: steady state ({KEEP_DAYS}d runs, {BODY_DAYS}d bodies) ÷ body",
                  got["steady_bytes_per_run_over_body"], "×", GOALS["bytes_per_run_over_body"],
                  note=f"{got['steady_bytes_per_run']} bytes per run kept, on average")]
    for what, q in got["queries"].items():
        out.append(figure(f"{label}: {what} p95", q["p95_ms"], "ms", GOALS["query_p95_ms"],
                          note=f"p50 {q['p50_ms']} ms"))
    out.append(figure(f"{label}: compaction", got["compact_per_s"], "runs/s", better="higher"))
    out.append(figure(f"{label}: pruning", got["remove_per_s"], "runs/s", better="higher"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="Runs in the history.")
    parser.add_argument("--backends", default="sqlite,redis", help="Comma-separated: sqlite, "
                        "redis.")
    parser.add_argument("--samples", type=int, default=200, help="Queries timed per kind.")
    parser.add_argument("--step", choices=sorted(STEPS), default="set",
                        help="The flows' steps: set (the body unchanged), transform (a new body, "
                        "which the envelope holds), two-transforms (the first new body's "
                        "output snapshot is kept: FLOWRUN_STEP_SNAPSHOTS bytes at most).")
    parser.add_argument("--output", help="Result file (default bench/results/store_growth.json).")
    args = parser.parse_args()
    import json

    raw = order_body()
    body = json.loads(raw)
    results: dict[str, Any] = {}
    figures: list[dict[str, Any]] = []
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-store-{name}-") as tmp:
            results[name] = measure(name, args.runs, args.samples, body, len(raw), Path(tmp),
                                    args.step)
        figures.extend(figures_of(name, results[name]))
    print(f"\n{'figure':<58} {'measured':>14} {'goal':>10}")
    for row in figures:
        goal = "-" if row["goal"] is None else f"{row['goal']:g}"
        print(f"{row['name'][:58]:<58} {row['value']:>10g} {row['unit']:<4}{goal:>9}"
              + ("" if row["met"] is None else "  met" if row["met"] else "  MISSED"))
    write_result(output_path(args.output, "store_growth"), "store_growth",
                 {"body_bytes": len(raw), "goals": GOALS, "backends": results}, figures)


if __name__ == "__main__":
    main()
