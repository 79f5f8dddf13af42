"""Fixtures for the Celery integration tests: real redis-server, real worker processes, a
loopback downstream that counts Idempotency-Keys.

Workers are ``celery -A worker worker`` subprocesses started from the repository root with
FLOWRUN_* variables pointing at the test's Redis and folders; every worker a test starts is
killed in teardown, whatever the test did. Tuning is short on purpose (visibility timeout 2 s,
run lease 3 s) so redelivery after a crash happens within seconds.

The cluster keeps its state in Redis alone, or its records in PostgreSQL and its hot state in
Redis: ``FLOWRUN_TEST_STORE=postgres`` switches every cluster test to the latter (the
reliability suite too), and a test parametrized ``indirect`` on ``cluster`` with
``["redis", "postgres"]`` runs on both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from engine.settings import Settings
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
STORES = ("redis", "postgres")
#: the store of clusters whose test does not choose: redis (state in Redis) or postgres
STORE = os.environ.get("FLOWRUN_TEST_STORE", "redis").strip().lower() or "redis"
if STORE not in STORES:
    raise ValueError(f"FLOWRUN_TEST_STORE={STORE!r}: expected one of {', '.join(STORES)}")

FAST = {
    "FLOWRUN_CELERY_VISIBILITY_TIMEOUT": "2",
    "FLOWRUN_CELERY_RESTORE_INTERVAL": "1",
    "FLOWRUN_CELERY_RUN_LEASE": "3",
    "FLOWRUN_CELERY_PUMP_INTERVAL": "0.2",
    "FLOWRUN_CELERY_CLAIM_LEASE": "10",
}


class Worker:
    """One ``celery -A worker worker`` subprocess and its log."""

    def __init__(self, name: str, env: dict[str, str], log: Path, pool: str = "solo",
                 concurrency: int = 1, command: list[str] | None = None):
        self.name = name
        self.log = log
        args = command or [
            sys.executable, "-m", "celery", "-A", "worker", "worker", "-n", f"{name}@%h",
            "--pool", pool, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]
        if pool == "prefork" and command is None:
            args += ["-c", str(concurrency)]
        self._out = log.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._out,
                                        stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.text()[-3000:]}")
            return " ready." in self.text()
        wait_until(ready, timeout, f"worker {self.name} to be ready")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._out.close()


@dataclass
class Cluster:
    """Redis (and PostgreSQL when *database_url* is set), the flows folder, worker subprocesses
    and an App (producer side) over them."""

    redis_url: str
    home: Path
    flows: Path
    env: dict[str, str]
    database_url: str | None = None
    workers: list[Worker] = field(default_factory=list)
    apps: list[App] = field(default_factory=list)

    def start_worker(self, name: str, **how: Any) -> Worker:
        worker = Worker(name, self.env, self.home / f"{name}.log", **how)
        self.workers.append(worker)
        return worker

    def app(self) -> App:
        made = App(Settings(redis_url=self.redis_url, database_url=self.database_url,
                            flows=self.flows, home=self.home, schemas=ROOT / "schemas"))
        assert made.flows.ok, [str(p) for p in made.flows.problems.errors]
        self.apps.append(made)
        return made

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for app in self.apps:
            app.executor.stop()
            app.store.close()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    store = getattr(request, "param", STORE)
    database_url = request.getfixturevalue("postgres_url") if store == "postgres" else None
    flows = tmp_path / "flows"
    flows.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **FAST, "FLOWRUN_REDIS_URL": redis_url, "FLOWRUN_FLOWS": str(flows),
           "FLOWRUN_HOME": str(home), "FLOWRUN_SCHEMAS": str(ROOT / "schemas"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("FLOWRUN_BROKER_URL", None)
    env.pop("FLOWRUN_DATABASE_URL", None)
    monkeypatch.delenv("FLOWRUN_DATABASE_URL", raising=False)
    if database_url:
        env["FLOWRUN_DATABASE_URL"] = database_url
    for name, value in FAST.items():  # the producer App in this process uses the same tuning
        monkeypatch.setenv(name, value)
    made = Cluster(redis_url, home, flows, env, database_url)
    try:
        yield made
    finally:
        made.close()


# -- a downstream that honours Idempotency-Key and counts effects --------------------------------
@dataclass
class Downstream:
    """Requests by path, effects by Idempotency-Key; `hooks[path]` can delay or fail answers."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, Callable[[int], int | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def calls(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        state = self.server.state
        declared = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(declared)
        if len(raw) < declared:
            # the sender died mid-request (a SIGKILLed worker): like any HTTP server, act on
            # nothing that did not arrive whole — counting it would count an effect whose body
            # never came, under a message the ledger cannot name
            self.close_connection = True
            return
        key = self.headers.get("Idempotency-Key") or ""
        with state.lock:
            state.requests.append({"path": self.path, "key": key, "at": time.time(),
                                   "body": json.loads(raw) if raw else None})
            count = len([r for r in state.requests if r["path"] == self.path])
            seen = key in state.answers
        hook = state.hooks.get(self.path)
        status = hook(count) if hook is not None and not seen else None
        if status is None or status < 300:
            with state.lock:
                if key not in state.answers:  # an effect is applied once per key
                    state.effects[key] = state.effects.get(key, 0) + 1
                    state.answers[key] = {"ok": True, "path": self.path, "n": len(state.answers)}
                answer, status = state.answers[key], 200
        else:
            answer = {"error": "try again"}
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the worker that asked was killed meanwhile
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: Downstream):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    state = Downstream()
    server = _Server(state)
    host, port = server.server_address[:2]
    state.url = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
