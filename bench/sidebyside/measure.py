"""One measurement each: intake (wrk for a fixed time), end to end (N orders until the stub has
counted the last effect), Redis commands per run, and the size of a run record.

The CPU of a measurement is read from the server's process trees (and its redis-server) before
the load and again once they are idle, so work a server queued during the load — the embedded
executor running the accepted runs — is counted with the requests that caused it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sidebyside.load import run_wrk, shopify_signature
from bench.sidebyside.procs import Processes, settle, terminated_as_interrupt, tree_cpu
from bench.sidebyside.servers import ROOT, Server, flowrunner_env, get, post

INTAKE = "/hooks/shopify/intake"
REFERENCE = "/hooks/shopify/reference"


@dataclass
class Load:
    """What every request carries: the body (also as a file for wrk) and its signature."""

    body: bytes
    body_file: Path
    signature: str

    def headers(self, webhook_id: str | None = None) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
                "X-Shopify-Hmac-Sha256": self.signature,
                "X-Shopify-Webhook-Id": webhook_id or uuid.uuid4().hex}


@contextlib.contextmanager
def workspace(name: str, body: bytes) -> Iterator[tuple[Path, Load, Processes]]:
    """One bench run's temporary folder, the load (*body*, signed, also as a file for wrk) and
    the processes it starts — every one stopped when the block ends, on an error, Ctrl-C or
    SIGTERM too."""
    with tempfile.TemporaryDirectory(prefix=f"flowrun-bench-{name}-") as tmp_name, \
            terminated_as_interrupt():
        tmp = Path(tmp_name)
        (tmp / "body.json").write_bytes(body)
        procs = Processes(tmp / "logs")
        try:
            yield tmp, Load(body, tmp / "body.json", shopify_signature(body)), procs
        finally:
            procs.stop_all()


@dataclass
class Target:
    """A row of the table: a server and the path of the flow under test there."""

    label: str
    side: str  # "Node-RED" or "flowrunner"
    server: Server
    path: str


def intake(target: Target, load: Load, connections: int, seconds: int) -> dict[str, Any]:
    """wrk for *seconds*; req/s and latency as wrk saw them, CPU per accepted request."""
    pids = target.server.pids
    before = tree_cpu(pids)
    result = run_wrk(target.server.url(target.path), connections, seconds, load.body_file,
                     load.signature)
    result["settle_s"] = round(settle(pids), 2)
    cpu = tree_cpu(pids) - before
    accepted = result["accepted_202"]
    result["cpu_ms_per_request"] = round(cpu * 1000 / accepted, 3) if accepted else None
    return result


class Stub:
    """The effect-counting stub, seen from the bench."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, Any]:
        status, raw = get(self.port, "/stats")
        assert status == 200, status
        return dict(json.loads(raw))

    def reset(self) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("DELETE", "/stats")
        conn.getresponse().read()
        conn.close()

    def wait_for(self, effects: int, limit: float) -> dict[str, Any]:
        """Poll until *effects* distinct ids arrived or *limit* seconds passed."""
        deadline = time.monotonic() + limit
        while True:
            stats = self.stats()
            if stats["distinct"] >= effects or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)


