"""What the message-bus connections share: where the broker listens and who we are to it.

The ``amqp:``, ``mqtt:``, ``redis:`` and ``nats:`` parts of a connection file extend `Broker`
(each in its connector's module, registered as that connector's connection kind).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import requests
from pydantic import Field

from engine.plugin import Duration, Model, Port, Secret, StepError, interpolate, port_number

_FINAL = {401: "auth", 403: "permission", 404: "not_found"}


class Broker(Model):
    host: str = Field("127.0.0.1", description="Host name of the broker; may use ${env:...}.")
    port: Port = Field(description="TCP port, or '${env:NAME}'.")
    username: str | None = Field(None, description="User name; may use ${env:...}.")
    password: Secret | None = Field(None, description="Password: '${secret:NAME}'.")
    timeout: Duration = Field(10.0, description="Connect and publish-confirm timeout.")

    def address(self, secrets: Callable[[str], str]) -> tuple[str, int, str | None, str | None]:
        """Host, port, user name and password, their references resolved (raises
        UnresolvedReference or ValueError)."""
        def value(text: str | None) -> str | None:
            return None if text is None else interpolate(text, secrets)

        port = port_number(self.port, lambda text: interpolate(text, secrets))
        return str(value(self.host)), port, value(self.username), value(self.password)


def encode(value: Any) -> tuple[bytes, str]:
    """A publish step's body as bytes, with its media type: text as UTF-8, bytes as they are,
    anything else as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain"
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    return orjson.dumps(value), "application/json"


def confirmed(response: requests.Response, url: str) -> Any:
    """A broker's answer to a delivery handed to a twin (`engine.transports.DELIVER`), read as
    the broker's own: 2xx confirmed (its JSON body, or text, is what the broker returned: an
    entry id, a JetStream acknowledgement), 404 a destination it does not have, 401/403 a
    refused login, anything else a refused message (nack), retried."""
    status = response.status_code
    if status in _FINAL:
        raise StepError(f"{url}: the broker answered {status}", kind=_FINAL[status],
                        status=status)
    if not 200 <= status < 300:
        raise StepError(f"{url}: the broker refused the message ({status})", kind="rejected",
                        retryable=True, status=status)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
