"""Celery throughput: what running flows costs on top of Celery itself, on the same worker.

One run, one Redis (its own ``redis-server`` on a free loopback port), one worker configuration
(worker.py's Celery app and settings: late ack, prefetch 1), measured three ways:

  (a) raw   — a Celery task that does nothing (``bench.noop``, registered on worker.py's app)
  (b) one   — a one-step flow (``set``): lease, run record, step, record, release
  (c) ref   — the reference flow (bench/flows/reference.yaml: transform, validate, route, set)
              plus its call to a loopback HTTP stub in this process

each with a solo-pool worker and with a prefork worker of 2 processes. For each pool one worker
is started and warmed up (a few tasks and runs of each kind, so every pool process has loaded
its flows and opened its connections), then paused with SIGSTOP while N tasks or runs are
queued, then resumed: the clock runs from SIGCONT until the queue is empty and nothing is left
unacknowledged, so neither worker start-up nor the producer's cost is counted. Then, with one
idle solo worker, enqueue-to-start latency: a no-op task timed from ``send_task`` to its start
in the worker, and a one-step run from ``App.accept`` to the run recorded done. Each rate is the
median of ``--rounds`` measurements taken in turn (raw, one, ref, raw, …) on the same worker, so
all three see the same load on a shared machine; (c) drains a fifth as many runs, being slower.
Prints a table and writes bench/results/celery_throughput.json. Goal: (b) ≥ 0.7 × (a).

    python bench/celery_throughput.py [--runs 500] [--rounds 3] [--latency-samples 200]
                                      [--output PATH]

Run with ``celery -A bench.celery_throughput worker``, this module is the worker's app.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, output_path, write_result  # noqa: E402

GOAL_RATIO = 0.7
QUEUE = "flowrun"
KINDS = ("raw", "one", "ref")
RUN_COST = ("a run costs 3 Redis round trips besides Celery's own (take the lease and read the "
            "record; save; release), a no-op task none")
ONE_STEP = """\
flow: one-step
steps:
  - id: remember
    set: {order: order}
"""
CALL = """\
  - id: erp
    call:
      http: {method: POST, url: "${env:BENCH_STUB_URL}/sales-orders"}
    output: vars.erp_response
