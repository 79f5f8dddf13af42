"""The benchmark suite behind `scripts/bench`: run every benchmark, then summarise and chart.

Each benchmark runs in a process of its own (a clean heap for the memory figures, no warm caches
shared between them) and writes bench/results/<name>.json; the suite reads their ``figures``
back, prints every figure next to its goal, and writes summary.json and summary.png. A benchmark
that fails is reported as failed with the end of its output, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, environment, figure

Figures = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Bench:
    name: str
    full: list[str]
    quick: list[str]
    #: figures from a result file that has no ``figures`` list of its own
    adapter: Figures | None = None
    #: why it cannot run here (checked just before it would), or None
    unavailable: Callable[[], str | None] = field(default=lambda: None)

    @property
    def script(self) -> Path:
        return ROOT / "bench" / f"{self.name}.py"


def jsonata_figures(data: dict[str, Any]) -> list[dict[str, Any]]:
    """bench/jsonata.py writes rows per case; its goals are in ``goals``."""
    goals = data.get("goals", {})
    out = []
    for row in data.get("results", []):
        case = row["case"]
        out.append(figure(f"JSONata {case}: compiled ÷ hand-written",
                          round(row["ratio_vs_hand_written"], 2), "×",
                          goals.get("ratio_vs_hand_written_max")))
        if row.get("ratio_vs_jsonata_js") is not None:
            out.append(figure(f"JSONata {case}: compiled ÷ jsonata-js",
                              round(row["ratio_vs_jsonata_js"], 2), "×", 1.0,
                              note="below 1: faster than the JavaScript reference"))
        out.append(figure(f"JSONata {case}: compile with code generation at once",
                          round(row["compile_ms"], 2), "ms", goals.get("compile_ms_max")))
        if "compile_at_load_ms" in row:
            out.append(figure(f"JSONata {case}: compile at flow load (tiered)",
                              round(row["compile_at_load_ms"], 2), "ms",
                              goals.get("compile_ms_max")))
        if "compile_when_hot_ms" in row:
            out.append(figure(f"JSONata {case}: code generation once hot (tiered)",
                              round(row["compile_when_hot_ms"], 2), "ms",
                              goals.get("compile_ms_max")))
    return out


def redis_missing() -> str | None:
    """Celery throughput and store growth start a redis-server of their own
    (tests/redis_fixture.py)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


def nodered_missing() -> str | None:
    """bench/nodered.py needs wrk, Node.js with npm (it installs Node-RED) and redis-server."""
    from bench.sidebyside.servers import prerequisites_missing

    return prerequisites_missing()


BENCHES = [
    Bench("engine_overhead", ["--messages", "300"], ["--messages", "30"]),
    Bench("jsonata", [], ["--quick"], adapter=jsonata_figures),
    Bench("webhook_ingest", ["--seconds", "10", "--levels", "1,16,64"],
          ["--seconds", "1", "--levels", "1,16,64", "--client-processes", "1"]),
    # full size: the sizes their owners chose (the benchmarks' own defaults)
    Bench("celery_throughput", [], ["--runs", "40", "--rounds", "1", "--latency-samples", "20"],
          unavailable=redis_missing),
    Bench("connections", [], ["--calls", "30"]),
    Bench("poll_100k", ["--pages", "1000", "--per-page", "100"],
          ["--pages", "20", "--per-page", "100"]),
    Bench("validate_1000", ["--flows", "1000"], ["--flows", "50"]),
    Bench("nodered", [], ["--quick"], unavailable=nodered_missing),
    # full size: 100,000 runs per store (1,000,000, the script's default, takes most of an hour)
    Bench("store_growth", ["--runs", "100000"], ["--runs", "1000", "--samples", "20"],
          unavailable=redis_missing),
]


