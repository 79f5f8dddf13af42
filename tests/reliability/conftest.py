"""Shared pieces of the reliability suite: its size, a ledger that counts what happened, a
restartable Redis, and `flowrun serve` as a real subprocess.

The worker cluster (`cluster`) and the loopback downstream that honours Idempotency-Key
(`downstream`) are the integration suite's fixtures, reused as they are. Sizes are reduced by
default so the suite stays fast in CI; ``FLOWRUN_RELIABILITY=full`` runs the full sizes.
Every scenario prints one ``reliability:`` line of figures (run pytest with ``-s`` to see it);
with ``FLOWRUN_RELIABILITY_REPORT=FILE`` the figures are also appended to FILE as JSON lines.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from connectors.signatures.shopify import SCHEME as SHOPIFY
from engine.app import App
from engine.records import DeadLetter
from engine.store.base import DeadLetterFilter
from tests.conftest import FULL, free_port, size  # noqa: F401 - size: the scenarios' import
from tests.integration.conftest import (  # noqa: F401 - fixtures
    ROOT,
    Cluster,
    Downstream,
    cluster,
    downstream,
    wait_until,
)

SHOP_SECRET = "reliability-shop-secret"


def seeded(name: str) -> random.Random:
    """A random source for one scenario; its seed is printed so a failure can be replayed
    (``FLOWRUN_RELIABILITY_SEED``)."""
    seed = int(os.environ.get("FLOWRUN_RELIABILITY_SEED") or time.time_ns() % 1_000_000)
    print(f"reliability: {name} seed={seed}")
    return random.Random(seed)


def report(scenario: str, **figures: Any) -> None:
    """Print the figures of a scenario and append them to FLOWRUN_RELIABILITY_REPORT."""
    line = json.dumps({"scenario": scenario, "full": FULL, **figures}, sort_keys=True)
    print(f"reliability: {line}")
    target = os.environ.get("FLOWRUN_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")


# -- the reference flow ------------------------------------------------------------------------
#: webhook (Shopify-signed, one run per webhook id) → transform → call to the downstream stub
REFERENCE_FLOW = """
flow: reference-orders
key: $string(message)
trigger:
  webhook:
    path: /hooks/orders
    signature: {scheme: shopify, secret: "${secret:SHOP}"}
    idempotency_key: $headers."x-shopify-webhook-id"
defaults:
  retry:
    max_attempts: 30
    backoff: {initial: 200ms, multiplier: 2, max: 2s}
    retry_on: {http_status: [429, 5xx], errors: [timeout, connection]}
steps:
  - id: shape
    transform: '{"message": message, "lines": $count(lines), "total": $sum(lines.qty)}'
  - id: deliver
    call:
      http:
        method: POST
        url: "${env:DOWNSTREAM_URL}/orders"
        timeout: {connect: 2s, read: 10s}
    output: vars.receipt
"""


def message(n: int) -> dict[str, Any]:
    return {"message": f"m-{n:06d}", "lines": [{"sku": f"SKU-{n % 7}", "qty": 1 + n % 3}]}


def signed(body: bytes, webhook_id: str, secret: str = SHOP_SECRET) -> dict[str, str]:
    """The headers Shopify would send with *body*."""
    headers = SHOPIFY.sign(SHOPIFY.config(), body, secret, time.time())
    headers.update({"Content-Type": "application/json", "X-Shopify-Webhook-Id": webhook_id})
    return headers


def use_reference_flow(cluster: Cluster, downstream: Downstream,  # noqa: F811
                       monkeypatch: pytest.MonkeyPatch, text: str = REFERENCE_FLOW,
                       name: str = "reference-orders") -> None:
    (cluster.flows / f"{name}.yaml").write_text(text, encoding="utf-8")
    cluster.env["DOWNSTREAM_URL"] = downstream.url
    monkeypatch.setenv("DOWNSTREAM_URL", downstream.url)
    monkeypatch.setenv("FLOWRUN_SECRET_SHOP", SHOP_SECRET)
    cluster.env["FLOWRUN_SECRET_SHOP"] = SHOP_SECRET


@dataclass
class Answer:
    """One request of a sender and what it got."""

    message: str
    status: int  # 0: no HTTP answer at all
    sent: float
    answered: float
    run_id: str | None = None
    retry_after: str | None = None


@dataclass
class Senders:
    """Threads posting signed webhooks as Shopify would: an answer other than 2xx (no answer
    at all, a 503) is retried with the same webhook id after a short back-off. `url` may be
    changed while they send (a server restarted on another port)."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, numbers: list[int], deadline: float) -> None:
        http = requests.Session()
        http.trust_env = False
        for n in numbers:
            body = json.dumps(message(n)).encode()
            name = f"m-{n:06d}"
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = http.post(self.url + "/hooks/orders", data=body, timeout=30,
                                         headers=signed(body, f"hook-{name}"))
                    status = response.status_code
                    data = response.json()
                    answer = Answer(name, status, sent, time.monotonic(), data.get("run_id"),
                                    response.headers.get("Retry-After"))
                except requests.RequestException:
                    answer = Answer(name, 0, sent, time.monotonic())
                with self.lock:
                    self.answers.append(answer)
                if answer.status in (200, 202) or answer.status not in (0, 503):
                    break
                time.sleep(0.2)  # the sender's back-off before it tries again
        http.close()

    def final(self) -> dict[str, Answer]:
        """The last answer per message."""
        out: dict[str, Answer] = {}
        for answer in sorted(self.answers, key=lambda a: a.answered):
            out[answer.message] = answer
        return out


