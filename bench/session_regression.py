"""What a range of commits cost the message path: webhook intake of two or more checkouts of
flowrunner, side by side in one run.

Each checkout (``--checkout NAME=PATH``, the first is the reference; this checkout is added last,
as ``this``, unless one of them is it) serves the one-step Shopify flow of bench/nodered.py's
intake phase (bench/flows/webhook-intake.yaml, taken from this checkout for every side) through
its own command line, on the embedded store (SQLite; the runs execute in the server process)
and on a private Redis (intake only, no worker). Every side is loaded in turn by wrk (one
thread, 16 connections, the ~3.4 KB signed order) for --seconds, --rounds times, so each ratio
compares figures taken in the same stretch of a shared machine's time. Log setups (--setups;
quiet and default unless told):

  quiet    FLOWRUN_LOG_LEVEL=WARNING, as bench/nodered.py runs its servers;
  default  no FLOWRUN_LOG_* at all: what a user gets from `flowrun serve` (its default level,
           format and access log), logs written to a file as a service's stderr usually is;
  json     the same with FLOWRUN_LOG_FORMAT=json, as a service feeding a log collector runs.

The figure is CPU per accepted request (the server's process tree and its redis-server, until
idle again: the embedded executor's work counts with the requests that caused it), robust to
other load on the machine; req/s is printed for context. Ratios are the median over the rounds
of each round's ratio, each side ÷ the reference and ÷ the side before it. Writes
bench/results/session_regression.json.

    python bench/session_regression.py --checkout before=../flowrunner-41dac35 \\
        [--checkout main=../flowrunner-main] [--seconds 5] [--rounds 3]
        [--stores embedded,redis] [--setups quiet,default,json] [--output PATH]

Needs wrk (apt-get install -y wrk) and redis-server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, free_port, output_path, write_result  # noqa: E402
from bench.sidebyside import measure, servers  # noqa: E402
from bench.sidebyside.load import order_body, wrk_missing  # noqa: E402
from bench.sidebyside.measure import INTAKE, Target  # noqa: E402
from bench.sidebyside.procs import Processes, wait_until  # noqa: E402

SETUPS = ("quiet", "default", "json")
STORES = ("embedded", "redis")
CONNECTIONS = 16


def commit_of(root: Path) -> str:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def start(procs: Processes, name: str, root: Path, home: Path, setup: str,
          redis: tuple[int, str] | None) -> servers.Server:
    """`python -m engine.cli serve` of the checkout *root*, in its default options."""
    port = free_port()
    env = servers.flowrunner_env(home, "http://127.0.0.1:9", redis[1] if redis else None)
    env.update(PYTHONPATH=str(root), FLOWRUN_SCHEMAS=str(root / "schemas"))
    env.pop("FLOWRUN_LOG_LEVEL")
    if setup == "quiet":
        env["FLOWRUN_LOG_LEVEL"] = "WARNING"
    elif setup == "json":
        env["FLOWRUN_LOG_FORMAT"] = "json"
    process = procs.start(name, [sys.executable, "-m", "engine.cli", "serve", "--port",
                                 str(port)], env=env, cwd=root)
    wait_until(lambda: servers.get(port, "/readyz")[0] == 200, f"flowrun serve ({name})",
               lambda: process.poll() is None, log=lambda: procs.log_tail(name))
    pids = [process.pid] + ([redis[0]] if redis else [])
    return servers.Server(name, port, pids, redis_url=redis[1] if redis else None, home=home)


def parse_checkouts(values: list[str]) -> dict[str, Path]:
    sides: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        root = Path(path).resolve()
        if not sep or not name or not (root / "engine" / "cli.py").exists():
            raise SystemExit(f"--checkout {value!r}: expected NAME=PATH of a flowrunner checkout")
        sides[name] = root
    if not sides:
        raise SystemExit("give at least one --checkout NAME=PATH to compare this checkout with")
    if ROOT not in sides.values():
        sides["this"] = ROOT
    return sides


def ratio(rounds: list[dict[str, Any]], others: list[dict[str, Any]], key: str) -> float:
    """The median over the rounds of each round's *key* of *rounds* ÷ that of *others*."""
    return round(statistics.median(x[key] / y[key] for x, y in zip(rounds, others,
                                                                   strict=True)), 3)


