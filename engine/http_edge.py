"""The HTTP edge of `flowrun serve`: uvicorn's httptools protocol, plus the limits a server
reachable by anyone needs before a request reaches the app.

- Size: the request line and headers may take `max_header_bytes` bytes and `max_headers` lines;
  over either, 431 and the connection closes. Bytes are counted as they are handed to the
  parser, so an oversized block is never held in memory (httptools keeps a header whole until
  it ends, and uvicorn the URL).
- Time: the headers must be in within `header_timeout` of the request's first byte (or of the
  connection opening), the body within `body_timeout` of the headers' end. They are deadlines
  for the whole part, not per read, so trickling a byte at a time gains a sender nothing.
  Late: 408 and close (a connection that sent nothing is just closed).

`edge_protocol(settings)` is the class handed to uvicorn as `http=`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("flowrunner.server")


class EdgeLimits(Protocol):
    """What `engine.settings.Settings` holds for the edge."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float


class HeadersTooLarge(Exception):
    """Raised in a parser callback; httptools hands it back as the context of its own error."""


class EdgeProtocol(HttpToolsProtocol):
    """One connection. Between requests uvicorn's keep-alive timeout applies, as before."""

    limits: ClassVar[EdgeLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the parser is before the end of a request's headers
        self._fed = 0  # bytes of this header block handed to the parser
        self._parsed = 0  # bytes of this header block seen by the callbacks
        self._lines = 0
        self._begun = False  # the parser has seen this request's first byte
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False  # refused or upgraded: no further byte is parsed here

    # -- asyncio ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, fed in slices while headers are read
        self._unset_keepalive_if_required()
        rest = memoryview(data)
        while rest and not self._stopped and not self.transport.is_closing():
            if self._in_headers:
                room = self.limits.max_header_bytes - self._fed
                if room <= 0:
                    self._refuse(431, "request line and headers over "
                                      f"{self.limits.max_header_bytes} bytes")
                    return
                piece, rest = rest[:room], rest[room:]
                self._fed += len(piece)
                if self._timer is None:
                    self._arm(self.limits.header_timeout, self._headers_late)
            else:
                piece, rest = rest, rest[:0]
            if not self._feed(piece):
                break
        if self._timer is None and not self._stopped and not self.transport.is_closing():
            if not self._in_headers:
                self._arm(self.limits.body_timeout, self._body_late)
            elif self._begun:  # a pipelined request began in the read that ended the last one
                self._arm(self.limits.header_timeout, self._headers_late)

    def _feed(self, piece: memoryview) -> bool:
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadersTooLarge):
                self._refuse(431, str(exc.__context__))
            else:
                self._invalid()
            return False
        except httptools.HttpParserError:
            self._invalid()
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._cancel()  # the connection now belongs to the websocket protocol
                self._stopped = True
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    def _invalid(self) -> None:
        self._cancel()
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # -- parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = self._lines = 0
        self._begun = True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # a second count, for a pipelined request that came in the same read as the one before
        self._lines += 1
        if self._lines > self.limits.max_headers:
            raise HeadersTooLarge(f"more than {self.limits.max_headers} header lines")
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel()
        self._in_headers, self._fed, self._begun = True, 0, False

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.limits.max_header_bytes:
            raise HeadersTooLarge(f"request line and headers over "
                                  f"{self.limits.max_header_bytes} bytes")

    # -- deadlines -------------------------------------------------------------------------
    def _arm(self, seconds: float, late: Callable[[], None]) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, late)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._fed or self._begun:
            self._refuse(408, f"request headers not received within "
                              f"{self.limits.header_timeout:g} seconds")
        else:
            self.transport.close()  # a connection that never sent a byte

    def _body_late(self) -> None:
        self._timer = None
        if self.pipeline:  # queued behind an earlier request: the wait is the server's
            self._arm(self.limits.body_timeout, self._body_late)
            return
        cycle = self.cycle
        if cycle.response_started:  # the app answered without the whole body; stop waiting
            self.transport.close()
            return
        self._refuse(408, f"request body not received within "
                          f"{self.limits.body_timeout:g} seconds")
        # the app, waiting for the rest of the body, learns the client is gone; nothing it
        # sends now is written after the 408
        cycle.disconnected = True
        cycle.message_event.set()

    # -- refusing --------------------------------------------------------------------------
    def _in_flight(self) -> bool:
        """An earlier request's response is still being written on this connection."""
        return self._in_headers and self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int, message: str) -> None:
        self._cancel()
        self._stopped = True
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
        log.warning("%s - %d: %s", client, status, message)
        if self._in_flight():
            # let that response finish, then close; a status written now would corrupt it
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = json.dumps({"error": message}, separators=(",", ":")).encode()
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in
                 self.server_state.default_headers]
        head += [b"content-type: application/json\r\n",
                 b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def edge_protocol(limits: EdgeLimits) -> type[EdgeProtocol]:
    """The protocol class for uvicorn's `http=`, bound to *limits* (read once, at start)."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})
