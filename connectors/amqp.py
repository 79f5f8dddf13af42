"""AMQP 0-9-1 (RabbitMQ): the ``amqp`` publish step and the ``consume: {amqp: ...}`` consumer.

::

    trigger:
      consume:
        connection: rabbit                      # connections/rabbit.yaml (amqp:)
        amqp: {queue: crm.shipments, bind: [{exchange: wms, routing_key: "shipment.*"}]}
    steps:
      - id: notify
        amqp: {connection: rabbit, exchange: notify, routing_key: "shipment.{{ carrier }}",
               body: {jsonata: "{'order': order_id, 'tracking': tracking}"}}

The step publishes persistent messages with publisher confirms: it returns once the broker has
taken the message (a nack, an unroutable message or a lost connection is a step error, which
the flow's retry policy retries and the dead-letter queue keeps after). Each message carries a
message id — the run and step by default — so consumers can recognise a republished message.

The consumer sets the channel's prefetch to the trigger's ``in_flight`` and acknowledges each
message once intake has recorded its run (`engine.consume`). The queue is declared durable
(a quorum queue by default, which counts deliveries; with a classic queue only "redelivered"
is known, so a message is dead-lettered after ``max_deliveries`` only on quorum queues).

Built on kombu (and its py-amqp transport), which flowrunner already depends on through Celery:
confirms, prefetch and manual acknowledgement without a second AMQP client.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import amqp.exceptions
import amqp.transport
import kombu
import kombu.exceptions
import kombu.transport.pyamqp
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
    Continue,
    Duration,
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
    header_value,
)


class AmqpConnection(Broker):
    """The ``amqp:`` part of a connection file: a RabbitMQ (AMQP 0-9-1) broker."""

    port: Port = Field(5672, description="TCP port (5671 for TLS), or '${env:NAME}'.")
    virtual_host: str = Field("/", description="RabbitMQ virtual host.")
    heartbeat: Duration = Field(30.0, description="AMQP heartbeat; a dead peer is noticed "
                                                  "after about twice this.")


CONNECTION = ConnectionKind(name="amqp", config=AmqpConnection, check=check,
                            description="An AMQP 0-9-1 broker (RabbitMQ): host, port, user, "
                                        "password, virtual host, TLS.")


class AmqpPublish(Model):
    connection: str = Field(description="Named AMQP connection (connections/NAME.yaml).")
    exchange: str = Field("", description="Exchange to publish to ('' is the default exchange, "
                                          "which routes by queue name).")
    routing_key: Value = Field(description="Routing key; may use {{ expression }}.")
    body: Expr | None = Field(None, description="What to send (default: the body); text as "
                                                "is, anything else as JSON.")
    headers: dict[str, Value] = Field(default_factory=dict, description="Message headers; "
                                      "values may use {{ expression }}.")
    message_id: Value | None = Field(None, description="Message id (default: the run id and "
                                     "step id, the same on every retry of the step).")
    persistent: bool = Field(True, description="Delivery mode 2: the broker writes the message "
                                               "to disk before it confirms.")
    mandatory: bool = Field(True, description="An unroutable message (no queue bound) is an "
                                              "error, not silently dropped.")


class _TlsSocket(amqp.transport.SSLTransport):
    # py-amqp builds its own SSLContext from options; this one wraps with the connection's
    def _wrap_socket(self, sock: Any, context: Any = None, **options: Any) -> Any:
        return context.wrap_socket(sock, server_hostname=options.get("server_hostname"),
                                   do_handshake_on_connect=False)


class _TlsAmqpConnection(kombu.transport.pyamqp.Connection):
    def Transport(self, host: str, connect_timeout: Any, ssl: Any = False,
                  read_timeout: Any = None, write_timeout: Any = None,
                  **kwargs: Any) -> Any:
        return _TlsSocket(host, connect_timeout=connect_timeout, ssl=ssl,
                          read_timeout=read_timeout, write_timeout=write_timeout, **kwargs)


class _TlsTransport(kombu.transport.pyamqp.Transport):
    """kombu's py-amqp transport, TLS with the SSLContext handed in ``ssl={"context": ...}``."""

    Connection = _TlsAmqpConnection


def connect(name: str, config: Any, secrets: Any, folder: Any = None) -> kombu.Connection:
    """A kombu connection for named connection *name* (not yet opened); raises StepError for
    a reference or TLS file that cannot be used."""
    try:
        host, port, user, password = config.address(secrets)
    except (UnresolvedReference, ValueError) as exc:
        raise StepError(f"connection '{name}': {exc}", kind="config") from None
    context = tls_context(name, config, folder, secrets)
    tls: dict[str, Any] | bool = {"context": context, "server_hostname": host} \
        if context is not None else False
    return kombu.Connection(hostname=host, port=port, userid=user or "guest",
                            password=password or "guest", virtual_host=config.virtual_host,
                            heartbeat=config.heartbeat, connect_timeout=config.timeout,
                            ssl=tls, transport=_TlsTransport if context is not None else None,
                            transport_options={"confirm_publish": True})


def _at(config: Any, secrets: Any) -> str:
    try:
        host, port = config.address(secrets)[:2]
    except (UnresolvedReference, ValueError):
        return str(config.host)
    return f"{host}:{port}"


