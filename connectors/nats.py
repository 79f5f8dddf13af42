"""NATS JetStream: the ``nats`` publish step and the ``consume: {nats: ...}`` pull consumer.

::

    trigger:
      consume:
        connection: nats_main                 # connections/nats_main.yaml (nats:)
        nats: {stream: WMS, subject: "wms.shipments.>", durable: crm}
    steps:
      - id: notify
        nats: {connection: nats_main, subject: "crm.shipments.{{ carrier }}"}

The step publishes to JetStream and returns once the stream acknowledged the message (a
PubAck); no stream for the subject, no acknowledgement within the connection's timeout or a
lost connection is a step error for the retry policy. Each message carries a Nats-Msg-Id header
— the run and step by default — so JetStream itself drops a copy a retry publishes within the
stream's duplicate window.

The consumer pulls from a durable consumer at most ``in_flight`` messages at a time (also the
consumer's MaxAckPending) and acknowledges each once intake recorded its run; one not
acknowledged within ``ack_wait`` is delivered again, with JetStream's delivery count. The
message id intake deduplicates on is the Nats-Msg-Id header when the producer set one, else
the stream and its sequence number.

The client is asyncio (nats-py): the consumer runs an event loop on its own thread, the step
one event loop per connection on a thread beside the workers. Needs nats-py: install
flowrunner-ipaas[nats].
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig
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

log = logging.getLogger("flowrunner.bus")


class NatsConnection(Broker):
    """The ``nats:`` part of a connection file: a NATS server with JetStream."""

    port: Port = Field(4222, description="TCP port, or '${env:NAME}'.")


CONNECTION = ConnectionKind(name="nats", config=NatsConnection, check=check,
                            description="A NATS server with JetStream: host, port, user, "
                                        "password, TLS.")


class NatsPublish(Model):
    connection: str = Field(description="Named NATS connection (connections/NAME.yaml).")
    subject: Value = Field(description="Subject; may use {{ expression }}.")
    body: Expr | None = Field(None, description="What to send (default: the body); text as "
                                                "is, anything else as JSON.")
    headers: dict[str, Value] = Field(default_factory=dict, description="Message headers; "
                                      "values may use {{ expression }}.")
    message_id: Value | None = Field(None, description="The Nats-Msg-Id header JetStream "
                                     "deduplicates on (default: the run id and step id).")


async def connect(name: str, config: Any, secrets: Any, folder: Any = None) -> Any:
    """A connected client (raises StepError: a reference or TLS file that cannot be used, or
    a broker not reached, in words naming the connection and its host)."""
    try:
        host, port, user, password = config.address(secrets)
    except (UnresolvedReference, ValueError) as exc:
        raise StepError(f"connection '{name}': {exc}", kind="config") from None
    context = tls_context(name, config, folder, secrets)
    tls: dict[str, Any] = {} if context is None else \
        {"tls": context, "tls_hostname": getattr(context, "server_name", None) or host}
    failed: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:  # nats-py logs it with a traceback else
        if connected:
            log.warning("nats %s (%s:%s): %s", name, host, port, failure(exc)[1])
        else:
            failed[:] = [exc]

    connected = False
    try:
        # nats-py tries again and again (as it should once connected): the timeout bounds it
        client = await asyncio.wait_for(nats.connect(
            f"nats://{host}:{port}", user=user, password=password,
            connect_timeout=config.timeout, allow_reconnect=True, max_reconnect_attempts=-1,
            error_cb=on_error, **tls), config.timeout)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        kind, why = failure(failed[-1] if failed else exc, config)
        if not failed and isinstance(exc, TimeoutError):
            why = f"no answer within {config.timeout:g}s"
        raise StepError(f"nats {name} ({host}:{port}): {why}", kind=kind,
                        retryable=True) from None
    connected = True
    return client


class Publisher:
    """One connection's JetStream client on an event loop of its own thread."""

    def __init__(self, name: str, config: Any, secrets: Any, folder: Any = None):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True,
                         name=f"flowrun-nats-{name}").start()
        self.timeout = config.timeout
        self.nc = self.call(connect(name, config, secrets, folder))
        self.js = self.nc.jetstream(timeout=config.timeout)

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout + 5)

    def close(self) -> None:
        """Stop reconnecting, close the client, stop the loop's thread."""
        try:
            self.call(self.nc.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


def build(config: NatsPublish, ctx: BuildContext) -> StepFn:
    out = Outbound(config, "nats", "subject", ctx)

    def publish(envelope: Envelope, resources: Resources) -> Outcome:
        message, found = out.message(envelope, resources), out.found
        data, headers, subject = message.data, message.headers, message.destination
        headers["Nats-Msg-Id"] = message.message_id
        twin = resources.transport(DELIVER)
        if twin is not None:  # flowrun test: the case's mocks answer (a JetStream ack, if any)
            url = f"nats://{config.connection}/{subject}"
            return result(confirmed(twin(url, data, headers), url))
        where = f"nats {config.connection} subject '{subject}'"
        try:
            publisher = out.runtime("nats-publisher", lambda: Publisher(
                config.connection, found, resources.secrets, out.connections.folder))
            ack = publisher.call(publisher.js.publish(subject, data, headers=headers,
                                                      timeout=found.timeout))
        except nats.js.errors.NoStreamResponseError:
            raise StepError(f"{where}: no JetStream stream takes this subject",
                            kind="not_found") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise StepError(f"{where}: no acknowledgement within {found.timeout:g}s",
                            kind="timeout", retryable=True) from None
        except (OSError, nats.errors.Error) as exc:
            raise StepError(f"{where}: {exc}", kind="connection", retryable=True) from None
        resources.log.info("nats published %s (%d bytes, stream %s seq %s%s)", where, len(data),
                           ack.stream, ack.seq, ", a duplicate" if ack.duplicate else "")
        return result({"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)})

    return publish


STEP = StepKind(name="nats", config=NatsPublish, build=build,
                description="Publish a message to NATS JetStream, acknowledged by the stream "
                            "(deduplicated on its message id).",
                side_effect=True, default_output=None)


# -- consuming -----------------------------------------------------------------------------------
def consume(gate: Gate, stop: threading.Event) -> None:
    asyncio.run(_consume(gate, stop))


async def _consume(gate: Gate, stop: threading.Event) -> None:
    name, config = gate.connection
    source, trigger = gate.source, gate.trigger
    nc = await connect(name, config, gate.secrets, gate.folder)
    try:
        js = nc.jetstream(timeout=config.timeout)
        try:
            await js.stream_info(source.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=source.stream, subjects=[source.subject])
        subscription = await js.pull_subscribe(
            source.subject, durable=source.durable, stream=source.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=source.ack_wait,
                                  max_ack_pending=trigger.in_flight))
        while not stop.is_set():
            room = trigger.in_flight - gate.in_flight
            if room > 0:
                try:
                    found = await subscription.fetch(room, timeout=0.05 if gate.in_flight
                                                     else 0.5)
                except TimeoutError:  # nats' own, or asyncio's for a part-filled batch
                    found = []
                for message in found:
                    gate.take(_message(message, source))
            else:
                await asyncio.sleep(0.005)
            await _settle(gate)
        deadline = time.monotonic() + DRAIN
        while gate.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await _settle(gate)
    finally:
        await nc.close()


async def _settle(gate: Gate) -> None:
    for message, ok in gate.settled():
        if ok:
            await message.token.ack()
        else:
            await message.token.nak(delay=1.0)  # not taken in: again after a pause


def _message(message: Any, source: Any) -> BusMessage:
    headers = dict(message.headers or {})
    meta = message.metadata
    sequence = meta.sequence.stream
    where = {"bus": "nats", "subject": message.subject, "stream": meta.stream,
             "consumer": meta.consumer, "sequence": sequence,
             "message_id": headers.get("Nats-Msg-Id") or f"{meta.stream}:{sequence}"}
    return BusMessage(body=message.data, headers=headers, where=where,
                      deliveries=int(meta.num_delivered), token=message)


CONSUMER = ConsumerKind(name="nats", run=consume,
                        description="Pull from a NATS JetStream durable consumer, acknowledging "
                                    "each message once its run is recorded.")
