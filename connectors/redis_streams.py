"""Redis Streams: the ``redis`` publish step (XADD) and the ``consume: {redis: ...}`` reader.

::

    trigger:
      consume:
        connection: events                    # connections/events.yaml (redis:)
        redis: {stream: wms.shipments, group: crm}
    steps:
      - id: notify
        redis: {connection: events, stream: crm.shipments, maxlen: 100000}

The step adds one entry (the message in the ``body`` field, headers as further fields) and
returns its id once Redis has it; a lost connection is a step error for the retry policy.

The reader reads the stream in a consumer group (XREADGROUP), at most ``in_flight`` entries
unacknowledged, and acknowledges an entry (XACK) once intake recorded its run. The entry id is
the message id intake deduplicates on. A consumer started again under its name first reads
what it had read and not acknowledged (its pending entries); entries a consumer that died left
pending longer than ``claim_after`` are claimed by another (XAUTOCLAIM). The group's delivery
count of an entry is its ``deliveries``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import redis
from pydantic import Field

from connectors.broker import (
    Broker,
    Outbound,
    check,
    confirmed,
    failure,
    tls_context,
)
from engine.plugin import (
    DELIVER,
    DRAIN,
    BuildContext,
    BusMessage,
    ConnectionKind,
    ConsumerKind,
    Envelope,
    Expr,
    Gate,
    Model,
    Outcome,
    Port,
    Resources,
    StepError,
    StepFn,
    StepKind,
    UnresolvedReference,
    Value,
    result,
)


class RedisConnection(Broker):
    """The ``redis:`` part of a connection file: a Redis server carrying streams."""

    port: Port = Field(6379, description="TCP port, or '${env:NAME}'.")
    db: int = Field(0, ge=0, description="Database number.")


CONNECTION = ConnectionKind(name="redis", config=RedisConnection, check=check,
                            description="A Redis server carrying streams: host, port, user, "
                                        "password, database, TLS.")


class RedisPublish(Model):
    connection: str = Field(description="Named Redis connection (connections/NAME.yaml).")
    stream: Value = Field(description="Stream key; may use {{ expression }}.")
    body: Expr | None = Field(None, description="What to send (default: the body); text as "
                                                "is, anything else as JSON.")
    field: str = Field("body", description="The entry field holding the message.")
    headers: dict[str, Value] = Field(default_factory=dict, description="Further entry "
                                      "fields; values may use {{ expression }}.")
    maxlen: int | None = Field(None, ge=1, description="Trim the stream to about this many "
                                                       "entries (XADD MAXLEN ~).")


class _TlsConnection(redis.Connection):
    """A Redis connection wrapped in the connection's own SSLContext (redis-py's SSLConnection
    builds one of its own from options, without a server name of ours)."""

    def __init__(self, tls_context: ssl.SSLContext, **kwargs: Any):
        self.tls_context = tls_context
        super().__init__(**kwargs)

    def _connect(self) -> Any:
        sock = super()._connect()
        try:
            sock.settimeout(self.socket_connect_timeout)
            wrapped = self.tls_context.wrap_socket(sock, server_hostname=self.host)
            wrapped.settimeout(self.socket_timeout)
            return wrapped
        except BaseException:
            sock.close()
            raise


def client(name: str, config: Any, secrets: Any, folder: Any = None) -> redis.Redis:
    try:
        host, port, user, password = config.address(secrets)
    except (UnresolvedReference, ValueError) as exc:
        raise StepError(f"connection '{name}': {exc}", kind="config") from None
    options: dict[str, Any] = {
        "host": host, "port": port, "db": config.db, "username": user, "password": password,
        "socket_timeout": config.timeout, "socket_connect_timeout": config.timeout}
    context = tls_context(name, config, folder, secrets)
    if context is None:
        return redis.Redis(**options)
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=_TlsConnection, tls_context=context, **options))


def _error(exc: redis.RedisError, config: Any, secrets: Any, name: str, where: str
           ) -> StepError:
    kind, why = failure(exc)
    host, port = config.address(secrets)[:2]
    return StepError(f"redis {name} ({host}:{port}) {where}: {why}", kind=kind,
                     retryable=True)


def build(config: RedisPublish, ctx: BuildContext) -> StepFn:
    out = Outbound(config, "redis", "stream", ctx)

    def publish(envelope: Envelope, resources: Resources) -> Outcome:
        message, found = out.message(envelope, resources), out.found
        fields: dict[Any, Any] = dict(message.headers)
        fields[config.field] = message.data
        stream = message.destination
        twin = resources.transport(DELIVER)
        if twin is not None:  # flowrun test: the case's mocks answer (an entry id, if any)
            body = fields.pop(config.field)
            url = f"redis://{config.connection}/{stream}"
            return result(confirmed(twin(url, body, fields), url))
        conn = out.runtime("redis", lambda: client(
            config.connection, found, resources.secrets, out.connections.folder))
        try:
            entry = conn.xadd(stream, fields, maxlen=config.maxlen, approximate=True)
        except redis.ResponseError as exc:
            raise StepError(f"redis {config.connection} stream '{stream}': {exc}",
                            kind="rejected") from None
        except redis.RedisError as exc:
            raise _error(exc, found, resources.secrets, config.connection,
                         f"stream '{stream}'") from None
        entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        resources.log.info("redis added %s to stream '%s'", entry_id, stream)
        return result(entry_id)

    return publish


STEP = StepKind(name="redis", config=RedisPublish, build=build,
                description="Add a message to a Redis stream (XADD); the result is the entry "
                            "id.",
                side_effect=True, default_output=None)


# -- consuming -----------------------------------------------------------------------------------
def consume(gate: Gate, stop: threading.Event) -> None:
    name, config = gate.connection
    source, trigger = gate.source, gate.trigger
    conn = client(name, config, gate.secrets, gate.folder)
    consumer = source.consumer or socket.gethostname()
    try:
        conn.xgroup_create(source.stream, source.group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    except redis.ConnectionError as exc:
        raise _error(exc, config, gate.secrets, name, f"stream '{source.stream}'") from None
    reader = Reader(gate, conn, consumer)
    reader.read("0", counted=True)  # what this consumer read before and did not acknowledge
    claimed_at = 0.0
    while not stop.is_set():
        room = trigger.in_flight - gate.in_flight
        if room <= 0:
            reader.settle(wait=0.2)
            continue
        if time.monotonic() - claimed_at > source.claim_after / 4:
            reader.claim(room)
            claimed_at = time.monotonic()
        reader.read(">", count=room, block=10 if gate.in_flight else 200)
        reader.settle()
    deadline = time.monotonic() + DRAIN
    while gate.in_flight and time.monotonic() < deadline:
        reader.settle(wait=0.1)


class Reader:
    """Reading and acknowledging one stream in one group, on the consumer's thread."""

    def __init__(self, gate: Gate, conn: redis.Redis, consumer: str):
        self.gate, self.conn, self.consumer = gate, conn, consumer
        self.source = gate.source

    def read(self, start: str, *, count: int | None = None, block: int | None = None,
             counted: bool = False) -> None:
        found: Any = self.conn.xreadgroup(self.source.group, self.consumer,
                                          {self.source.stream: start}, count=count, block=block)
        for _stream, entries in found or []:
            self._take(entries, counted)

    def claim(self, count: int) -> None:
        """Entries other consumers left pending too long: theirs were never taken in."""
        idle = int(self.source.claim_after * 1000)
        answer: Any = self.conn.xautoclaim(self.source.stream, self.source.group, self.consumer,
                                      min_idle_time=idle, start_id="0-0", count=count)
        self._take(answer[1], counted=True)

    def _take(self, entries: list[Any], counted: bool) -> None:
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                self.conn.xack(self.source.stream, self.source.group, entry_id)
                continue
            self.gate.take(self._message(entry_id, fields, counted))

    def _message(self, entry_id: bytes, fields: dict[bytes, bytes], counted: bool) -> BusMessage:
        key = self.source.field.encode()
        text_id = entry_id.decode()
        deliveries = 1
        if counted:  # the group's own count of this entry's deliveries
            pending = self.conn.xpending_range(self.source.stream, self.source.group,
                                               min=text_id, max=text_id, count=1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
        headers = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                   for k, v in fields.items() if k != key}
        where = {"bus": "redis", "stream": self.source.stream, "group": self.source.group,
                 "message_id": text_id}
        problem = None if key in fields else f"the entry has no field '{self.source.field}'"
        return BusMessage(body=fields.get(key, b""), headers=headers, where=where,
                          deliveries=deliveries, token=entry_id, problem=problem)

    def settle(self, wait: float = 0.0) -> None:
        done = [message.token for message, ok in self.gate.settled(wait) if ok]
        # not taken in: left pending; this consumer reads it again when it starts again, or
        # another claims it after claim_after
        if done:
            self.conn.xack(self.source.stream, self.source.group, *done)


CONSUMER = ConsumerKind(name="redis", run=consume,
                        description="Read a Redis stream in a consumer group, acknowledging "
                                    "(XACK) each entry once its run is recorded.")
