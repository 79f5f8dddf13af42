"""TLS and mutual TLS to the four message buses, against brokers of the tests' own.

Each broker (`tests.connectors.tls_support`) listens on a free loopback port with TLS only and
requires a client certificate. For every bus: a flow consumes over TLS (`flowrun consume`) and
publishes over TLS with its step; a publish step without a client certificate, and one trusting
another CA than the broker's, fails with the connection, the host and the TLS reason; the
consumer refused the same way says so in its log, without a traceback. The AMQP broker is the
shared RabbitMQ behind a TLS-terminating relay (a private RabbitMQ is not practical in a test);
the tests' own AMQP clients use the shared broker's plain port directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kombu
import nats
import orjson
import paho.mqtt.client as paho
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import wait_until
from tests.connectors import bus_support, connections_support
from tests.connectors.tls_support import (
    Certs,
    TlsRelay,
    mint,
    mosquitto,
    nats_server,
    redis_server,
)

pytestmark = pytest.mark.integration

MUTUAL = "{ca_file: certs/ca.pem, cert_file: certs/client.pem, key_file: certs/client.key}"
NO_CLIENT_CERT = "{ca_file: certs/ca.pem}"
OTHER_CA = ("{ca_file: certs/other-ca.pem, cert_file: certs/client.pem, "
            "key_file: certs/client.key}")


@dataclass
class Bus:
    """One bus's broker and the tests' own client to it."""

    name: str
    port: int
    #: the connection file's ``<bus>:`` block without tls (flow style, no braces)
    connection: str
    trigger: str
    step: str
    send: Callable[[bytes], None]
    #: the bodies the flow published, so far
    received: Callable[[], list[bytes]]
    close: Callable[[], None]
    #: whether a message sent now reaches the consumer (MQTT: once it has subscribed)
    ready: Callable[[], bool] = lambda: True


def connection(bus: Bus, tls: str) -> str:
    return f"connection: bus\n{bus.name}: {{{bus.connection}, timeout: 3s, tls: {tls}}}\n"


def flow(bus: Bus) -> str:
    return (f"flow: tls-{bus.name}\ntrigger:\n  consume:\n    connection: bus\n"
            f"    {bus.name}: {bus.trigger}\nsteps:\n  - id: tell\n    {bus.name}: {bus.step}\n")


# -- the brokers ---------------------------------------------------------------------------------
def _mqtt(folder: Path, certs: Certs) -> Iterator[Bus]:
    broker = mosquitto(folder, certs)
    suffix = uuid.uuid4().hex[:8]
    received: list[bytes] = []
    listener = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    listener.tls_set_context(certs.client_context())
    listener.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe(f"out/{suffix}/#", qos=1)
    listener.loop_start()

    def send(body: bytes) -> None:
        listener.publish(f"in/{suffix}/a", body, qos=1).wait_for_publish(10)

    def subscribed() -> bool:  # the broker logs each subscription (log_type subscribe)
        return f"t-{suffix}-consume" in broker.log.read_text(errors="replace")

    yield Bus("mqtt", broker.port,
              f"host: 127.0.0.1, port: {broker.port}, client_id: t-{suffix}",
              f'{{topic: "in/{suffix}/#", qos: 1}}',
              f'{{connection: bus, topic: "out/{suffix}/x"}}',
              send, lambda: list(received), lambda: None, subscribed)
    listener.loop_stop()
    listener.disconnect()
    broker.stop()


def _redis(folder: Path, certs: Certs) -> Iterator[Bus]:
    broker = redis_server(folder, certs)
    files = certs.write(folder / "client")
    ours = redis.Redis(port=broker.port, ssl=True, ssl_ca_certs=str(files / "ca.pem"),
                       ssl_certfile=str(files / "client.pem"),
                       ssl_keyfile=str(files / "client.key"))
    yield Bus("redis", broker.port, f"host: 127.0.0.1, port: {broker.port}",
              "{stream: in, group: crm}", "{connection: bus, stream: out}",
              lambda body: ours.xadd("in", {"body": body}) and None,
              lambda: [fields[b"body"] for _id, fields in ours.xrange("out")], ours.close)
    broker.stop()


def _nats(folder: Path, certs: Certs) -> Iterator[Bus]:
    broker = nats_server(folder, certs)
    loop = asyncio.new_event_loop()

    def run(coroutine: Any) -> Any:
        return loop.run_until_complete(coroutine)

    nc = run(nats.connect(f"nats://127.0.0.1:{broker.port}", tls=certs.client_context()))
    js = nc.jetstream()
    run(js.add_stream(name="IN", subjects=["in.>"]))
    run(js.add_stream(name="OUT", subjects=["out.>"]))

    def received() -> list[bytes]:
        count = run(js.stream_info("OUT")).state.messages
        return [run(js.get_msg("OUT", seq)).data for seq in range(1, count + 1)]

    yield Bus("nats", broker.port, f"host: 127.0.0.1, port: {broker.port}",
              '{stream: IN, subject: "in.>", durable: crm}',
              '{connection: bus, subject: "out.x"}',
              lambda body: run(js.publish("in.a", body)) and None, received,
              lambda: run(nc.close()))
    loop.close()
    broker.stop()


def _amqp(folder: Path, certs: Certs) -> Iterator[Bus]:
    relay = TlsRelay(certs, ("127.0.0.1", 5672))
    suffix = uuid.uuid4().hex[:8]
    inbox, outbox = f"tls.in.{suffix}", f"tls.out.{suffix}"
    plain = kombu.Connection("amqp://guest:guest@127.0.0.1:5672//")
    channel = plain.channel()
    queues = [kombu.Queue(inbox, channel=channel, durable=True,
                          queue_arguments={"x-queue-type": "quorum"}),
              kombu.Queue(outbox, channel=channel, durable=True)]
    for queue in queues:
        queue.declare()
    received: list[bytes] = []

    def take() -> list[bytes]:
        while (message := queues[1].get(no_ack=True)) is not None:
            received.append(message.body)
        return list(received)

    def send(body: bytes) -> None:
        kombu.Producer(channel).publish(body, routing_key=inbox, serializer=None,
                                        content_type="application/json")

    yield Bus("amqp", relay.port, f"host: 127.0.0.1, port: {relay.port}",
              f"{{queue: {inbox}}}", f'{{connection: bus, routing_key: "{outbox}"}}',
              send, take, lambda: None)
    for queue in queues:
        with contextlib.suppress(Exception):
            queue.delete()
    plain.release()
    relay.stop()


BROKERS = {"mqtt": _mqtt, "redis": _redis, "nats": _nats, "amqp": _amqp}


@pytest.fixture(scope="module")
def certs() -> Certs:
    return mint()


@pytest.fixture(params=sorted(BROKERS))
def bus(request: pytest.FixtureRequest, certs: Certs,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    folder = tmp_path_factory.mktemp(f"broker-{request.param}")
    made = BROKERS[request.param](folder, certs)
    found = next(made)
    try:
        yield found
    finally:
        found.close()
        with contextlib.suppress(StopIteration):
            next(made)


# -- the tests -----------------------------------------------------------------------------------
def consumer(tmp_path: Path, bus: Bus, certs: Certs, tls: str) -> bus_support.Project:
    project = bus_support.Project(tmp_path, flow(bus), connection(bus, tls), f"tls-{bus.name}")
    certs.write(project.folder / "connections" / "certs")
    return project


def test_a_flow_consumes_and_publishes_over_mutual_tls(tmp_path: Path, bus: Bus,
                                                      certs: Certs) -> None:
    project = consumer(tmp_path, bus, certs, MUTUAL)
    try:
        project.start()
        wait_until(bus.ready, 30, "the consumer's subscription")
        bus.send(orjson.dumps({"order_id": "A-1"}))
        runs = project.wait_runs(1)
        assert runs[0].envelope["meta"]["request"]["bus"] == bus.name
        published = wait_until(bus.received, 30, "the message the flow published")
        assert orjson.loads(published[0]) == {"order_id": "A-1"}
        assert project.stop() == 0
    finally:
        project.stop()


@pytest.fixture
def publisher(tmp_path: Path, certs: Certs) -> Iterator[connections_support.Project]:
    with connections_support.project(tmp_path) as made:
        certs.write(made.connections / "certs")
        yield made


def publish_once(made: connections_support.Project, bus: Bus, tls: str) -> Any:
    made.connection("bus", connection(bus, tls))
    made.flow(f"flow: t\n{connections_support.NO_RETRY}steps:\n  - id: tell\n"
              f"    {bus.name}: {bus.step}\n")
    return made.run(made.app(), {"order_id": "B-1"})


def test_the_publish_step_over_mutual_tls(publisher: connections_support.Project,
                                          bus: Bus) -> None:
    state = publish_once(publisher, bus, MUTUAL)
    assert state.status == "succeeded", state.error
    assert orjson.loads(wait_until(bus.received, 30, "the message")[0]) == {"order_id": "B-1"}


def test_without_a_client_certificate_the_broker_refuses_the_step(
        publisher: connections_support.Project, bus: Bus) -> None:
    state = publish_once(publisher, bus, NO_CLIENT_CERT)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls", state.error
    message = state.error["message"]
    assert f"{bus.name} bus (127.0.0.1:{bus.port})" in message
    assert "a broker that requires a client certificate does so without one it trusts " \
           "(tls.cert_file and tls.key_file)" in message
    assert bus.received() == []


def test_a_broker_certificate_from_an_unknown_ca_is_refused(
        publisher: connections_support.Project, bus: Bus) -> None:
    state = publish_once(publisher, bus, OTHER_CA)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls", state.error
    message = state.error["message"]
    assert f"{bus.name} bus (127.0.0.1:{bus.port})" in message
    # OpenSSL's words depend on whether the broker sends its CA along with its certificate
    assert "TLS: the broker's certificate does not verify (unable to get local issuer " \
           "certificate); trust the CA that signed it with tls.ca_file" in message or \
           "TLS: the broker's certificate does not verify (self-signed certificate in " \
           "certificate chain); trust the CA that signed it with tls.ca_file" in message


def test_a_refused_consumer_says_why_in_its_log(tmp_path: Path, bus: Bus,
                                                certs: Certs) -> None:
    project = consumer(tmp_path, bus, certs, NO_CLIENT_CERT)
    try:
        project.start()
        line = wait_until(lambda: next((text for text in project.output().splitlines()
                                        if "consumer stopped" in text), None), 60,
                          "the consumer's error")
        assert f"{bus.name} bus (127.0.0.1:{bus.port})" in line, line
        assert "client certificate" in line, line
        assert "Traceback" not in project.output()
    finally:
        project.stop()


def test_server_name_is_the_name_the_broker_certificate_is_checked_against(
        publisher: connections_support.Project, bus: Bus) -> None:
    # the broker's certificate is for 127.0.0.1 and localhost: another name must be refused,
    # whichever host name the client library itself would check
    state = publish_once(publisher, bus, MUTUAL.replace("}", ", server_name: broker.test}"))
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls", state.error
    assert state.error["message"].endswith(
        "TLS: the broker's certificate is not for this host (Hostname mismatch, certificate is "
        "not valid for 'broker.test'); connect by a name it carries, or set tls.server_name")


def test_verify_false_takes_a_broker_certificate_from_any_ca(
        publisher: connections_support.Project, bus: Bus) -> None:
    # (the warning it logs, once per connection and process: test_broker_tls.py)
    state = publish_once(publisher, bus, OTHER_CA.replace("}", ", verify: false}"))
    assert state.status == "succeeded", state.error
    assert orjson.loads(wait_until(bus.received, 30, "the message")[0]) == {"order_id": "B-1"}
