"""Polling 100,000 records across 1,000 pages: memory stays flat, the cursor moves page by page.

A partner API on loopback (a separate process, so its memory and CPU are not counted) serves
PAGES pages of PER_PAGE records, each page linking to the next (``paginate: {next_url: ...}``),
records ordered by ``updated_at``. This process is the poller: the real `App` with its SQLite
store and the embedded executor running the flow's runs meanwhile, as `flowrun scheduler` does,
and one `PollJob` reading all the pages.

The partner is the observer. Each time a page is asked for, it samples the poller's resident
memory (/proc/PID/status) and reads the cursor the poller has committed to its state database,
so the figures are what an outsider sees over time, not what the poller says of itself:

* RSS at the first page vs at the last page (and the peak of all samples) — flat means the poll
  streams page by page instead of holding what it read;
* how many pages were committed to the cursor before the next page was asked for — per page
  means a poll cut off at page 900 goes on from page 900, not from the start.

Prints the figures next to their goals and writes bench/results/poll_100k.json.

    python bench/poll_100k.py [--pages 1000] [--per-page 100] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    figure,
    free_port,
    output_path,
    rss_mb,
    send_json,
    write_result,
)

FLOW_ID = "bench-poll"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GOAL_RSS_GROWTH_MB = 10.0
FLOW = """\
flow: bench-poll
trigger:
  poll:
    every: 1h
    http:
      url: "{url}/records"
      params: {{updated_since: "{{{{cursor}}}}"}}
    items: data
    cursor: {{field: updated_at, start: "2025-12-31T00:00:00Z", commit: page}}
    paginate: {{next_url: links.next, max_pages: {max_pages}}}
    idempotency_key: id
steps:
  - id: keep
    set: {{sku: sku, qty: qty}}
