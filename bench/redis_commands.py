"""Redis commands per one-step webhook run, alone: the `redis_commands` figure of
bench/nodered.py in seconds, for working on the message path.

Starts a private redis-server, `flowrun serve` on it, one Celery worker process (prefork) and
the effect stub, warms them up, then sends --runs Shopify-signed orders to the one-step flow
(bench/flows/webhook-intake.yaml) and counts, with INFO commandstats, what Redis executed
until every process is idle again (commands run by Lua scripts included, as Redis counts them).

    python bench/redis_commands.py [--runs 500] [--rounds 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.nodered import start_stub  # noqa: E402
from bench.sidebyside import measure, servers  # noqa: E402
from bench.sidebyside.load import order_body, shopify_signature  # noqa: E402
from bench.sidebyside.measure import INTAKE, Load, Target  # noqa: E402
from bench.sidebyside.procs import Processes, terminated_as_interrupt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="One-step runs per round.")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds (the median is shown).")
    parser.add_argument("--json", action="store_true", help="Print every round as JSON too.")
    args = parser.parse_args()
    why = servers.redis_missing()
    if why:
        raise SystemExit(f"bench/redis_commands.py cannot run: {why}")
    body = order_body()
    with tempfile.TemporaryDirectory(prefix="flowrun-bench-commands-") as tmp_name, \
            terminated_as_interrupt():
        tmp = Path(tmp_name)
        (tmp / "body.json").write_bytes(body)
        load = Load(body, tmp / "body.json", shopify_signature(body))
        procs = Processes(tmp / "logs")
        try:
            stub = start_stub(procs)
            server = servers.start_serve(procs, "serve", tmp / "serve", stub.url,
                                         servers.start_redis(procs, "redis", tmp / "redis"))
            servers.start_worker(procs, "worker", server, stub.url, 1)
            target = Target("one-step", "flowrunner", server, INTAKE)
            measure.warm_up(target, load, None, 40)
            rounds = [measure.commands_per_run(target, load, stub.url, args.runs)
                      for _ in range(args.rounds)]
        finally:
            procs.stop_all()
    for result in rounds:
        print(f"{result['total_per_run']} commands per run "
              f"({result['total_per_run_less_idle']} less idle; "
              f"{result['succeeded_in_store']} succeeded of {result['runs_sent']}): "
              + ", ".join(f"{name} {n}" for name, n in result["per_run"].items()))
    totals = [r["total_per_run"] for r in rounds if r["total_per_run"] is not None]
    if len(rounds) > 1 and totals:
        print(f"median {statistics.median(totals)} commands per run")
    if args.json:
        print(json.dumps(rounds, indent=1))
    if any(r["succeeded_in_store"] < r["accepted_202"] for r in rounds):
        print("NOT every accepted run succeeded", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\nbench/redis_commands.py: interrupted; every server it started is stopped",
              file=sys.stderr)
        sys.exit(130)