def summarise(seen: dict[str, dict[str, list[dict[str, Any]]]], reference: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Medians per group and side, each side's ratios to the reference and to the side before
    it (``main/before``, ``this/main``); printed, and the figures of the results file."""
    summary: dict[str, Any] = {}
    figures = []
    for group, by_side in seen.items():
        summary[group] = {}
        sides = list(by_side)
        for n, (side, rounds) in enumerate(by_side.items()):
            row: dict[str, Any] = measure.medians(rounds, ("req_per_s", "cpu_ms_per_request"))
            shown = ""
            for other in dict.fromkeys([reference, *sides[max(0, n - 1):n]]):
                if other == side:
                    continue
                cpu = ratio(rounds, by_side[other], "cpu_ms_per_request")
                rate = ratio(rounds, by_side[other], "req_per_s")
                row[f"vs_{other}"] = {"cpu_per_request_ratio": cpu, "req_per_s_ratio": rate}
                figures.append(figure(f"CPU/request {group} {side}/{other}", cpu, "ratio"))
                shown += f"  {side}/{other}: ×{cpu} CPU/req, ×{rate} req/s"
            summary[group][side] = row
            print(f"{group:<17} {side:<8} {row['req_per_s']:>8} req/s  CPU "
                  f"{row['cpu_ms_per_request']} ms/req{shown}")
    return summary, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", default=[],
                        help="NAME=PATH of a checkout; the first is the reference.")
    parser.add_argument("--seconds", type=int, default=5, help="Length of one measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (the sides in turn).")
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--setups", default="quiet,default")
    parser.add_argument("--output")
    args = parser.parse_args()
    sides = parse_checkouts(args.checkout)
    stores = [s for s in args.stores.split(",") if s]
    setups = [s for s in args.setups.split(",") if s]
    if unknown := sorted(set(stores) - set(STORES)) + sorted(set(setups) - set(SETUPS)):
        raise SystemExit(f"unknown store or setup {unknown}: use {STORES} and {SETUPS}")
    why = wrk_missing() or servers.redis_missing()
    if why:
        raise SystemExit(f"bench/session_regression.py cannot run: {why}")
    body = order_body()
    reference = next(iter(sides))
    groups = [(store, setup) for store in stores for setup in setups]
    seen: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"{store}/{setup}": {side: [] for side in sides} for store, setup in groups}
    with measure.workspace("regression", body) as (tmp, load, procs):
        targets: dict[str, dict[str, Target]] = {}
        for store, setup in groups:
            group = f"{store}/{setup}"
            targets[group] = {}
            for side, root in sides.items():
                name = f"{side}-{store}-{setup}"
                redis = servers.start_redis(procs, f"redis-{name}", tmp / f"redis-{name}") \
                    if store == "redis" else None
                server = start(procs, name, root, tmp / name, setup, redis)
                targets[group][side] = Target(name, "flowrunner", server, INTAKE)
        for group_targets in targets.values():
            for target in group_targets.values():
                measure.intake(target, load, CONNECTIONS, max(1, args.seconds // 2))
        for round_no in range(args.rounds):
            for group, group_targets in targets.items():
                # alternate the order too, so no side always follows the same neighbour
                order = list(group_targets.items())
                for side, target in order if round_no % 2 == 0 else order[::-1]:
                    result = measure.intake(target, load, CONNECTIONS, args.seconds)
                    seen[group][side].append(result)
                    print(f"  round {round_no + 1} {group:<17} {side:<8} "
                          f"{result['req_per_s']:>8} req/s  CPU "
                          f"{result['cpu_ms_per_request']} ms/req  "
                          f"{result['errors'] or ''}", flush=True)
    summary, figures = summarise(seen, reference)
    write_result(output_path(args.output, "session_regression"), "session_regression",
                 {"settings": {"seconds": args.seconds, "rounds": args.rounds,
                               "connections": CONNECTIONS, "body_bytes": len(body),
                               "reference": reference, "load_average_start": os.getloadavg()[0]},
                  "checkouts": {side: commit_of(root) for side, root in sides.items()},
                  "summary": summary, "rounds": seen}, figures)


if __name__ == "__main__":
    main()