# -- counting ----------------------------------------------------------------------------------
@dataclass
class Ledger:
    """What the downstream saw, per message: the distinct Idempotency-Keys of its effects."""

    keys: dict[str, set[str]]
    requests: int
    effects: int

    @classmethod
    def of(cls, downstream: Downstream, path_prefix: str = "/") -> Ledger:  # noqa: F811
        keys: dict[str, set[str]] = defaultdict(set)
        with downstream.lock:
            seen = [r for r in downstream.requests if r["path"].startswith(path_prefix)]
            applied = {k for k, n in downstream.effects.items() if n}
        for request in seen:
            if request["key"] in applied:
                keys[str((request["body"] or {}).get("message"))].add(request["key"])
        return cls(dict(keys), len(seen), sum(len(v) for v in keys.values()))

    def missing(self, expected: set[str]) -> set[str]:
        return expected - set(self.keys)

    def doubled(self) -> dict[str, set[str]]:
        """Messages whose effect was applied under more than one key: done twice."""
        return {m: k for m, k in self.keys.items() if len(k) > 1}

    def unexpected(self, expected: set[str]) -> set[str]:
        return set(self.keys) - expected


def settle(check: Callable[[], Any], timeout: float) -> bool:
    """Wait for *check* like `wait_until`, but return False on time-out, so that the scenario
    still reports its figures and its assertions say what is missing."""
    try:
        wait_until(check, timeout)
    except AssertionError:
        return False
    return True


ENDED = ("succeeded", "dead_lettered", "failed")


def finish(app: App, flow: str, total: int, timeout: float,
           busy: Callable[[], bool] = lambda: False) -> list[str]:
    """Wait until *total* runs of *flow* ended, or until none has ended for 20 s while *busy*
    is false; the keys of the runs still active then (stranded), for the scenario to assert
    empty.

    A task that the broker handed to a worker killed (or whose Redis died) before kombu noted
    it as unacknowledged is gone — BRPOP, then the unacked entry, in two steps. Its run stays
    recorded as queued, and it is the product's stuck-run sweep that queues it again
    (``FLOWRUN_CELERY_STRANDED_AFTER``): nothing here hands runs to the workers."""
    progress = [-1, time.monotonic()]

    def ended() -> int:
        counts = app.store.count_runs(flow)
        return sum(counts.get(status, 0) for status in ENDED)

    def ended_or_still() -> bool:
        now, done = time.monotonic(), ended()
        if done != progress[0]:
            progress[:] = [done, now]
        return done >= total or (not busy() and now - progress[1] > 20)

    settle(ended_or_still, timeout)
    return [str(state.key) for state in app.store.active_runs() if state.flow_id == flow]


def dead_letters(store: Any, flow: str) -> list[DeadLetter]:
    return list(store.list_dead_letters(DeadLetterFilter(flow=flow, limit=100_000)))


# -- a Redis that can be killed and brought back on the same port and folder --------------------
class RestartableRedis:
    """redis-server with AOF and ``appendfsync always``: every write it acknowledged survives a
    SIGKILL. `kill` and `start` keep the port and the data folder."""

    def __init__(self, folder: Path):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed; .ci/run installs it with apt")
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder),
             "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        try:
            wait_until(lambda: self._pong(client), 20, f"redis-server on port {self.port}")
        finally:
            client.close()

    def _pong(self, client: redis.Redis) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


# -- flowrun serve as a subprocess ----------------------------------------------------------------
class Serve:
    """``flowrun serve`` on a free loopback port, with the cluster's environment."""

    def __init__(self, env: dict[str, str], flows: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--port", str(self.port),
             "--flows", str(flows), "--no-access-log"],
            cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        self.http = requests.Session()
        self.http.trust_env = False
        wait_until(self._ready, 60, "flowrun serve to be ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"flowrun serve exited:\n{self.text()[-3000:]}")
        try:
            return self.http.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self.http.close()


def start_cluster(cluster: Cluster, serve: list[Serve] | None = None,  # noqa: F811
                  workers: int = 2) -> tuple[App, Serve | None]:
    """Start *workers* worker processes (and ``flowrun serve`` when *serve* is given), build
    the producer App while they boot, and return once every one is ready."""
    for n in range(workers):
        cluster.start_worker(f"w{n + 1}")
    server = None
    if serve is not None:
        server = Serve(cluster.env, cluster.flows, cluster.home / "serve.log")
        serve.append(server)
    app = cluster.app()
    for worker in cluster.workers:
        worker.wait_ready()
    return app, server


@pytest.fixture
def serve(cluster: Cluster) -> Iterator[list[Serve]]:  # noqa: F811
    """Start with ``serve.append(Serve(cluster.env, cluster.flows, log))``; all are stopped."""
    started: list[Serve] = []
    try:
        yield started
    finally:
        for server in started:
            server.close()
