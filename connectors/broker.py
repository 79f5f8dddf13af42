"""What the message-bus connections share: where the broker listens and who we are to it.

The ``amqp:``, ``mqtt:``, ``redis:`` and ``nats:`` parts of a connection file extend `Broker`
(each in its connector's module, registered as that connector's connection kind).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import Field

from engine.plugin import Duration, Model, Port, Secret, interpolate, port_number


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
