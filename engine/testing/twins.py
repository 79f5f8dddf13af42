"""The in-memory twins of the transports (`engine.transports`) that `flowrun test` hands a step.

Each answers from the case's mocks, so nothing leaves the process: the HTTP twin is a Session
over `MockTransport`; the SFTP twin turns ``put`` and ``get`` into ``PUT``/``GET
sftp://<connection><path>`` through the same book, so a case answers them like a call
(``mocks: [{step: send_850, responses: [{status: 200}]}]``). An ``error:`` answer fails the
operation as the network would (``connection_refused``, ``timeout``...; ``tls`` as a changed host
key); 401/403 as a refused login or a denied permission, 404 as a missing file, any other
status as a failed write or read on the server.

The delivery twin turns a publish step's message into ``POST amqp://<connection>/<exchange>/
<routing key>`` (``mqtt://``, ``redis://``, ``nats://``; ``as2://<connection>`` for the as2
step), its headers and message id as request headers, and hands the mocked answer back to the
step, which reads its status as its broker's or partner's answer (`connectors.broker.confirmed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import requests

from engine.testing.mock_http import MockBook, MockTransport, VirtualClock, session
from engine.transports import DELIVER, HTTP, SFTP
from engine.types import StepError

_STATUS_KINDS = {401: "auth", 403: "permission", 404: "not_found"}


class SftpTwin:
    """One step's SFTP sessions, answered by the case's mocks."""

    def __init__(self, book: MockBook, step: str, clock: VirtualClock):
        self.transport = MockTransport(book, step, clock)

    def __call__(self, name: str, config: Any, secrets: Callable[[str], str]) -> _SftpSession:
        return _SftpSession(self.transport, name, float(getattr(config, "timeout", 10.0)))


class _SftpSession:
    def __init__(self, transport: MockTransport, name: str, timeout: float):
        self.transport, self.name, self.timeout = transport, name, timeout

    def __enter__(self) -> _SftpSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass

    def put(self, path: str, data: bytes) -> None:
        self._send("PUT", path, data)

    def get(self, path: str, max_bytes: int) -> bytes:
        return self._send("GET", path, None).content

    def ensure_folder(self, folder: str) -> None:
        pass  # a folder is no call a case mocks

    def _send(self, method: str, path: str, data: bytes | None) -> requests.Response:
        url = f"sftp://{self.name}{'' if path.startswith('/') else '/'}{path}"
        request = requests.Request(method, url, data=data).prepare()
        try:
            response = self.transport.send(request, timeout=(self.timeout, self.timeout))
        except requests.exceptions.SSLError:
            raise StepError(f"{url}: host key of the server does not match",
                            kind="host_key") from None
        except requests.exceptions.Timeout:
            raise StepError(f"{url}: connect timeout", kind="timeout", retryable=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise StepError(f"{url}: {exc}", kind="connection", retryable=True) from None
        if not 200 <= response.status_code < 300:
            kind = _STATUS_KINDS.get(response.status_code, "io")
            raise StepError(f"{method} {url}: the server answered {response.status_code}",
                            kind=kind, retryable=kind == "io", status=response.status_code)
        return response


class DeliveryTwin:
    """One step's deliveries (bus publishes, AS2 messages), answered by the case's mocks."""

    def __init__(self, book: MockBook, step: str, clock: VirtualClock):
        self.transport = MockTransport(book, step, clock)

    def __call__(self, url: str, data: bytes, headers: Mapping[str, str]) -> requests.Response:
        request = requests.Request("POST", url, data=data, headers=dict(headers)).prepare()
        try:
            return self.transport.send(request, timeout=(10.0, 10.0))
        except requests.exceptions.Timeout:
            raise StepError(f"{url}: no answer in time", kind="timeout", retryable=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise StepError(f"{url}: {exc}", kind="connection", retryable=True) from None


def transports(book: MockBook, step: str, clock: VirtualClock) -> dict[str, Any]:
    """The twins handed to *step*, by transport key, for `Resources.services`."""
    return {HTTP.key: session(book, step, clock), SFTP.key: SftpTwin(book, step, clock),
            DELIVER.key: DeliveryTwin(book, step, clock)}
