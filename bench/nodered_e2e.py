"""The end-to-end phase of bench/nodered.py alone, with an optional baseline checkout beside it.

Node-RED 4 runs the reference flow (bench/flows/nodered/reference.json); flowrunner runs
bench/flows/webhook-reference.yaml embedded (SQLite) from this checkout and, with --baseline,
from another checkout of flowrunner too, so a change is measured against its parent and
against Node-RED in the same rounds (A, B, C, A, B, C, …). --celery adds flowrunner on Celery
with two worker processes (from the baseline checkout too, with --baseline). Prints effects/s,
CPU per message and each round's ratio to Node-RED; writes bench/results/nodered_e2e.json.

    python bench/nodered_e2e.py [--rounds 4] [--messages 2000] [--baseline PATH] [--celery]
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

from bench.common import free_port, output_path, write_result  # noqa: E402
from bench.nodered import start_stub  # noqa: E402
from bench.sidebyside import measure, servers  # noqa: E402
from bench.sidebyside.load import order_body  # noqa: E402
from bench.sidebyside.measure import REFERENCE, Target  # noqa: E402
from bench.sidebyside.procs import Processes, wait_until  # noqa: E402

NODE_RED = "Node-RED (c) reference flow"
CELERY = "flowrunner Celery, 2 worker processes"


def start_serve_from(procs: Processes, name: str, home: Path, stub_url: str,
                     checkout: Path, redis: tuple[int, str] | None = None) -> servers.Server:
    """`flowrun serve` running the code of *checkout* with this bench's flows: embedded, or
    on Celery with *redis* (its workers started by `start_worker_from`)."""
    port = free_port()
    env = servers.flowrunner_env(home, stub_url, redis[1] if redis else None)
    env["PYTHONPATH"] = str(checkout)
    process = procs.start(name, [sys.executable, "-m", "engine.cli", "serve", "--port",
                                 str(port), "--no-access-log"], env=env, cwd=checkout)
    wait_until(lambda: servers.get(port, "/readyz")[0] == 200, f"flowrun serve ({name})",
               lambda: process.poll() is None, log=lambda: procs.log_tail(name))
    pids = [process.pid] + ([redis[0]] if redis else [])
    return servers.Server(name, port, pids, redis_url=redis[1] if redis else None, home=home)


def start_worker_from(procs: Processes, name: str, server: servers.Server, stub_url: str,
                      checkout: Path, concurrency: int) -> None:
    """`flowrun worker` (prefork) of *checkout* for *server*'s Redis."""
    assert server.home is not None and server.redis_url is not None
    env = servers.flowrunner_env(server.home, stub_url, server.redis_url)
    env["PYTHONPATH"] = str(checkout)
    process = procs.start(name, [sys.executable, "-m", "engine.cli", "worker", "--pool",
                                 "prefork", "--concurrency", str(concurrency), "--loglevel",
                                 "WARNING"], env=env, cwd=checkout)
    server.pids.append(process.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--baseline", help="Another flowrunner checkout to run beside this one.")
    parser.add_argument("--celery", action="store_true",
                        help="Also flowrunner on Celery with two worker processes.")
    parser.add_argument("--output")
    args = parser.parse_args()
    why = servers.prerequisites_missing()
    if why:
        raise SystemExit(f"bench/nodered_e2e.py cannot run: {why}")
    version = servers.ensure_node_red(servers.node_red_folder())
    body = order_body()
    with measure.workspace("e2e", body) as (tmp, load, procs):
        stub = start_stub(procs)
        node_red = servers.start_node_red(procs, servers.node_red_folder(), tmp / "nr",
                                          stub.url, (body, load.headers()))
        targets = [Target(NODE_RED, "Node-RED", node_red, REFERENCE),
                   Target("flowrunner embedded (this checkout)", "flowrunner",
                          start_serve_from(procs, "this", tmp / "this", stub.url, ROOT),
                          REFERENCE)]
        if args.baseline:
            targets.append(Target(
                "flowrunner embedded (baseline)", "flowrunner",
                start_serve_from(procs, "base", tmp / "base", stub.url,
                                 Path(args.baseline).resolve()), REFERENCE))
        if args.celery:
            checkouts = [("", ROOT)] + ([(" (baseline)", Path(args.baseline).resolve())]
                                        if args.baseline else [])
            for n, (suffix, checkout) in enumerate(checkouts):
                celery = start_serve_from(procs, f"celery-{n}", tmp / f"celery-{n}",
                                          stub.url, checkout,
                                          servers.start_redis(procs, f"redis-{n}",
                                                              tmp / f"redis-{n}"))
                start_worker_from(procs, f"worker-{n}", celery, stub.url, checkout, 2)
                targets.append(Target(f"{CELERY}{suffix}", "flowrunner", celery,
                                      REFERENCE))
        for target in targets:
            measure.warm_up(target, load, stub, 40)
        seen: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
        for round_no in range(args.rounds):
            for target in targets:
                result = measure.end_to_end(target, load, stub, args.messages)
                seen[target.label].append(result)
                print(f"  round {round_no + 1} {target.label:<40} "
                      f"{result['effects_per_s']:>8} effects/s  CPU "
                      f"{result['cpu_ms_per_message']} ms/msg  "
                      f"{'exactly once' if result['exactly_once'] else 'MISMATCH'}",
                      flush=True)
    summary = {}
    for target in targets:
        runs = seen[target.label]
        ratios = _ratios(runs, seen[NODE_RED])
        summary[target.label] = {
            "effects_per_s": round(statistics.median(r["effects_per_s"] for r in runs), 1),
            "cpu_ms_per_message": round(statistics.median(r["cpu_ms_per_message"]
                                                          for r in runs), 3),
            "ratio_to_node_red": round(statistics.median(ratios), 3),
            "ratios_by_round": ratios,
            "exactly_once_every_round": all(r["exactly_once"] for r in runs)}
        row = summary[target.label]
        print(f"{target.label:<40} {row['effects_per_s']:>8} effects/s  "
              f"{row['cpu_ms_per_message']:>7} ms/msg  ×{row['ratio_to_node_red']} "
              f"{row['ratios_by_round']}  once: {row['exactly_once_every_round']}")
    if args.baseline:
        mine, base = (seen["flowrunner embedded (this checkout)"],
                      seen["flowrunner embedded (baseline)"])
        summary["this checkout ÷ baseline"] = {
            "effects_per_s": _ratios(mine, base),
            "cpu_ms_per_message": _ratios(mine, base, "cpu_ms_per_message")}
        print(f"this checkout ÷ baseline, round by round: {summary['this checkout ÷ baseline']}")
        if args.celery:
            mine, base = seen[CELERY], seen[f"{CELERY} (baseline)"]
            summary["Celery: this checkout ÷ baseline"] = {
                "effects_per_s": _ratios(mine, base),
                "cpu_ms_per_message": _ratios(mine, base, "cpu_ms_per_message")}
            print(f"Celery, this checkout ÷ baseline, round by round: "
                  f"{summary['Celery: this checkout ÷ baseline']}")
    settings = {"rounds": args.rounds, "messages": args.messages, "celery": args.celery,
                "commit": _commit(ROOT),
                "baseline_commit": _commit(Path(args.baseline)) if args.baseline else None}
    details = {"node_red": version, "settings": settings, "summary": summary,
               "load_average_1m": round(os.getloadavg()[0], 2), "measurements": seen}
    write_result(output_path(args.output, "nodered_e2e"), "nodered_e2e", details, [])


def _commit(checkout: Path) -> str:
    """The commit a checkout is at (the figures name code, not folders)."""
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _ratios(mine: list[dict[str, Any]], base: list[dict[str, Any]],
            key: str = "effects_per_s") -> list[float]:
    """mine[key] ÷ base[key], round by round (figures taken minutes apart at most)."""
    return [round(a[key] / b[key], 3) for a, b in zip(mine, base, strict=True)]


if __name__ == "__main__":
    main()
