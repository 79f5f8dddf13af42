"""A local stand-in for the partners' systems: mock ERP, WMS and channel endpoints on loopback.

Used by `flowrun demo`, the flow tests and `flowrun sandbox`. It behaves like the real thing
where flows care: it honours Idempotency-Key (a repeated key returns the first answer and
creates nothing), the EU ERP fails with 503 for its first requests, the US ERP answers 429 with
Retry-After once, and the ERPs reject discontinued SKUs with 422. Every request is recorded and
can be read back at ``GET /_sandbox/requests``.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class SandboxState:
    eu_failures: int = 2
    us_rate_limits: int = 1
    requests: list[dict[str, Any]] = field(default_factory=list)
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count = field(default_factory=lambda: itertools.count(100001))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.startswith("/_sandbox/requests"):
            with state.lock:
                self._send(200, list(state.requests))
            return
        if self.path.startswith("/healthz"):
            self._send(200, {"ok": True})
            return
        self._send(404, {"error": f"no sandbox endpoint {self.path}"})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"error": "body is not JSON"})
            return
        key = self.headers.get("Idempotency-Key")
        with state.lock:
            state.requests.append({"method": "POST", "path": self.path, "body": body,
                                   "idempotency_key": key,
                                   "correlation_id": self.headers.get("X-Correlation-ID")})
            count = state.counters[self.path] = state.counters.get(self.path, 0) + 1
            if key and key in state.effects:
                self._send(200, state.effects[key])  # an effect already applied: same answer
                return
        status, answer, headers = self._answer(self.path, body, count)
        if status < 300 and key:
            with state.lock:
                state.effects[key] = answer
        self._send(status, answer, headers)

    def _answer(self, path: str, body: Any, count: int) -> tuple[int, Any, dict[str, str]]:
        state = self.server.state
        if path.startswith("/erp/eu/") and count <= state.eu_failures:
            return 503, {"error": "ERP EU is restarting, try again"}, {}
        if path.startswith("/erp/us/") and count <= state.us_rate_limits:
            return 429, {"error": "rate limit"}, {"Retry-After": "1"}
        if path.startswith("/erp/") and path.endswith("/sales-orders"):
            lines = body.get("lines", []) if isinstance(body, dict) else []
            bad = [line.get("sku") for line in lines if str(line.get("sku", "")).startswith(
                "DISCONTINUED")]
            if bad:
                return 422, {"error": "unknown article", "skus": bad}, {}
            return 201, {"erp_order_id": f"SO-{next(state.ids)}",
                         "order_id": body.get("order_id") if isinstance(body, dict) else None}, {}
        if path.startswith(("/wms/", "/channel/", "/crm/")):
            return 202, {"accepted": True, "id": f"EV-{next(state.ids)}"}, {}
        return 404, {"error": f"no sandbox endpoint {path}"}, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SandboxState):
        super().__init__(address, _Handler)
        self.state = state


class Sandbox:
    """The sandbox server, running in a background thread."""

    def __init__(self, port: int = 0, state: SandboxState | None = None):
        self.state = state or SandboxState()
        self._server = _Server(("127.0.0.1", port), self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="flowrun-sandbox")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables the shipped flows use to reach the sandbox."""
        return {"ERP_EU_URL": f"{self.url}/erp/eu", "ERP_US_URL": f"{self.url}/erp/us",
                "WMS_URL": f"{self.url}/wms", "CRM_URL": f"{self.url}/crm",
                "CHANNEL_URL": f"{self.url}/channel"}

    def __enter__(self) -> Sandbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
