"""MQTT: the ``mqtt`` publish step and the ``consume: {mqtt: ...}`` subscriber (MQTT 5).

::

    trigger:
      consume:
        connection: mosquitto                 # connections/mosquitto.yaml (mqtt:)
        mqtt: {topic: "wms/+/shipments", qos: 1}
    steps:
      - id: notify
        mqtt: {connection: mosquitto, topic: "crm/shipments/{{ order_id }}", qos: 1}

The step publishes at QoS 1 or 2 and returns once the broker acknowledged the message (PUBACK,
or PUBCOMP for QoS 2); no acknowledgement within the connection's timeout, or no connection,
is a step error for the flow's retry policy, and so is an acknowledgement whose reason code
refuses the message (Quota exceeded ...) — final for Not authorized, Topic Name invalid and
Payload format invalid. Each message carries a ``message_id`` user
property — the run and step by default — which a consuming flowrunner deduplicates on.

The subscriber keeps a persistent session (clean start off, the connection's session expiry),
so QoS 1/2 messages published while it is down wait in the broker. It acknowledges a message
(PUBACK, or PUBREC for QoS 2) only once intake recorded its run, and asks the broker for at
most ``in_flight`` unacknowledged messages (MQTT 5 Receive Maximum). MQTT tells a redelivery
only by its DUP flag, not a count, so ``max_deliveries`` cannot be enforced here; a message
has no broker id either: deduplication uses the ``message_id`` user property, or the trigger's
``idempotency_key`` (an id in the body).

Needs paho-mqtt: install flowrunner-ipaas[mqtt].
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from pydantic import Field

from connectors.broker import (
    Broker,
    Outbound,
    check,
    closed,
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
)


class MqttConnection(Broker):
    """The ``mqtt:`` part of a connection file: an MQTT broker."""

    port: Port = Field(1883, description="TCP port (8883 for TLS), or '${env:NAME}'.")
    client_id: str = Field("flowrun", description="Client id prefix; the publisher and each "
                           "flow's subscriber append their role (a subscriber's persistent "
                           "session is found again by this id).")
    session_expiry: Duration = Field(86400.0, description="How long the broker keeps a "
                                     "stopped subscriber's session and its QoS 1/2 messages.")
    keepalive: Duration = Field(30.0, description="MQTT keep-alive interval.")


CONNECTION = ConnectionKind(name="mqtt", config=MqttConnection, check=check,
                            description="An MQTT broker (Mosquitto, ...): host, port, user, "
                                        "password, client id, session expiry, TLS.")


class MqttPublish(Model):
    connection: str = Field(description="Named MQTT connection (connections/NAME.yaml).")
    topic: Value = Field(description="Topic to publish to; may use {{ expression }}.")
    body: Expr | None = Field(None, description="What to send (default: the body); text as "
                                                "is, anything else as JSON.")
    qos: Literal[1, 2] = Field(1, description="1: at least once (PUBACK); 2: exactly once "
                                              "between us and the broker (PUBCOMP).")
    retain: bool = Field(False, description="The broker keeps the message as the topic's last "
                                            "value.")
    headers: dict[str, Value] = Field(default_factory=dict, description="MQTT 5 user "
                                      "properties; values may use {{ expression }}.")
    message_id: Value | None = Field(None, description="The message_id user property "
                                     "(default: the run id and step id).")


def client(name: str, config: Any, secrets: Any, role: str, *, session: bool = False,
           receive_maximum: int | None = None, folder: Any = None) -> paho.Client:
    """A connected paho client for named connection *name* (raises StepError)."""
    try:
        host, port, user, password = config.address(secrets)
    except (UnresolvedReference, ValueError) as exc:
        raise StepError(f"connection '{name}': {exc}", kind="config") from None
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.client_id}-{role}",
                       protocol=paho.MQTTv5, manual_ack=session)
    context = tls_context(name, config, folder, secrets)
    if context is not None:
        mqtt.tls_set_context(context)
        # paho checks the host name itself unless the context does; verify: false means neither
        mqtt.tls_insecure_set(not context.check_hostname)
    if user is not None:
        mqtt.username_pw_set(user, password)
    properties = Properties(PacketTypes.CONNECT)
    if session:
        properties.SessionExpiryInterval = int(config.session_expiry)
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
    outcome: list[Any] = []
    notes: list[str] = []
    mqtt.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(reason)
    mqtt.on_disconnect = lambda _c, _u, _f, reason, _p: outcome.append(reason)
    mqtt.on_log = lambda _c, _u, _level, text: notes.append(text)
    where = f"mqtt {name} ({host}:{port})"
    try:
        mqtt.connect(host, port, keepalive=int(config.keepalive), clean_start=not session,
                     properties=properties)
    except (OSError, ValueError) as exc:  # ssl's CertificateError is a ValueError too
        kind, why = failure(exc, config)
        raise StepError(f"{where}: {why}", kind=kind, retryable=True) from None
    # the CONNACK: a refused login, or a broker that closed the connection over TLS, is told
    # here rather than as "not connected" at the first publish
    deadline = time.monotonic() + config.timeout
    while not outcome and time.monotonic() < deadline:
        if mqtt.loop(timeout=0.1) != paho.MQTT_ERR_SUCCESS:
            break
    mqtt.on_connect = mqtt.on_disconnect = mqtt.on_log = None
    if mqtt.is_connected():
        return mqtt
    if outcome and getattr(outcome[0], "is_failure", False) and "CONNACK" in " ".join(notes):
        raise StepError(f"{where}: the broker refused the connection ({outcome[0]})",
                        kind="auth" if outcome[0].value in (134, 135) else "connection",
                        retryable=True)
    lost = next((n.split(": ", 1)[-1] for n in notes if n.startswith("failed to ")), None)
    kind, why = closed(lost, config) if lost else \
        ("connection", f"no answer within {config.timeout:g}s" if not outcome else
         str(outcome[0]))
    raise StepError(f"{where}: {why}", kind=kind, retryable=True)


def _share_property_tables() -> None:
    """paho's `Properties` builds the same three tables of every MQTT 5 property (names,
    identifiers, types) on each construction, which paho does for each message received and
    each PUBACK — about 12 µs each time, a third of decoding the packet. The tables are only
    ever read: build them once, and let every instance share them."""
    if getattr(Properties.__init__, "shares_tables", False):
        return
    tables = {k: v for k, v in Properties(PacketTypes.PUBLISH).__dict__.items()
              if k in ("types", "names", "properties")}

    def __init__(self: Properties, packetType: int) -> None:
        self.__dict__.update(tables)
        self.__dict__["packetType"] = packetType

    __init__.shares_tables = True  # type: ignore[attr-defined]
    Properties.__init__ = __init__  # type: ignore[method-assign]


_share_property_tables()


class UserProperties(Properties):
    """The user properties of one PUBLISH, packed as paho packs them. paho's `Properties`
    builds its tables of every property name on each construction and searches them on each
    assignment and `pack` — about 45 µs a message, a tenth of a run's whole cost."""

    UserProperty: list[tuple[str, str]]

    def __init__(self, pairs: list[tuple[str, str]]):
        # past paho's __setattr__, which checks the name against its tables
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "UserProperty", pairs)

    def pack(self) -> bytes:
        # identifier 38 (User Property), then the name and the value as UTF-8 strings
        buffer = b"".join(b"\x26" + _utf8(name) + _utf8(value)
                          for name, value in self.UserProperty)
        return bytes(VariableByteIntegers.encode(len(buffer))) + buffer

    def __str__(self) -> str:
        return f"[UserProperty : {self.UserProperty}]"


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


