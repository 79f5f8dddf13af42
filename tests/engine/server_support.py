"""Harness for the webhook server tests: flows in tmp_path, an App over them, and the server
running under uvicorn on a free loopback port in a background thread.

Every test talks to the server over real HTTP. The webhook, console, metrics and reliability
tests import these helpers.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import uvicorn
from starlette.applications import Starlette

from engine.app import App
from engine.server import create_app
from tests.conftest import ROOT, make_app

SECRETS = {
    "SHOP": "shop-secret-2026",
    "SHOP_OLD": "shop-secret-2025",
    "STRIPE": "whsec_test_secret",
    "GITHUB": "It's a Secret to Everybody",
    "STDWH": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "GENERIC": "generic-hmac-secret",
}

SHOP_FLOW = """
flow: shop-orders
trigger:
  webhook:
    path: /hooks/shop
    signature: {scheme: shopify, secret: "${secret:SHOP}"}
    idempotency_key: $headers."x-shopify-webhook-id"
steps:
  - id: shape
    transform: '{"order": id, "topic": $headers."x-shopify-topic"}'
"""


def hook_app(tmp_path: Path, flows: dict[str, str], *,
             extra_secrets: dict[str, str] | None = None, **settings: Any) -> App:
    """`make_app` with the webhook secrets of these tests (and *extra_secrets*), two workers."""
    settings.setdefault("workers", 2)
    return make_app(tmp_path, flows, secrets={**SECRETS, **(extra_secrets or {})}, **settings)


@dataclass
class Running:
    url: str
    app: App
    web: Starlette
    http: requests.Session

    def post(self, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self.http.post(self.url + path, data=data, headers=headers or {}, timeout=30,
                              **kwargs)

    def runs(self) -> int:
        """How many runs the store holds, of every flow and status."""
        return sum(self.app.store.count_runs().values())

    def counter(self, outcome: str) -> int:
        return int(self.web.state.counters.total(outcome))


def _free_socket() -> socket.socket:
    # proto must be named: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
    # without it Nagle holds each response body back for the client's delayed ACK (~40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; uvicorn serves this socket
    return sock


@contextmanager
def serving(app: App, *, clock: Callable[[], float] | None = None,
            executor: bool = True) -> Iterator[Running]:
    """The server for *app* under uvicorn in a thread; stopped, with the executor, on exit."""
    web = create_app(app, clock=clock) if clock else create_app(app)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    http = requests.Session()
    http.trust_env = False  # never route loopback requests through a proxy from the env
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(500):
            try:
                if http.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.01)
        else:
            raise RuntimeError("the server did not come up")
        if executor:
            app.executor.start(resume=True)
        yield Running(url, app, web, http)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        http.close()
        app.executor.stop()
        app.store.close()


@contextmanager
def serve_process(flows: Path, env: dict[str, str], *args: str, kill: bool = False
                  ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`flowrun serve` of *flows* as its own process, its output in a file beside *flows* (a
    pipe nobody reads would stop its logging): its URL once /readyz answers, and the process.
    On exit it is stopped with SIGTERM (SIGKILL after 30 s), or at once with *kill*."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = flows.parent / f"serve-{port}.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port",
                                   str(port), "--flows", str(flows), *args], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"flowrun serve did not come up:\n{log.read_text()}")
            try:
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url, server
    finally:
        if server.poll() is None:
            if kill:
                server.kill()
            else:
                server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