"""


def __getattr__(name: str) -> Any:
    """``celery -A bench.celery_throughput`` asks for ``app``: worker.py's Celery application
    with one no-op task added, so raw tasks and runs share the worker and its settings. Built
    on demand so that the benchmark itself (the producer) never imports worker.py."""
    if name != "app":
        raise AttributeError(name)
    import redis

    import worker

    latencies = redis.Redis.from_url(os.environ["FLOWRUN_REDIS_URL"])

    @worker.app.task(name="bench.noop", acks_late=True, ignore_result=True)
    def noop(sent_at: float | None = None) -> None:
        if sent_at is not None:  # a latency probe: record how long it waited
            latencies.rpush("bench:latency", time.time() - sent_at)

    return worker.app


# -- the loopback stub the reference flow calls --------------------------------------------------
class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: with Nagle on, the body waits for the client's
    # delayed ACK, 40 ms per call that no real ERP would add
    disable_nagle_algorithm = True
    answer = json.dumps({"id": "SO-1", "status": "accepted"}).encode()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)


def start_stub() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


# -- the bench ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, folder: Path, redis_url: str, stub_url: str):
        from engine.app import App
        from engine.settings import Settings

        self.flows = folder / "flows"
        self.flows.mkdir()
        reference = (ROOT / "bench" / "flows" / "reference.yaml").read_text(encoding="utf-8")
        (self.flows / "one-step.yaml").write_text(ONE_STEP, encoding="utf-8")
        (self.flows / "reference.yaml").write_text(reference + CALL, encoding="utf-8")
        self.env = {**os.environ, "FLOWRUN_REDIS_URL": redis_url,
                    "FLOWRUN_FLOWS": str(self.flows), "FLOWRUN_HOME": str(folder),
                    "FLOWRUN_SCHEMAS": str(ROOT / "schemas"), "BENCH_STUB_URL": stub_url,
                    "FLOWRUN_LOG_LEVEL": "WARNING"}
        self.env.pop("FLOWRUN_BROKER_URL", None)
        os.environ["BENCH_STUB_URL"] = stub_url
        self.app = App(Settings(redis_url=redis_url, flows=self.flows, home=folder,
                                schemas=ROOT / "schemas"))
        assert self.app.flows.ok, [str(p) for p in self.app.flows.problems.errors]
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self.celery = self.app.executor.celery  # type: ignore[union-attr]
        self.order = json.loads((ROOT / "flows" / "samples" / "shopify-order.json").read_text())
        self.log = folder / "worker.log"

    def worker(self, pool: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "celery", "-A", "bench.celery_throughput", "worker",
                "-Q", QUEUE, "--pool", pool, "--loglevel", "WARNING", "--without-gossip",
                "--without-mingle", "--without-heartbeat"]
        if pool == "prefork":
            args += ["--concurrency", "2"]
        with self.log.open("ab") as out:
            return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)

    def fill(self, kind: str, n: int) -> None:
        if kind == "raw":
            for _ in range(n):
                self.celery.send_task("bench.noop", queue=QUEUE)
            return
        flow = self.app.flows.flows["one-step" if kind == "one" else "reference"]
        for i in range(n):
            self.app.accept(flow, {"order": i} if kind == "one" else self.order)

    def pending(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(QUEUE)
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
        return int(queued) + int(unacked)

    def drain(self, process: subprocess.Popen[bytes]) -> None:
        while self.pending():
            if process.poll() is not None:
                raise SystemExit(f"the worker exited; see {self.log}")
            time.sleep(0.002)

    def rates(self, pool: str, n: int, rounds: int) -> dict[str, float]:
        """Median runs per second of each kind through one warm worker of *pool*."""
        process = self.worker(pool)
        seen: dict[str, list[float]] = {kind: [] for kind in KINDS}
        try:
            for kind in KINDS:  # warm-up: every pool process takes some of each
                self.fill(kind, 4)
            self.drain(process)
            for _ in range(rounds):
                for kind in KINDS:
                    count = n if kind != "ref" else max(1, n // 5)
                    process.send_signal(signal.SIGSTOP)  # the main process hands out tasks
                    self.fill(kind, count)
                    started = time.perf_counter()
                    process.send_signal(signal.SIGCONT)
                    self.drain(process)
                    seen[kind].append(count / (time.perf_counter() - started))
        finally:
            stop(process)
        return {kind: round(statistics.median(values), 1) for kind, values in seen.items()}

    def latencies(self, samples: int) -> dict[str, dict[str, float]]:
        """Enqueue-to-start of no-op tasks and accept-to-done of one-step runs, idle worker."""
        process = self.worker("solo")
        flow = self.app.flows.flows["one-step"]
        try:
            self.celery.send_task("bench.noop", queue=QUEUE)  # wait for the worker to be up
            self.drain(process)
            for _ in range(samples):
                self.celery.send_task("bench.noop", args=[time.time()], queue=QUEUE)
                self.drain(process)
                time.sleep(0.01)
            raw = [float(v) for v in self.redis.lrange("bench:latency", 0, -1)]
            runs = []
            for i in range(samples):
                accepted = self.app.accept(flow, {"order": i})
                state = self.app.wait_for(accepted.run_id, timeout=30)[0]
                runs.append(state.updated_at - state.created_at)
                time.sleep(0.01)
        finally:
            stop(process)
        return {"raw_task_enqueue_to_start_ms": percentiles(raw),
                "one_step_accept_to_done_ms": percentiles(runs)}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    cuts = statistics.quantiles(ms, n=100)
    return {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2), "samples": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="tasks or runs per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per rate (median)")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    from tests.redis_fixture import RedisServer

    with tempfile.TemporaryDirectory(prefix="flowrun-celery-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        try:
            bench = Bench(Path(tmp), server.url, start_stub())
            rates: dict[str, dict[str, float]] = {}
            for pool in ("solo", "prefork"):
                rates[pool] = bench.rates(pool, args.runs, args.rounds)
                print(f"{pool:8} " + "  ".join(f"{k} {v:8.1f}/s" for k, v in rates[pool].items()))
            latency = bench.latencies(args.latency_samples)
        finally:
            server.stop()
    ratios = {pool: {kind: round(r[kind] / r["raw"], 3) for kind in ("one", "ref")}
              for pool, r in rates.items()}
    for pool, r in ratios.items():
        print(f"{pool:8} one-step ÷ raw {r['one']:.2f}   reference ÷ raw {r['ref']:.2f}")
    for name, cut in latency.items():
        print(f"{name}: p50 {cut['p50']} ms, p99 {cut['p99']} ms")
    figures = [figure(f"one-step flow ÷ raw Celery task, {pool}", ratios[pool]["one"], "×",
                      GOAL_RATIO, better="higher", note=RUN_COST) for pool in ratios]
    figures += [figure(f"{kind} runs/s, {pool}", rates[pool][kind], "runs/s", better="higher")
                for pool in rates for kind in ("raw", "one", "ref")]
    figures += [figure(f"{name} {cut}", latency[name][cut], "ms")
                for name in latency for cut in ("p50", "p99")]
    write_result(output_path(args.output, "celery_throughput"), "celery_throughput",
                 {"runs_per_measurement": args.runs, "rounds": args.rounds, "runs_per_s": rates,
                  "ratio_to_raw": ratios, "latency": latency,
                  "worker": "worker.py settings: acks_late, prefetch 1, solo or prefork -c 2"},
                 figures)


if __name__ == "__main__":
    main()
