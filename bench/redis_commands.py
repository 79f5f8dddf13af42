"""Redis commands and CPU per one-step webhook run on Celery, alone: the `redis_commands` figure
of bench/nodered.py in seconds, for working on the message path.

Starts a private redis-server, `flowrun serve` on it, one Celery worker process (prefork) and
the effect stub, warms them up, then sends --runs Shopify-signed orders to the one-step flow
(bench/flows/webhook-intake.yaml) and counts, with INFO commandstats, what Redis executed
until every process is idle again (commands run by Lua scripts included, as Redis counts them),
and the CPU that serve, the worker (main and pool process) and redis-server used meanwhile.
With --baseline, the same from another checkout of flowrunner (its own Redis and processes),
the two measured in turn (A, B, A, B, …) so the CPU ratio compares the same stretch of time.

    python bench/redis_commands.py [--runs 500] [--rounds 1] [--baseline PATH] [--json]
                                   [--output PATH]

Writes bench/results/redis_commands.json. Goal: at most 15 commands per run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, output_path, write_result  # noqa: E402
from bench.nodered import start_stub  # noqa: E402
from bench.nodered_e2e import start_serve_from, start_worker_from  # noqa: E402
from bench.sidebyside import measure, servers  # noqa: E402
from bench.sidebyside.load import order_body  # noqa: E402
from bench.sidebyside.measure import INTAKE, Load, Target  # noqa: E402
from bench.sidebyside.procs import wait_until  # noqa: E402

PARTS = ("serve", "worker", "redis")
GOAL = 15
WARM_UP = 40
FLOW = "webhook-intake"


def one_round(target: Target, parts: dict[str, int], load: Load, stub_url: str,
              runs: int) -> dict[str, Any]:
    result = measure.commands_per_run(target, load, stub_url, runs, cpu_of=parts)
    cpu = result["cpu_ms_per_run"]
    cpu["total"] = round(sum(cpu.values()), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="One-step runs per round.")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds (medians are shown).")
    parser.add_argument("--baseline", help="Another flowrunner checkout measured in turn.")
    parser.add_argument("--json", action="store_true", help="Print every round as JSON too.")
    parser.add_argument("--output")
    args = parser.parse_args()
    why = servers.redis_missing()
    if why:
        raise SystemExit(f"bench/redis_commands.py cannot run: {why}")
    checkouts = {"this checkout": ROOT}
    if args.baseline:
        checkouts["baseline"] = Path(args.baseline).resolve()
    body = order_body()
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    with measure.workspace("commands", body) as (tmp, load, procs):
        stub = start_stub(procs)
        sides = {}
        for n, (name, checkout) in enumerate(checkouts.items()):
            redis = servers.start_redis(procs, f"redis-{n}", tmp / f"redis-{n}")
            server = start_serve_from(procs, f"serve-{n}", tmp / f"serve-{n}", stub.url,
                                      checkout, redis)
            start_worker_from(procs, f"worker-{n}", server, stub.url, checkout, 1)
            target = Target(name, "flowrunner", server, INTAKE)
            measure.warm_up(target, load, None, WARM_UP)
            # every warm-up run done, or its last commands would count in the first round
            wait_until(lambda s=server: measure.runs_with_status(
                s, stub.url, FLOW, "succeeded", 10 * WARM_UP) >= WARM_UP,
                f"the warm-up runs of {name}", lambda: True)
            sides[name] = (target, dict(zip(("serve", "redis", "worker"), server.pids,
                                            strict=True)))
        for _ in range(args.rounds):
            for name, (target, parts) in sides.items():
                seen[name].append(one_round(target, parts, load, stub.url, args.runs))
                show(name, seen[name][-1])
    summary = {name: summarise(rounds) for name, rounds in seen.items()}
    print()
    for name, row in summary.items():
        print(f"{name:<14} median {row['commands_per_run']} commands per run; CPU per run "
              + ", ".join(f"{part} {row['cpu_ms_per_run'][part]} ms"
                          for part in (*PARTS, "total")))
    mine = summary["this checkout"]
    figures = [figure("Redis commands per one-step run on Celery", mine["commands_per_run"],
                      "commands", GOAL),
               figure("CPU per one-step run on Celery (serve, worker, redis-server)",
                      mine["cpu_ms_per_run"]["total"], "ms")]
    if args.baseline:
        ratios = [round(a["cpu_ms_per_run"]["total"] / b["cpu_ms_per_run"]["total"], 3)
                  for a, b in zip(seen["this checkout"], seen["baseline"], strict=True)]
        summary["cpu_ratio_to_baseline_by_round"] = ratios
        figures.append(figure("CPU per one-step run on Celery ÷ baseline",
                              statistics.median(ratios), "×", 1.0))
        print(f"CPU per run, this checkout ÷ baseline, round by round: {ratios} "
              f"(median {statistics.median(ratios)})")
    if args.json:
        print(json.dumps(seen, indent=1))
    details = {"settings": {"runs": args.runs, "rounds": args.rounds,
                            "baseline": _commit(checkouts.get("baseline")),
                            "commit": _commit(ROOT)},
               "summary": summary, "measurements": seen}
    write_result(output_path(args.output, "redis_commands"), "redis_commands", details, figures)
    if any(r["succeeded_in_store"] < r["accepted_202"] for rounds in seen.values()
           for r in rounds):
        print("NOT every accepted run succeeded", file=sys.stderr)
        sys.exit(1)


def _commit(checkout: Path | None) -> str | None:
    if checkout is None:
        return None
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def show(name: str, result: dict[str, Any]) -> None:
    cpu = result["cpu_ms_per_run"]
    print(f"{name:<14} {result['total_per_run']} commands per run, CPU {cpu['total']} ms "
          f"(serve {cpu['serve']}, worker {cpu['worker']}, redis {cpu['redis']}): "
          + ", ".join(f"{command} {n}" for command, n in result["per_run"].items()),
          flush=True)


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {"commands_per_run": round(statistics.median(r["total_per_run"] for r in rounds), 2),
            "cpu_ms_per_run": {part: round(statistics.median(r["cpu_ms_per_run"][part]
                                                             for r in rounds), 3)
                               for part in (*PARTS, "total")}}


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\nbench/redis_commands.py: interrupted; every server it started is stopped",
              file=sys.stderr)
        sys.exit(130)
