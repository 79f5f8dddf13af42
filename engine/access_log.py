"""flowrunner's access log: one line per HTTP request, in the format of every other line.

It replaces uvicorn's access line (``flowrun serve`` turns that off), which knows neither the
correlation id nor flowrunner's JSON format. `AccessLog` wraps the served ASGI app once, at
start-up (``FLOWRUN_ACCESS_LOG=false`` or ``flowrun serve --no-access-log`` leaves it out): it
notes the status and the ``X-Correlation-ID`` of the response as it passes, and writes one line
when the response is over — method, path (never the query string, where a sender may put a
token), status, duration, correlation id (the response's, else the request's) and client
address. No body, no header beyond the correlation id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.webhooks import CLIENT_CLOSED, given_correlation_id

log = logging.getLogger("flowrunner.access")

_CID = b"x-correlation-id"


class AccessLog:
    """The ASGI app *app*, with one ``flowrunner.access`` INFO line per HTTP request."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = log):
        self.app, self.log = app, logger

    def __getattr__(self, name: str) -> Any:
        # the wrapped app's attributes (a Gateway's `state`) stay reachable
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # no response at all: the sender went away first (nginx's 499, as the webhooks count it)
        seen: dict[str, Any] = {"status": CLIENT_CLOSED, "cid": None}

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == _CID:
                        seen["cid"] = value.decode("latin-1")
                        break
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            self._line(scope, seen["status"], seen["cid"], time.perf_counter() - started)

    def _line(self, scope: Scope, status: int, cid: str | None, seconds: float) -> None:
        if cid is None:
            cid = given_correlation_id({k.decode("latin-1"): v.decode("latin-1")
                                        for k, v in scope.get("headers", ())
                                        if k in (_CID, b"traceparent")})
        client = scope.get("client")
        address = client[0] if client else "-"
        method, path = scope.get("method", "-"), scope.get("path", "-")
        duration = round(seconds * 1000, 1)
        self.log.info("%s %s %d %.1f ms client=%s", method, path, status, duration, address,
                      extra={"correlation_id": cid, "fields": {
                          "event": "http.access", "method": method, "path": path,
                          "status": status, "duration_ms": duration, "client": address}})
