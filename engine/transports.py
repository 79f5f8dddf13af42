"""The transports connectors talk through, as typed resources a step may be handed.

A connector asks ``resources.transport(HTTP)`` (or ``SFTP``, ``BUS``) and uses its own real
transport when none was handed in — its pooled Session, its SFTP client, its broker client.
`flowrun test` hands in the in-memory twins of `engine.testing.twins`, which answer from a
case's mocks; a connector never asks whether it is under test. HTTP and SFTP are separate keys:
a step that speaks SFTP never goes through an HTTP transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import requests

T = TypeVar("T")


@dataclass(frozen=True)
class Transport(Generic[T]):
    """The key of one transport in ``Resources.services``, typed by what it holds."""

    key: str


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


class Publish(Protocol):
    """Hands one message to a broker, as a bus step (``amqp``, ``mqtt``, ``redis``, ``nats``)
    would: *url* names the connection and the destination (``mqtt://plant/orders/A1``). Returns
    what the broker answered, if anything (a stream entry id, a JetStream acknowledgement), and
    raises StepError as the broker's refusal or an outage would."""

    def __call__(self, url: str, data: bytes, headers: Mapping[str, str]) -> Any: ...


HTTP: Transport[HttpTransport] = Transport("http")
SFTP: Transport[SftpOpener] = Transport("sftp")
BUS: Transport[Publish] = Transport("bus")