def end_to_end(target: Target, load: Load, stub: Stub, messages: int,
               connections: int = 16) -> dict[str, Any]:
    """Send *messages* orders; effects per second from the first send to the stub counting the
    last one, and whether each took effect exactly once."""
    pids = target.server.pids
    bound = max(120, messages // 5)
    stub.reset()
    before = tree_cpu(pids)
    started = time.time()
    sent = run_wrk(target.server.url(target.path), connections, bound, load.body_file,
                   load.signature, limit=messages)
    reached = stub.wait_for(messages, bound)
    settle(pids)
    cpu = tree_cpu(pids) - before
    final = stub.stats()  # after the servers went idle: late duplicates show here
    seconds = (reached["last_at"] or time.time()) - started
    answered_2xx = sum(n for code, n in sent["statuses"].items() if code.startswith("2"))
    return {"messages": messages, "answered_2xx": answered_2xx, "intake_statuses":
            sent["statuses"], "intake_seconds": sent["seconds"],
            "seconds": round(seconds, 3),
            "effects_per_s": round(reached["distinct"] / seconds, 1) if seconds > 0 else None,
            "effects": final["effects"], "distinct": final["distinct"],
            "missing": messages - final["distinct"], "repeated_ids": final["repeated_ids"],
            "without_id": final["without_id"],
            "exactly_once": final["effects"] == final["distinct"] == messages,
            "cpu_ms_per_message": round(cpu * 1000 / messages, 3)}


def warm_up(target: Target, load: Load, stub: Stub | None, messages: int) -> None:
    """A few orders first: Node's JIT, flowrunner's tiered JSONata, every pool process loaded."""
    if stub is not None:
        stub.reset()
    run_wrk(target.server.url(target.path), 4, 60, load.body_file, load.signature,
            limit=messages)
    if stub is not None:  # a worker still starting takes its share later, not in a measurement
        stub.wait_for(messages, 120)
    settle(target.server.pids)


def medians(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    return out


# -- flowrunner's store ------------------------------------------------------------------------
def post_one(target: Target, load: Load) -> str | None:
    """One order; the run id flowrunner's 202 names."""
    status, raw = post(target.server.port, target.path, load.body, load.headers())
    if status != 202:
        raise RuntimeError(f"{target.label}: expected 202, got {status}: {raw[:300]!r}")
    return json.loads(raw).get("run_id")


def record_size(server: Server, run_id: str, limit: float = 60.0) -> dict[str, Any]:
    """Bytes of the stored record of *run_id* once it finished (SQLite ``runs.data`` or Redis
    ``HGET flowrun:run:<id> data``), or why it could not be read."""
    read: Callable[[], tuple[str | None, int | None]]
    if server.redis_url:
        import redis

        client = redis.Redis.from_url(server.redis_url, decode_responses=True)
        store = "Redis"

        def read() -> tuple[str | None, int | None]:
            key = f"flowrun:run:{run_id}"
            status, size = client.hget(key, "status"), client.hstrlen(key, "data")
            return (str(status) if status else None), (int(size) or None)
    else:
        assert server.home is not None
        db = server.home / "state" / "state.db"
        store = "SQLite"

        def read() -> tuple[str | None, int | None]:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                row = conn.execute("SELECT status, length(CAST(data AS BLOB)) FROM runs "
                                   "WHERE run_id = ?", (run_id,)).fetchone()
            return (row[0], row[1]) if row else (None, None)

    deadline = time.monotonic() + limit
    try:
        while True:
            status, size = read()
            if status in ("succeeded", "failed", "dead_lettered") or \
                    time.monotonic() > deadline:
                return {"store": store, "run_id": run_id, "status": status, "bytes": size}
            time.sleep(0.05)
    except Exception as exc:  # the store's layout is flowrunner's to change; say so, go on
        return {"store": store, "run_id": run_id, "error": f"{type(exc).__name__}: {exc}"}


def runs_with_status(server: Server, stub_url: str, flow: str, status: str, limit: int) -> int:
    """How many runs of *flow* have *status*, asked through `flowrun runs --json`."""
    assert server.home is not None
    done = subprocess.run([sys.executable, "-m", "engine.cli", "runs", "--flow", flow,
                           "--status", status, "--limit", str(limit), "--json"], cwd=ROOT,
                          env=flowrunner_env(server.home, stub_url, server.redis_url),
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"flowrun runs failed: {done.stderr[-1000:]}")
    return len(json.loads(done.stdout))


def command_stats(redis_url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(redis_url)
    stats = client.info("commandstats")
    client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def commands_per_run(target: Target, load: Load, stub_url: str, runs: int,
                     idle_seconds: float = 2.0, cpu_of: dict[str, int] | None = None
                     ) -> dict[str, Any]:
    """Redis commands per accepted run, per command name (INFO commandstats before and after
    *runs* one-step orders ran end to end), next to what the idle processes send per second;
    with *cpu_of* (names and root pids), the CPU each process tree used per accepted run."""
    url = target.server.redis_url
    assert url is not None
    first = command_stats(url)
    time.sleep(idle_seconds)
    cpu_before = {name: tree_cpu([pid]) for name, pid in (cpu_of or {}).items()}
    before = command_stats(url)
    window = time.monotonic()
    idle = _delta(first, before)
    sent = run_wrk(target.server.url(target.path), 16, max(120, runs // 5), load.body_file,
                   load.signature, limit=runs)
    started = time.monotonic()
    settle(target.server.pids, window=0.5)
    after = command_stats(url)
    cpu = {name: tree_cpu([pid]) - cpu_before[name] for name, pid in (cpu_of or {}).items()}
    window = time.monotonic() - window
    accepted = sent["accepted_202"]
    succeeded = runs_with_status(target.server, stub_url, "webhook-intake", "succeeded",
                                 10 * runs)
    delta = _delta(before, after)
    per_run = {name: round(n / accepted, 2) for name, n in
               sorted(delta.items(), key=lambda kv: -kv[1])} if accepted else {}
    # what the idle processes (Celery's polling, the due-retry pump) sent meanwhile
    background = sum(idle.values()) / idle_seconds * window
    return {"runs_sent": runs, "accepted_202": accepted, "succeeded_in_store": succeeded,
            "total_per_run": round(sum(delta.values()) / accepted, 2) if accepted else None,
            "total_per_run_less_idle": round((sum(delta.values()) - background) / accepted, 2)
            if accepted else None,
            "note": "as Redis counts them: every command a Lua script (EVALSHA) runs counts too",
            "per_run": per_run, "wait_after_intake_s": round(time.monotonic() - started, 2),
            "idle_commands_per_s": round(sum(idle.values()) / idle_seconds, 1),
            "idle_by_command_per_s": {k: round(v / idle_seconds, 1) for k, v in idle.items()},
            **({"cpu_ms_per_run": {name: round(t * 1000 / accepted, 3) if accepted else None
                                   for name, t in cpu.items()}} if cpu_of else {})}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    # the bench's own INFO calls are not the servers' work
    return {name: after[name] - before.get(name, 0) for name in after
            if name != "info" and after[name] - before.get(name, 0) > 0}
