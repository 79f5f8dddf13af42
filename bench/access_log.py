"""What logging costs webhook intake: `flowrun serve` (embedded) with and without its access log.

Three servers, the same one-step Shopify flow as bench/nodered.py's intake phase, each loaded in
turn by wrk (one thread, 16 connections, the ~3.4 KB signed order) for --seconds, --rounds
times: **quiet** (``FLOWRUN_LOG_LEVEL=WARNING``: no run story, no access line), **story**
(INFO, ``--no-access-log``: two run lines per request, accepted and finished) and **access**
(INFO with the access line: three lines per request). Logs are JSON lines written to a file, as
a service's stderr usually is. Prints req/s and CPU per request, and the median over the rounds
of each round's ratio. Writes bench/results/access_log.json.

    python bench/access_log.py [--seconds 5] [--rounds 3] [--output PATH]

Needs wrk (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import statistics
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

#: name → (FLOWRUN_LOG_LEVEL, access log on)
SETUPS = {"quiet": ("WARNING", False), "story": ("INFO", False), "access": ("INFO", True)}
CONNECTIONS = 16


def start(procs: Processes, name: str, home: Path, level: str, access: bool) -> servers.Server:
    port = free_port()
    env = servers.flowrunner_env(home, "http://127.0.0.1:9", None)
    env.update(FLOWRUN_LOG_LEVEL=level, FLOWRUN_LOG_FORMAT="json")
    args = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port),
            "--access-log" if access else "--no-access-log"]
    process = procs.start(name, args, env=env, cwd=ROOT)
    wait_until(lambda: servers.get(port, "/readyz")[0] == 200, f"flowrun serve ({name})",
               lambda: process.poll() is None, log=lambda: procs.log_tail(name))
    return servers.Server(name, port, [process.pid], home=home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="Length of one measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (the setups in turn).")
    parser.add_argument("--output")
    args = parser.parse_args()
    why = wrk_missing()
    if why:
        raise SystemExit(f"bench/access_log.py cannot run: {why}")
    body = order_body()
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in SETUPS}
    with measure.workspace("access", body) as (tmp, load, procs):
        targets = {name: Target(name, "flowrunner",
                                start(procs, name, tmp / name, level, access), INTAKE)
                   for name, (level, access) in SETUPS.items()}
        for target in targets.values():
            measure.intake(target, load, CONNECTIONS, max(1, args.seconds // 2))  # warm-up
        for round_no in range(args.rounds):
            for name, target in targets.items():
                result = measure.intake(target, load, CONNECTIONS, args.seconds)
                seen[name].append(result)
                print(f"  round {round_no + 1} {name:<7} {result['req_per_s']:>8} req/s  "
                      f"CPU {result['cpu_ms_per_request']} ms/req  "
                      f"{result['errors'] or ''}", flush=True)
    summary = {name: {"req_per_s": statistics.median(r["req_per_s"] for r in rounds),
                      "cpu_ms_per_request": statistics.median(
                          r["cpu_ms_per_request"] for r in rounds)}
               for name, rounds in seen.items()}
    ratios = {f"{a}/{b}": round(statistics.median(
        x["req_per_s"] / y["req_per_s"] for x, y in zip(seen[a], seen[b], strict=True)), 3)
        for a, b in (("access", "story"), ("story", "quiet"), ("access", "quiet"))}
    for name, values in summary.items():
        print(f"{name:<7} {values['req_per_s']:>8} req/s  CPU {values['cpu_ms_per_request']} "
              "ms/req (medians)")
    for pair, ratio in ratios.items():
        print(f"req/s {pair}: {ratio} (median of the rounds' ratios)")
    write_result(output_path(args.output, "access_log"), "access_log",
                 {"settings": {"seconds": args.seconds, "rounds": args.rounds,
                               "connections": CONNECTIONS, "body_bytes": len(body)},
                  "summary": summary, "ratios": ratios, "rounds": seen},
                 [figure(f"req/s {pair}", ratio, "ratio") for pair, ratio in ratios.items()])


if __name__ == "__main__":
    main()
