"""The transports connectors talk through, as typed resources a step may be handed.

A connector asks ``resources.transport(HTTP)`` (or ``SFTP``, ``DELIVER``) and uses its own real
transport when none was handed in — its pooled Session, its SFTP client, its broker client.
`flowrun test` hands in the in-memory twins of `engine.testing.twins`, which answer from a
case's mocks; a connector never asks whether it is under test. HTTP and SFTP are separate keys:
a step that speaks SFTP never goes through an HTTP transport.

Every real HTTP session mounts `HttpAdapter`: with tracing on (engine/spans) it wraps each
request in a client span and sends its ``traceparent`` to the partner; off, it is requests' own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from engine import spans
from engine.types import Transport


class HttpAdapter(HTTPAdapter):
    """requests' adapter, with a client span around each request when tracing is on."""

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        if not spans.enabled():
            return super().send(request, *args, **kwargs)
        with spans.client(request.method or "GET", request.url or "",
                            request.headers) as span:
            try:
                response = super().send(request, *args, **kwargs)
            except Exception as exc:  # the connector classifies it; the span names its type
                span.failed(type(exc).__name__)
                raise
            span.set("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.failed(str(response.status_code))
            return response


#: the HTTP connector's transport: a Session (the twin's answers from its own adapter)
HttpTransport = requests.Session


class SftpSession(Protocol):
    """One open SFTP session, as the ``sftp`` step uses it."""

    def __enter__(self) -> SftpSession: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def put(self, path: str, data: bytes) -> None: ...

    def get(self, path: str, max_bytes: int) -> bytes: ...

    def ensure_folder(self, folder: str) -> None: ...


#: opens a session to named connection *name*: ``open(name, config, secrets)``
SftpOpener = Callable[[str, Any, Callable[[str], str]], SftpSession]


class Deliver(Protocol):
    """Hands one message to a broker or a trading partner in one exchange, as the bus steps
    (``amqp``, ``mqtt``, ``redis``, ``nats``) and the ``as2`` step do: *url* names the
    connection and the destination (``mqtt://plant/orders/A1``). Returns the answer as an HTTP
    response — what its status means is the connector's to say — and raises StepError when the
    other side cannot be reached (kind ``connection`` or ``timeout``)."""

    def __call__(self, url: str, data: bytes, headers: Mapping[str, str]) -> requests.Response: ...


HTTP: Transport[HttpTransport] = Transport("http")
SFTP: Transport[SftpOpener] = Transport("sftp")
DELIVER: Transport[Deliver] = Transport("deliver")