# -- running -----------------------------------------------------------------------------------
def run_bench(bench: Bench, quick: bool, results: Path) -> dict[str, Any]:
    """Run one benchmark; its result file, figures and status (ok, failed or skipped)."""
    why = f"bench/{bench.name}.py does not exist" if not bench.script.exists() \
        else bench.unavailable()
    if why:
        print(f"\n== {bench.name}: skipped ({why})")
        return {"status": "skipped", "reason": why, "figures": []}
    print(f"\n== {bench.name}", flush=True)
    target = results / f"{bench.name}.json"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as tmp:
        command, written = _command(bench, quick, target, Path(tmp))
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(done.stdout, end="")
        seconds = round(time.perf_counter() - started, 1)
        if done.returncode != 0 or not written.exists():
            return {"status": "failed", "seconds": seconds, "figures": [],
                    "reason": f"exit {done.returncode}: {done.stdout[-600:]}"}
        if written != target:
            shutil.copyfile(written, target)
    data = json.loads(target.read_text(encoding="utf-8"))
    figures = data.get("figures") or (bench.adapter(data) if bench.adapter else [])
    return {"status": "ok", "seconds": seconds, "result": _shown(target), "figures": figures}


def _command(bench: Bench, quick: bool, target: Path, tmp: Path) -> tuple[list[str], Path]:
    """The command line, and where its result file will be. bench/jsonata.py (kept by the JSONata
    work) always writes beside itself, so a copy of it runs from *tmp* and its file is copied."""
    args = bench.quick if quick else bench.full
    if bench.name != "jsonata":
        return [sys.executable, str(bench.script), *args, "--output", str(target)], target
    (tmp / "bench" / "results").mkdir(parents=True)
    shutil.copyfile(bench.script, tmp / "bench" / "jsonata.py")
    return ([sys.executable, str(tmp / "bench" / "jsonata.py"), *args],
            tmp / "bench" / "results" / "jsonata.json")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# -- summary -----------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'figure':<52} {'measured':>14} {'goal':>14}  met")
    for row in rows:
        sign = "≤" if row["better"] == "lower" else "≥"
        goal = f"{sign} {row['goal']:g} {row['unit']}" if row["goal"] is not None else "-"
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        value = "-" if row["value"] is None else f"{row['value']:g} {row['unit']}"
        print(f"{row['name'][:52]:<52} {value:>14} {goal:>14}  {met}")


def summarise(outcomes: dict[str, dict[str, Any]], quick: bool, results: Path) -> dict[str, Any]:
    rows = [{"benchmark": name, **fig} for name, outcome in outcomes.items()
            for fig in outcome["figures"]]
    graded = [r for r in rows if r["met"] is not None]
    return {**environment(), "quick": quick,
            "benchmarks": {name: {k: v for k, v in outcome.items() if k != "figures"}
                           for name, outcome in outcomes.items()},
            "goals_met": sum(r["met"] for r in graded),
            "goals_missed": sum(not r["met"] for r in graded),
            "figures": rows,
            "chart": _shown(results / "summary.png")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description="Run every flowrunner "
                                     "benchmark; print each figure next to its goal; write "
                                     "bench/results/*.json, summary.json and summary.png.")
    parser.add_argument("--quick", action="store_true", help="Smallest sizes: a smoke run.")
    parser.add_argument("--only", help="Comma-separated benchmark names to run.")
    parser.add_argument("--skip", default="", help="Comma-separated benchmark names to leave "
                        "out.")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Folder for the result "
                        "files (default bench/results).")
    args = parser.parse_args(argv)
    names = [b.name for b in BENCHES]
    chosen = args.only.split(",") if args.only else names
    unknown = [n for n in [*chosen, *filter(None, args.skip.split(","))] if n not in names]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(names)}")
    args.results.mkdir(parents=True, exist_ok=True)
    outcomes = {b.name: run_bench(b, args.quick, args.results) for b in BENCHES
                if b.name in chosen and b.name not in args.skip.split(",")}
    summary = summarise(outcomes, args.quick, args.results)
    from bench.chart import draw

    summary["chart"] = draw(summary, args.results / "summary.png")
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False)
                                               + "\n", encoding="utf-8")
    print_table(summary["figures"])
    failed = [n for n, o in outcomes.items() if o["status"] == "failed"]
    print(f"\ngoals met {summary['goals_met']}, missed {summary['goals_missed']}; "
          f"benchmarks failed: {', '.join(failed) or 'none'}; skipped: "
          f"{', '.join(n for n, o in outcomes.items() if o['status'] == 'skipped') or 'none'}")
    print(f"wrote {_shown(args.results / 'summary.json')}"
          + (f" and {summary['chart']}" if summary["chart"].endswith(".png") else
             f"; chart: {summary['chart']}"))
    return 1 if failed else 0
