"""Helpers for the poll and scheduler tests: a partner API on loopback whose records change,
a scheduler that polls when the test says, a clock the test moves by hand.

The poll source, scheduler and console tests import them.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from engine.app import App
from engine.scheduler import Scheduler
from engine.store.base import RunFilter

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def iso(minutes: float) -> str:
    """A partner timestamp: T0 plus *minutes*, written with Z as partners do."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class Partner:
    """A supplier API: records with ``updated_at``, read with ``updated_since`` (inclusive),
    oldest first, ``size`` per page, paginated in the style the test chooses — by key (the
    next URL, a token or the Link header name the last record read) or by position (page
    number or offset)."""

    def __init__(self, style: str = "next_url", size: int = 2):
        self.style, self.size = style, size
        self.records: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, str]] = []
        #: (status, headers) answers to give before the normal ones, one per request
        self.failures: list[tuple[int, dict[str, str]]] = []
        #: called with the request's number (1, 2, ...) before it is answered, to change data
        self.before_page: Callable[[int], None] = lambda page: None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def put(self, record_id: str, minutes: float, **extra: Any) -> None:
        with self._lock:
            self.records[record_id] = {"id": record_id, "updated_at": iso(minutes), **extra}

    def __enter__(self) -> Partner:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append(dict(query))
            if self.failures:
                status, headers = self.failures.pop(0)
                return status, headers, {"error": "unavailable"}
        since = query.get("updated_since", "")
        with self._lock:
            matching = sorted((r for r in self.records.values() if r["updated_at"] >= since),
                              key=lambda r: (r["updated_at"], r["id"]))
        if "after" in query:  # keyset: the records after the last one of the previous page
            matching = [r for r in matching if f"{r['updated_at']}|{r['id']}" > query["after"]]
        start = int(query.get("offset") or 0)
        if "page" in query:
            start = (int(query["page"]) - 1) * self.size
        page = matching[start:start + self.size]
        more = start + self.size < len(matching)
        body: dict[str, Any] = {"data": page}
        headers = {"Content-Type": "application/json"}
        token = f"{page[-1]['updated_at']}|{page[-1]['id']}" if page else ""
        query.pop("_scheduler", None)
        nxt = {**query, "after": token}
        if self.style == "next_url" and more:
            body["links"] = {"next": "/acks?" + urlencode(nxt)}  # relative, as many APIs do
        elif self.style == "next_token" and more:
            body["next_token"] = token
        elif self.style == "link_header" and more:
            headers["Link"] = f'<{self.url}/acks?{urlencode(nxt)}>; rel="next", ' \
                              f'<{self.url}/acks>; rel="first"'
        return 200, headers, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                query["_scheduler"] = self.headers.get("X-Scheduler", "")
                partner.before_page(len(partner.requests) + 1)
                status, headers, body = partner._answer(query)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class Clock:
    """Time the test moves: every due time is computed from it, nothing waits for real time."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def at(self, when: datetime) -> Clock:
        self.now = when.timestamp()
        return self


@contextmanager
def scheduler(app: App, clock: Clock, **options: Any) -> Iterator[Scheduler]:
    """A scheduler that polls inline when ticked (the test drives time) and runs no executor:
    runs stay recorded as queued, which is all these tests count."""
    made = Scheduler(app, clock=clock, inline=True, start_executor=False, lease=30.0,
                     **options)
    try:
        yield made
    finally:
        made.close()


def runs(app: App, flow: str) -> list[dict[str, Any]]:
    return [r.envelope for r in app.store.list_runs(RunFilter(flow=flow, limit=10_000))]


def versions_taken(app: App, flow: str) -> Counter[tuple[str, str]]:
    """How many runs each record version (id, updated_at) started."""
    return Counter((e["body"]["id"], e["body"]["updated_at"]) for e in runs(app, flow))