"""


def stamp(n: int) -> str:
    return (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")


# -- the partner (its own process) -------------------------------------------------------------
def partner(port: int, pages: int, per_page: int, poller: int, state_db: str, samples: str,
            ready: Any) -> None:
    """Serve the pages; at each request note the poller's RSS and its committed cursor."""
    log = open(samples, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    def committed() -> str | None:
        try:
            with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as db:
                row = db.execute("SELECT value FROM cursors WHERE name = ?",
                                 (f"poll:{FLOW_ID}",)).fetchone()
        except sqlite3.Error:
            return None  # not created yet
        return str(row[0]) if row else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            log.write(json.dumps({"page": page, "t": time.time(), "rss_mb": rss_mb(poller),
                                  "cursor": committed()}) + "\n")
            log.flush()
            first = (page - 1) * per_page
            body = {"data": [{"id": f"r{n:07d}", "updated_at": stamp(n), "sku": f"SKU-{n % 977}",
                              "qty": 1 + n % 9, "warehouse": "DE-HAM-1",
                              "note": "restock after cycle count"}
                             for n in range(first, first + per_page)],
                    "links": {"next": f"/records?page={page + 1}" if page < pages else None}}
            send_json(self, body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


# -- the poller (this process) -----------------------------------------------------------------
def poll_once(home: Path, url: str, pages: int) -> dict[str, Any]:
    """One poll of all the pages through the real App; then wait for the runs to finish."""
    from engine.app import App
    from engine.poll.job import PollJob
    from engine.settings import Settings

    flows = home / "flows"
    flows.mkdir()
    (flows / f"{FLOW_ID}.yaml").write_text(FLOW.format(url=url, max_pages=pages + 1),
                                           encoding="utf-8")
    app = App(Settings(home=home / "state", flows=flows, schemas=ROOT / "schemas"))
    if not app.flows.ok:
        raise SystemExit(f"the bench flow does not load: {list(app.flows.problems)}")
    app.executor.start(resume=False)
    try:
        started = time.perf_counter()
        result = PollJob(app, app.flows.flows[FLOW_ID], "bench", lease_ttl=60).run(time.time())
        poll_s = time.perf_counter() - started
        if result.outcome is None:
            raise SystemExit(f"the poll failed: {result.error}")
        runs = _wait_for_runs(app, result.outcome.records)
        all_s = time.perf_counter() - started
        cursor = app.store.get_cursor(f"poll:{FLOW_ID}")
    finally:
        app.executor.stop()
        app.store.close()
    return {"records": result.outcome.records, "pages": result.outcome.pages,
            "duplicates": result.outcome.duplicates, "poll_seconds": round(poll_s, 2),
            "runs": runs, "poll_and_runs_seconds": round(all_s, 2), "final_cursor": cursor,
            "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                         / 1024, 1)}


def _wait_for_runs(app: Any, expected: int, timeout: float = 900.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = app.store.count_runs(FLOW_ID)
        if counts.get("succeeded", 0) >= expected or time.monotonic() > deadline:
            return dict(counts)
        time.sleep(0.2)


def per_page_commits(samples: list[dict[str, Any]], per_page: int) -> int:
    """Pages whose last record was committed to the cursor before the next page was asked for."""
    done = 0
    for sample in samples:
        if sample["page"] > 1 and sample["cursor"] == stamp((sample["page"] - 1) * per_page - 1):
            done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowrun-poll-") as tmp:
        home, port = Path(tmp), free_port()
        samples_file = home / "samples.jsonl"
        ready = multiprocessing.Event()
        server = multiprocessing.Process(
            target=partner, daemon=True,
            args=(port, args.pages, args.per_page, os.getpid(),
                  str(home / "state" / "state.db"), str(samples_file), ready))
        server.start()
        try:
            if not ready.wait(30):
                raise SystemExit("the loopback partner did not start")
            outcome = poll_once(home, f"http://127.0.0.1:{port}", args.pages)
        finally:
            server.terminate()
            server.join(10)
        samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    report(args, outcome, samples)


def report(args: argparse.Namespace, outcome: dict[str, Any],
           samples: list[dict[str, Any]]) -> None:
    expected = args.pages * args.per_page
    if outcome["records"] != expected:
        raise SystemExit(f"the poll took {outcome['records']} records, not {expected}")
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    growth = round(last - first, 1)
    commits = per_page_commits(samples, args.per_page)
    rate = round(outcome["records"] / outcome["poll_seconds"], 1)
    print(f"poll of {expected} records over {args.pages} pages: {outcome['poll_seconds']} s "
          f"({rate} records/s taken in), runs done after {outcome['poll_and_runs_seconds']} s: "
          f"{outcome['runs']}")
    print(f"  poller RSS first page {first:.1f} MiB, last page {last:.1f} MiB, growth "
          f"{growth:+.1f} MiB (goal ≤ {GOAL_RSS_GROWTH_MB:g}), peak sampled "
          f"{max(s['rss_mb'] for s in samples):.1f} MiB")
    print(f"  cursor committed before the next page was asked for: {commits} of "
          f"{args.pages - 1} pages (goal: all); final cursor {outcome['final_cursor']}")
    figures = [
        figure(f"poll RSS growth, page 1 → {args.pages}", growth, "MiB", GOAL_RSS_GROWTH_MB),
        figure("poll pages committed to the cursor", commits, "pages", args.pages - 1,
               better="higher", note="seen by the partner before it served the next page"),
        figure("poll intake", rate, "records/s", better="higher",
               note="runs execute meanwhile in the same process"),
    ]
    details = {"pages": args.pages, "per_page": args.per_page, **outcome,
               "rss_mb": {"first_page": first, "last_page": last,
                          "peak_sampled": max(s["rss_mb"] for s in samples)},
               "cursor_commits_per_page": commits,
               # every 10th sample keeps the file small while still showing the curve
               "samples": samples[:: max(1, len(samples) // 100)]}
    write_result(output_path(args.output, "poll_100k"), "poll_100k", details, figures)


if __name__ == "__main__":
    main()
