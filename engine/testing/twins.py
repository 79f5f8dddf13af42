"""The in-memory twins of the transports (`engine.transports`) that `flowrun test` hands a step.

Each answers from the case's mocks, so nothing leaves the process: the HTTP twin is a Session
over `MockTransport`; the SFTP twin turns ``put`` and ``get`` into ``PUT``/``GET
sftp://<connection><path>`` through the same book, so a case answers them like a call
(``mocks: [{step: send_850, responses: [{status: 200}]}]``). An ``error:`` answer fails the
operation as the network would (``connection_refused``, ``timeout``...; ``tls`` as a changed host
key); 401/403 as a refused login or a denied permission, 404 as a missing file, any other
status as a failed write or read on the server.

The bus twin turns a publish step's message into ``POST amqp://<connection>/<exchange>/<routing
key>`` (``mqtt://<connection>/<topic>``, ``redis://<connection>/<stream>``,
``nats://<connection>/<subject>``), its headers and message id as request headers: a 2xx
answer is the broker's confirmation (its JSON body the step's result where the broker returns
one — a stream entry id, a JetStream acknowledgement), 404 a destination the broker does not
have, 401/403 a refused login, any other status a refusal (nack) that is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import requests

from engine.testing.mock_http import MockBook, MockTransport, VirtualClock, session
from engine.transports import BUS, HTTP, SFTP
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


class BusTwin:
    """One step's publishes to a message bus, answered by the case's mocks."""

    def __init__(self, book: MockBook, step: str, clock: VirtualClock):
        self.transport = MockTransport(book, step, clock)

    def __call__(self, url: str, data: bytes, headers: Mapping[str, str]) -> Any:
        request = requests.Request("POST", url, data=data, headers=dict(headers)).prepare()
        try:
            response = self.transport.send(request, timeout=(10.0, 10.0))
        except requests.exceptions.Timeout:
            raise StepError(f"{url}: no confirmation from the broker", kind="timeout",
                            retryable=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise StepError(f"{url}: {exc}", kind="connection", retryable=True) from None
        status = response.status_code
        if status in _STATUS_KINDS:
            raise StepError(f"{url}: the broker answered {status}", kind=_STATUS_KINDS[status],
                            status=status)
        if not 200 <= status < 300:
            raise StepError(f"{url}: the broker refused the message ({status})",
                            kind="rejected", retryable=True, status=status)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text


def transports(book: MockBook, step: str, clock: VirtualClock) -> dict[str, Any]:
    """The twins handed to *step*, by transport key, for `Resources.services`."""
    return {HTTP.key: session(book, step, clock), SFTP.key: SftpTwin(book, step, clock),
            BUS.key: BusTwin(book, step, clock)}