class Publisher:
    """One connection's publishing client, its network loop on a thread of its own."""

    def __init__(self, name: str, config: Any, secrets: Any, folder: Any = None):
        self.name, self.config = name, config
        #: message ids the broker acknowledged with a failure (PUBACK or PUBCOMP reason code
        #: 0x80 and above), with the reason and when: paho counts them as published all the
        #: same. A late one, for a publish that gave up waiting, stays until its id is reused;
        #: its time tells it from the refusal of the publish that reuses it.
        self.refused: dict[int, tuple[Any, float]] = {}
        self.mqtt = client(name, config, secrets, "publish", folder=folder)
        self.mqtt.on_publish = self._acknowledged
        self.mqtt.loop_start()

    def _acknowledged(self, _client: Any, _userdata: Any, mid: int, reason: Any,
                      _properties: Any) -> None:
        # on paho's thread, before the publish's waiter is woken
        if reason.is_failure:
            self.refused[mid] = (reason, time.monotonic())

    def close(self) -> None:
        """Disconnect and stop the network loop's thread."""
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


#: reason codes of a refusal that sending again does not change
_FINAL_REASONS = {0x87: "permission", 0x90: "rejected", 0x99: "rejected"}


def build(config: MqttPublish, ctx: BuildContext) -> StepFn:
    out = Outbound(config, "mqtt", "topic", ctx)

    def publish(envelope: Envelope, resources: Resources) -> Outcome:
        message, found = out.message(envelope, resources), out.found
        data, headers = message.data, message.headers
        topic, message_id = message.destination, message.message_id
        twin = resources.transport(DELIVER)
        if twin is not None:  # flowrun test: the case's mocks answer
            url = f"mqtt://{config.connection}/{topic}"
            confirmed(twin(url, data, {**headers, "Message-Id": message_id}), url)
            return Continue()
        properties = UserProperties([("message_id", message_id), *headers.items()])
        publisher = out.runtime("mqtt-publisher", lambda: Publisher(
            config.connection, found, resources.secrets, out.connections.folder))
        where = f"mqtt {config.connection} topic '{topic}'"
        sent = time.monotonic()
        info = publisher.mqtt.publish(topic, data, qos=config.qos, retain=config.retain,
                                      properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise StepError(f"{where}: {paho.error_string(info.rc)}", kind="connection",
                            retryable=True)
        try:
            info.wait_for_publish(found.timeout)
        except RuntimeError as exc:  # the connection went away before the acknowledgement
            raise StepError(f"{where}: {exc}", kind="connection", retryable=True) from None
        if not info.is_published():
            raise StepError(f"{where}: the broker did not acknowledge within "
                            f"{found.timeout:g}s", kind="timeout", retryable=True)
        refused, at = publisher.refused.pop(info.mid, (None, 0.0))
        if refused is not None and at >= sent:  # Not authorized, Quota exceeded ...
            raise StepError(f"{where}: the broker refused the message ({refused})",
                            kind=_FINAL_REASONS.get(refused.value, "rejected"),
                            retryable=refused.value not in _FINAL_REASONS)
        resources.log.info("mqtt published %s (%d bytes, qos %d, id %s)", where, len(data),
                           config.qos, message_id)
        return Continue()

    return publish


STEP = StepKind(name="mqtt", config=MqttPublish, build=build,
                description="Publish a message to an MQTT topic at QoS 1 or 2, acknowledged by "
                            "the broker.",
                side_effect=True, default_output=None)


# -- consuming -----------------------------------------------------------------------------------
def consume(gate: Gate, stop: threading.Event) -> None:
    name, config = gate.connection
    source, trigger = gate.source, gate.trigger
    role = f"consume-{gate.flow.id}"
    mqtt = client(name, config, gate.secrets, role, session=True,
                  receive_maximum=trigger.in_flight, folder=gate.folder)
    topic = f"$share/{source.shared}/{source.topic}" if source.shared else source.topic
    failed: list[str] = []

    def on_message(_client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        if not stop.is_set():  # stopping: left unacknowledged, sent again in the next session
            gate.take(_message(message, source.topic))

    def on_disconnect(_client: Any, _userdata: Any, _flags: Any, reason: Any,
                      _properties: Any) -> None:
        if not stop.is_set():
            failed.append(str(reason))

    mqtt.on_message = on_message
    mqtt.on_disconnect = on_disconnect
    try:
        mqtt.subscribe(topic, qos=source.qos)
        while not stop.is_set() and not failed:
            wait = 0.2 if gate.in_flight >= trigger.in_flight else 0.0
            mqtt.loop(timeout=0.01 if gate.in_flight else 0.2)
            if not _settle(mqtt, gate, wait):
                # MQTT sends an unacknowledged message again only in a new session
                failed.append("a message was not taken in")
        if failed:
            raise ConnectionError(f"mqtt {name}: disconnected ({failed[0]})")
        # no unsubscribe: the session keeps the subscription, so messages published while this
        # consumer is stopped wait in the broker
        deadline = time.monotonic() + DRAIN
        while gate.in_flight and time.monotonic() < deadline:
            mqtt.loop(timeout=0.05)
            _settle(mqtt, gate, 0.05)
    finally:
        mqtt.disconnect()


def _settle(mqtt: paho.Client, gate: Gate, wait: float) -> bool:
    """Acknowledge what intake took in; False when a message was not taken in."""
    taken = True
    for message, ok in gate.settled(wait):
        if ok:
            mqtt.ack(message.token[0], message.token[1])
        taken = taken and ok
    return taken


def _message(message: paho.MQTTMessage, subscription: str) -> BusMessage:
    headers: dict[str, Any] = {}
    props = getattr(message, "properties", None)
    for key, value in getattr(props, "UserProperty", None) or []:
        headers[key] = value
    where = {"bus": "mqtt", "topic": message.topic, "subscription": subscription,
             "qos": message.qos, "message_id": headers.get("message_id"),
             "retained": bool(message.retain)}
    return BusMessage(body=bytes(message.payload), headers=headers, where=where,
                      deliveries=2 if message.dup else 1, token=(message.mid, message.qos))


CONSUMER = ConsumerKind(name="mqtt", run=consume,
                        description="Subscribe to an MQTT topic filter at QoS 1 or 2 in a "
                                    "persistent session, acknowledging each message once its "
                                    "run is recorded.")
