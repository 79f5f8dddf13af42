"""The loopback ERP both reference flows post to: it answers 201 and counts effects.

Each effect is counted by its ``X-Webhook-Id`` (the Shopify webhook id the sender gave the
order), so the bench can tell "every message took effect exactly once" from "as many effects as
messages". ``GET /stats`` reports the tally, ``DELETE /stats`` starts a new one. Run as a process
of its own (``python -m bench.sidebyside.stub --port N``) so that its work does not share a
Python interpreter — and a GIL — with the bench.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ID_HEADER = "X-Webhook-Id"


class Tally:
    """Effects seen since the last reset: per id, per path, and when the first and last came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.ids: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.without_id = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def add(self, webhook_id: str | None, path: str, at: float) -> None:
        with self.lock:
            if webhook_id:
                self.ids[webhook_id] += 1
            else:
                self.without_id += 1
            self.paths[path] += 1
            self.first_at = at if self.first_at is None else self.first_at
            self.last_at = at

    def stats(self) -> dict[str, Any]:
        with self.lock:
            effects = sum(self.ids.values()) + self.without_id
            return {"effects": effects, "distinct": len(self.ids),
                    "repeated_ids": sum(1 for n in self.ids.values() if n > 1),
                    "without_id": self.without_id, "paths": dict(self.paths),
                    "first_at": self.first_at, "last_at": self.last_at}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an ERP behind a load balancer would
    # headers and body in two writes: with Nagle on, the body would wait for a delayed ACK
    disable_nagle_algorithm = True
    tally: Tally
    answer = json.dumps({"id": "SO-1", "status": "accepted"}).encode()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.tally.add(self.headers.get(ID_HEADER), self.path, time.time())
        self._send(201, self.answer)

    def do_GET(self) -> None:
        self._send(200, json.dumps(self.tally.stats()).encode())

    def do_DELETE(self) -> None:
        with self.tally.lock:
            self.tally.reset()
        self._send(200, b"{}")


def serve(port: int) -> None:
    handler = type("Handler", (_Handler,), {"tally": Tally()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
