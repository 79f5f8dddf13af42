"""flowrunner next to Node-RED 4 on the same machine, in one run: intake and end to end.

Both sides get the same load from the same C load generator (wrk, one thread): the same ~3.4 KB
Shopify order, a correct X-Shopify-Hmac-Sha256 and a new X-Shopify-Webhook-Id on every request.

  intake      wrk for --seconds at 16 connections (req/s) and at 64 (p99 latency); CPU per
              request of the server's process trees (and its redis-server), measured until the
              server is idle again. Node-RED (a) answers 202 (bench/flows/nodered/intake.json),
              (b) maps and routes first (mapping.json); flowrunner runs a one-step flow
              (bench/flows/webhook-intake.yaml) embedded (SQLite), on Redis with no worker
              (intake only), and on Redis with `serve --workers 2` when serve has that option.
  end to end  --messages orders to the reference flow (map 30 lines of JSONata to a canonical
              order, route on region, POST to the region's ERP — a loopback stub counting
              effects by webhook id): Node-RED (reference.json); flowrunner embedded, and on
              Celery (`flowrun worker`, prefork) with 1 and with 2 processes. Effects per second
              run from the first send to the stub counting the last effect; the stub must have
              got every message exactly once.
  Redis       for flowrunner on Redis: commands per accepted run (INFO commandstats) of the
              one-step flow run end to end by one worker, and the size of a run record next to
              the body's.

Every measurement is taken in rounds, the targets in turn (A, B, A, B, …), so a ratio compares
figures from the same stretch of time on a shared machine; the table shows medians, and the
median over the rounds of each round's ratio flowrunner ÷ Node-RED. Writes
bench/results/nodered.json.

    python bench/nodered.py [--quick] [--seconds 10] [--rounds 3] [--e2e-rounds 2]
                            [--messages 3000] [--command-runs 500] [--output PATH]

Needs wrk (apt-get install -y wrk), Node.js with npm, and redis-server. Node-RED 4 is installed
on first use with `npm install --prefix ~/.cache/flowrunner-bench/node-red node-red@4`
(BENCH_NODE_RED_DIR chooses another folder). Every server listens on 127.0.0.1 and is stopped,
with its whole process group, when the bench ends — by error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
import platform
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
from bench.sidebyside.load import order_body  # noqa: E402
from bench.sidebyside.measure import INTAKE, REFERENCE, Load, Stub, Target  # noqa: E402
from bench.sidebyside.procs import Processes, wait_until  # noqa: E402

NOT_AVAILABLE = "not available"
LEVELS = {"rate": 16, "latency": 64}


def start_stub(procs: Processes) -> Stub:
    port = free_port()
    process = procs.start("stub", [sys.executable, "-m", "bench.sidebyside.stub", "--port",
                                   str(port)], cwd=ROOT, env={**os.environ,
                                                              "PYTHONPATH": str(ROOT)})
    stub = Stub(port)
    wait_until(lambda: bool(stub.stats() is not None), "the effect stub",
               lambda: process.poll() is None, limit=30, log=lambda: procs.log_tail("stub"))
    return stub


# -- the phases --------------------------------------------------------------------------------
def intake_phase(procs: Processes, tmp: Path, load: Load, stub: Stub, node_red: servers.Server,
                 args: argparse.Namespace, has_workers: bool) -> dict[str, Any]:
    fr = {"embedded": servers.start_serve(procs, "fr-embedded", tmp / "fr-embedded", stub.url),
          "redis": servers.start_serve(procs, "fr-redis", tmp / "fr-redis", stub.url,
                                       servers.start_redis(procs, "redis-intake",
                                                           tmp / "redis-intake"))}
    if has_workers:
        fr["redis_workers_2"] = servers.start_serve(
            procs, "fr-redis-w2", tmp / "fr-redis-w2", stub.url,
            servers.start_redis(procs, "redis-w2", tmp / "redis-w2"), workers=2)
    targets = [Target(NODE_RED_INTAKE, "Node-RED", node_red, INTAKE),
               Target("Node-RED (b) JSONata map + switch → 202", "Node-RED", node_red,
                      "/hooks/shopify/mapping"),
               Target("flowrunner embedded (SQLite)", "flowrunner", fr["embedded"], INTAKE),
               Target("flowrunner Redis, intake only", "flowrunner", fr["redis"], INTAKE)]
    if has_workers:
        targets.append(Target("flowrunner Redis, serve --workers 2", "flowrunner",
                              fr["redis_workers_2"], INTAKE))
    print(f"\nintake: {len(targets)} targets, {args.rounds} round(s) of {args.seconds} s per "
          f"level {tuple(LEVELS.values())}", flush=True)
    for target in targets:
        measure.intake(target, load, 16, max(1, args.seconds // 4))  # warm-up
    seen: dict[str, dict[int, list[dict[str, Any]]]] = {
        t.label: {c: [] for c in LEVELS.values()} for t in targets}
    for round_no in range(args.rounds):
        for connections in LEVELS.values():
            for target in targets:
                result = measure.intake(target, load, connections, args.seconds)
                seen[target.label][connections].append(result)
                print(f"  round {round_no + 1} c={connections:<3} {target.label:<44} "
                      f"{result['req_per_s']:>8} req/s  p99 {result['p99_ms']:>8} ms  "
                      f"CPU {result['cpu_ms_per_request']} ms/req  {result['errors'] or ''}",
                      flush=True)
    embedded_run = measure.post_one(targets[2], load)
    record = measure.record_size(fr["embedded"], embedded_run) if embedded_run else {}
    for server in fr.values():  # the end-to-end servers start afresh
        procs.stop_pids(server.pids)
    return {"targets": [{"label": t.label, "side": t.side, "path": t.path} for t in targets],
            "rounds": seen, "record_one_step_sqlite": record,
            "serve_workers_option": has_workers}


def end_to_end_phase(procs: Processes, tmp: Path, load: Load, stub: Stub,
                     node_red: servers.Server, args: argparse.Namespace) -> dict[str, Any]:
    embedded = servers.start_serve(procs, "e2e-embedded", tmp / "e2e-embedded", stub.url)
    celery: dict[int, servers.Server] = {}
    for n in (1, 2):
        celery[n] = servers.start_serve(procs, f"e2e-celery-{n}", tmp / f"e2e-celery-{n}",
                                        stub.url, servers.start_redis(procs, f"redis-celery-{n}",
                                                                      tmp / f"redis-celery-{n}"))
        servers.start_worker(procs, f"worker-{n}", celery[n], stub.url, n)
    targets = [Target(NODE_RED_E2E, "Node-RED", node_red, REFERENCE),
               Target("flowrunner embedded (SQLite)", "flowrunner", embedded, REFERENCE),
               Target("flowrunner Celery, 1 worker process", "flowrunner", celery[1], REFERENCE),
               Target("flowrunner Celery, 2 worker processes", "flowrunner", celery[2],
                      REFERENCE)]
    print(f"\nend to end: {args.messages} orders per measurement, {args.e2e_rounds} round(s)",
          flush=True)
    for target in targets:
        measure.warm_up(target, load, stub, 40)
    seen: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
    for round_no in range(args.e2e_rounds):
        for target in targets:
            result = measure.end_to_end(target, load, stub, args.messages)
            seen[target.label].append(result)
            check = "exactly once" if result["exactly_once"] else (
                f"MISMATCH: {result['effects']} effects, {result['distinct']} distinct, "
                f"{result['missing']} missing")
            print(f"  round {round_no + 1} {target.label:<44} {result['effects_per_s']:>8} "
                  f"effects/s  CPU {result['cpu_ms_per_message']} ms/msg  {check}", flush=True)
    one_step = Target("flowrunner Celery, 1 worker process", "flowrunner", celery[1], INTAKE)
    print(f"\nRedis commands per run: {args.command_runs} one-step runs, one worker", flush=True)
    commands = measure.commands_per_run(one_step, load, stub.url, args.command_runs)
    records = {"one_step_redis": _record(celery[1], one_step, load),
               "reference_redis": _record(celery[1], targets[2], load),
               "reference_sqlite": _record(embedded, targets[1], load)}
    return {"targets": [{"label": t.label, "side": t.side, "path": t.path} for t in targets],
            "rounds": seen, "redis_commands": commands, "records": records}


def _record(server: servers.Server, target: Target, load: Load) -> dict[str, Any]:
    run_id = measure.post_one(target, load)
    return measure.record_size(server, run_id) if run_id else {"error": "no run id in the 202"}


# -- the report --------------------------------------------------------------------------------
def summarise(intake: dict[str, Any], e2e: dict[str, Any]) -> dict[str, Any]:
    """Medians per target: req/s and CPU per request at 16 connections, p99 at 64; effects/s
    and CPU per message end to end."""
    rate, latency = LEVELS["rate"], LEVELS["latency"]
    rows = {}
    for target in intake["targets"]:
        runs = intake["rounds"][target["label"]]
        at_rate = measure.medians(runs[rate], ("req_per_s", "cpu_ms_per_request", "p99_ms"))
        at_latency = measure.medians(runs[latency], ("p99_ms", "req_per_s"))
        rows[target["label"]] = {"side": target["side"], "req_per_s": at_rate["req_per_s"],
                                 "p99_ms": at_latency["p99_ms"],
                                 "cpu_ms": at_rate["cpu_ms_per_request"],
                                 "p99_ms_at_16": at_rate["p99_ms"],
                                 "req_per_s_at_64": at_latency["req_per_s"]}
    flows = {}
    for target in e2e["targets"]:
        runs = e2e["rounds"][target["label"]]
        medians = measure.medians(runs, ("effects_per_s", "cpu_ms_per_message"))
        flows[target["label"]] = {
            "side": target["side"], "effects_per_s": medians["effects_per_s"],
            "cpu_ms": medians["cpu_ms_per_message"],
            "exactly_once_every_round": all(r["exactly_once"] for r in runs),
            "mismatches": [{k: r[k] for k in ("effects", "distinct", "missing", "repeated_ids")}
                           for r in runs if not r["exactly_once"]]}
    # a ratio is taken within each round (flowrunner and Node-RED measured minutes apart at
    # most), then the median of those: not a ratio of medians from different moments
    for label, row in rows.items():
        if row["side"] == "flowrunner":
            mine, base = intake["rounds"][label], intake["rounds"][NODE_RED_INTAKE]
            row["ratio_to_node_red"] = {
                "req_per_s": _round_ratio(mine[rate], base[rate], "req_per_s"),
                "p99_ms": _round_ratio(mine[latency], base[latency], "p99_ms"),
                "cpu_ms": _round_ratio(mine[rate], base[rate], "cpu_ms_per_request")}
    for label, row in flows.items():
        if row["side"] == "flowrunner":
            mine, base = e2e["rounds"][label], e2e["rounds"][NODE_RED_E2E]
            row["ratio_to_node_red"] = {
                "effects_per_s": _round_ratio(mine, base, "effects_per_s"),
                "cpu_ms": _round_ratio(mine, base, "cpu_ms_per_message")}
    return {"intake": rows, "end_to_end": flows}


NODE_RED_INTAKE = "Node-RED (a) http in → 202"
NODE_RED_E2E = "Node-RED (c) reference flow"


def _round_ratio(mine: list[dict[str, Any]], base: list[dict[str, Any]], key: str
                 ) -> float | None:
    """Median over the rounds of mine[key] ÷ base[key], round by round."""
    ratios = [a[key] / b[key] for a, b in zip(mine, base, strict=True)
              if a.get(key) is not None and b.get(key)]
    return round(statistics.median(ratios), 3) if ratios else None


def print_table(summary: dict[str, Any], has_workers: bool, extra: dict[str, Any]) -> None:
    rate, latency = LEVELS["rate"], LEVELS["latency"]
    print(f"\n{'intake':<46} {'req/s @' + str(rate):>11} {'p99 ms @' + str(latency):>11} "
          f"{'CPU ms/req':>11}   flowrunner ÷ Node-RED (a)")
    for label, row in summary["intake"].items():
        ratios = row.get("ratio_to_node_red", {})
        print(f"{label:<46} {_fmt(row['req_per_s']):>11} {_fmt(row['p99_ms']):>11} "
              f"{_fmt(row['cpu_ms']):>11}" + (
                  f"   req/s {_fmt(ratios['req_per_s'])}×  p99 {_fmt(ratios['p99_ms'])}×  "
                  f"CPU {_fmt(ratios['cpu_ms'])}×" if ratios else ""))
    if not has_workers:
        print(f"{'flowrunner Redis, serve --workers 2':<46} {NOT_AVAILABLE:>11}   "
              "(flowrun serve has no --workers option)")
    print(f"\n{'end to end, reference flow':<46} {'effects/s':>11} {'CPU ms/msg':>11} "
          f"{'once each':>11}   flowrunner ÷ Node-RED (c)")
    for label, row in summary["end_to_end"].items():
        ratios = row.get("ratio_to_node_red", {})
        once = "yes" if row["exactly_once_every_round"] else "NO"
        print(f"{label:<46} {_fmt(row['effects_per_s']):>11} {_fmt(row['cpu_ms']):>11} "
              f"{once:>11}" + (f"   effects/s {_fmt(ratios['effects_per_s'])}×  "
                               f"CPU {_fmt(ratios['cpu_ms'])}×" if ratios else ""))
        for mismatch in row["mismatches"]:
            print(f"    MISMATCH {mismatch}")
    commands = extra["redis_commands"]
    print("\nRedis commands per accepted run (one-step flow, 1 worker; commands run by Lua "
          f"scripts included): {commands['total_per_run']} "
          f"({commands['total_per_run_less_idle']} less the idle processes' own)")
    print("  " + ", ".join(f"{name} {n}" for name, n in commands["per_run"].items()))
    print(f"  {commands['succeeded_in_store']} of {commands['runs_sent']} runs succeeded; idle "
          f"processes send {commands['idle_commands_per_s']} commands/s")
    print(f"run record vs body ({extra['body_bytes']} bytes):")
    for name, record in extra["records"].items():
        size = record.get("bytes")
        shown = f"{size} bytes ({size / extra['body_bytes']:.1f}× the body)" if size else \
            record.get("error", "not read")
        print(f"  {name:<22} {shown}  [{record.get('status', '')}]")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's figures: each side's values, and the ratios flowrunner ÷ Node-RED graded by
    the team's goal — as fast as Node-RED on the same machine (1×)."""
    rate, latency = LEVELS["rate"], LEVELS["latency"]
    out = []
    for label, row in summary["intake"].items():
        out += [figure(f"{label}: req/s at {rate}", row["req_per_s"], "req/s", better="higher"),
                figure(f"{label}: p99 at {latency}", row["p99_ms"], "ms"),
                figure(f"{label}: CPU per request", row["cpu_ms"], "ms")]
        if ratios := row.get("ratio_to_node_red"):
            out += [figure(f"{label} ÷ Node-RED (a): req/s at {rate}", ratios["req_per_s"],
                           "×", 1.0, better="higher"),
                    figure(f"{label} ÷ Node-RED (a): p99 at {latency}", ratios["p99_ms"], "×",
                           1.0),
                    figure(f"{label} ÷ Node-RED (a): CPU per request", ratios["cpu_ms"], "×",
                           1.0)]
    for label, row in summary["end_to_end"].items():
        out += [figure(f"end to end, {label}", row["effects_per_s"], "effects/s",
                       better="higher"),
                figure(f"end to end, {label}: CPU per message", row["cpu_ms"], "ms")]
        if ratios := row.get("ratio_to_node_red"):
            out.append(figure(f"end to end, {label} ÷ Node-RED (c)", ratios["effects_per_s"],
                              "×", 1.0, better="higher"))
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    return {"cpu_model": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "node": node, "wrk": (wrk.stdout + wrk.stderr).split("Copyright")[0].strip(),
            "redis": redis.stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Short rounds: a smoke run.")
    parser.add_argument("--seconds", type=int, help="Length of one intake measurement "
                        "(default 10; 2 with --quick).")
    parser.add_argument("--rounds", type=int, help="Rounds of every measurement (default 3; "
                        "1 with --quick).")
    parser.add_argument("--e2e-rounds", type=int, help="Rounds of the end-to-end "
                        "measurements (default 2; 1 with --quick).")
    parser.add_argument("--messages", type=int, help="Orders per end-to-end measurement "
                        "(default 3000; 300 with --quick).")
    parser.add_argument("--command-runs", type=int, help="One-step runs for the Redis command "
                        "count (default 500; 100 with --quick).")
    parser.add_argument("--output")
    args = parser.parse_args()
    for name, full, quick in (("seconds", 10, 2), ("rounds", 3, 1), ("e2e_rounds", 2, 1),
                              ("messages", 3000, 300),
                              ("command_runs", 500, 100)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    why = servers.prerequisites_missing()
    if why:
        raise SystemExit(f"bench/nodered.py cannot run: {why}")
    folder = servers.node_red_folder()
    version = servers.ensure_node_red(folder)
    body = order_body()
    has_workers = "--workers" in servers.serve_options()
    print(f"Node-RED {version} ({folder}); body {len(body)} bytes, Shopify-signed; "
          f"{os.cpu_count()} CPU(s); flowrun serve --workers: "
          f"{'yes' if has_workers else NOT_AVAILABLE}", flush=True)
    load_before = round(os.getloadavg()[0], 2)
    with measure.workspace("nodered", body) as (tmp, load, procs):
        stub = start_stub(procs)
        node_red = servers.start_node_red(procs, folder, tmp / "node-red", stub.url,
                                          (body, load.headers()))
        intake = intake_phase(procs, tmp, load, stub, node_red, args, has_workers)
        e2e = end_to_end_phase(procs, tmp, load, stub, node_red, args)
    summary = summarise(intake, e2e)
    extra = {"redis_commands": e2e["redis_commands"], "body_bytes": len(body),
             "records": {"one_step_sqlite": intake["record_one_step_sqlite"], **e2e["records"]}}
    print_table(summary, has_workers, extra)
    details = {
        "quick": args.quick, "node_red": version, "machine": machine(),
        "settings": {"seconds": args.seconds, "rounds": args.rounds,
                     "e2e_rounds": args.e2e_rounds, "messages": args.messages,
                     "command_runs": args.command_runs, "levels": LEVELS,
                     "load_generator": "wrk -t1 --latency, bench/sidebyside/shopify.lua"},
        "load_average_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "serve_workers_option": has_workers,
        "summary": summary, **extra,
        "measurements": {"intake": intake["rounds"], "end_to_end": e2e["rounds"]},
        "notes": ["Node-RED checks no signature, keeps no delivery id and writes nothing "
                  "durable; flowrunner does all three before its 202.",
                  "Node-RED (c) answers after its ERP call; flowrunner answers 202 once the run "
                  "is recorded and runs it afterwards.",
                  "CPU per request counts the server's process trees (and redis-server) until "
                  "they are idle again: the embedded executor's runs are included."],
    }
    write_result(output_path(args.output, "nodered"), "nodered", details, figures(summary))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the servers were stopped on the way out
        print("\nbench/nodered.py: interrupted; every server it started is stopped",
              file=sys.stderr)
        sys.exit(130)