def build(config: AmqpPublish, ctx: BuildContext) -> StepFn:
    out = Outbound(config, "amqp", "routing_key", ctx)

    def publish(envelope: Envelope, resources: Resources) -> Outcome:
        message, found = out.message(envelope, resources), out.found
        data, content_type, headers = message.data, message.content_type, message.headers
        routing_key, message_id = message.destination, message.message_id
        twin = resources.transport(DELIVER)
        if twin is not None:  # flowrun test: the case's mocks answer
            url = f"amqp://{config.connection}/{config.exchange}/{routing_key}"
            confirmed(twin(url, data, {**headers, "Message-Id": message_id,
                                       "Content-Type": content_type}), url)
            return Continue()
        pool = out.runtime("amqp-pool", lambda: _pool(
            config.connection, found, resources.secrets, out.connections.folder))
        where = f"amqp {config.connection} ({_at(found, resources.secrets)}) exchange " \
                f"'{config.exchange}' key '{routing_key}'"
        try:
            conn = pool.acquire(block=True, timeout=found.timeout)
        except Exception as exc:
            raise StepError(f"{where}: no connection free ({exc})", kind="connection",
                            retryable=True) from None
        try:
            try:
                channel = conn.default_channel
            except (OSError, amqp.exceptions.AMQPError, kombu.exceptions.OperationalError
                    ) as exc:
                conn.close()
                kind, why = failure(exc, found)
                raise StepError(f"{where}: {why}", kind=kind, retryable=True) from None
            producer = kombu.Producer(channel)
            producer.publish(data, exchange=config.exchange, routing_key=routing_key,
                             headers=headers, content_type=content_type, content_encoding="binary",
                             message_id=message_id, mandatory=config.mandatory,
                             delivery_mode=2 if config.persistent else 1, serializer=None,
                             timeout=found.timeout)
        except amqp.exceptions.NotFound as exc:
            conn.close()
            raise StepError(f"{where}: {exc.reply_text}", kind="not_found") from None
        except amqp.exceptions.MessageNacked:
            conn.close()
            raise StepError(f"{where}: the broker refused the message (nack)",
                            kind="rejected", retryable=True) from None
        except (TimeoutError, OSError, amqp.exceptions.AMQPError) as exc:
            conn.close()
            raise StepError(f"{where}: {exc}", kind="connection", retryable=True) from None
        finally:
            conn.release()
        resources.log.info("amqp published %s (%d bytes, id %s)", where, len(data), message_id)
        return Continue()

    return publish


def _pool(name: str, config: Any, secrets: Any, folder: Any) -> Any:
    return connect(name, config, secrets, folder).Pool(limit=16)


STEP = StepKind(name="amqp", config=AmqpPublish, build=build,
                description="Publish a message to an AMQP 0-9-1 exchange (RabbitMQ), persistent "
                            "and confirmed by the broker.",
                side_effect=True, default_output=None)


# -- consuming -----------------------------------------------------------------------------------
def consume(gate: Gate, stop: Any) -> None:
    name, config = gate.connection
    source, trigger = gate.source, gate.trigger
    with connect(name, config, gate.secrets, gate.folder) as conn:
        try:
            conn.ensure_connection(max_retries=1)
        except Exception as exc:
            raise ConnectionError(f"amqp {name} ({_at(config, gate.secrets)}): "
                                  f"{failure(exc, config)[1]}") from None
        channel = conn.channel()
        queue = kombu.Queue(source.queue, channel=channel, durable=True,
                            queue_arguments={"x-queue-type": source.queue_type})
        queue.declare()
        for binding in source.bind:
            exchange = kombu.Exchange(binding.exchange, type="topic", durable=True,
                                      channel=channel)
            exchange.declare()
            queue.bind_to(exchange, routing_key=binding.routing_key)
        channel.basic_qos(0, trigger.in_flight, False)

        def on_message(message: Any) -> None:
            gate.take(_message(message, source.queue))

        consumer = kombu.Consumer(channel, queues=[queue], on_message=on_message,
                                  no_ack=False, prefetch_count=trigger.in_flight)
        consumer.consume()
        while not stop.is_set():
            if gate.in_flight >= trigger.in_flight:
                _settle(gate, wait=0.2)  # the window is full: nothing to read until acks
                continue
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.01 if gate.in_flight else 0.2)
            _settle(gate)
        consumer.cancel()  # no more deliveries; acknowledge what intake still answers
        deadline = time.monotonic() + DRAIN
        while gate.in_flight and time.monotonic() < deadline:
            _settle(gate, wait=0.1)


def _settle(gate: Gate, wait: float = 0.0) -> None:
    for message, ok in gate.settled(wait):
        if ok:
            message.token.ack()
        else:
            message.token.reject(requeue=True)


def _message(message: Any, queue: str) -> BusMessage:
    properties = message.properties
    headers = dict(message.headers or {})
    count = headers.get("x-delivery-count")
    deliveries = int(count) + 1 if isinstance(count, int) else \
        (2 if message.delivery_info.get("redelivered") else 1)
    info = message.delivery_info
    where = {"bus": "amqp", "queue": queue, "exchange": info.get("exchange"),
             "routing_key": info.get("routing_key"),
             "message_id": properties.get("message_id"),
             "content_type": properties.get("content_type") or message.content_type}
    return BusMessage(body=message.body, headers={k: header_value(v) for k, v in headers.items()},
                      where=where, deliveries=deliveries, token=message)


CONSUMER = ConsumerKind(name="amqp", run=consume,
                        description="Consume an AMQP 0-9-1 queue (RabbitMQ) with a prefetch "
                                    "window, acknowledging each message once its run is "
                                    "recorded.")
