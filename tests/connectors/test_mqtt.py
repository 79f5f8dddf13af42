"""The ``mqtt`` step and ``consume: {mqtt: ...}`` against the Mosquitto on 127.0.0.1:1883.

Each test uses topics and client ids of its own (a unique suffix); the subscriber's persistent
session is removed at the end.
"""

from __future__ import annotations

import base64
import getpass
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from connectors.mqtt import UserProperties
from tests.conftest import wait_until
from tests.connectors.bus_support import KEYS, ORDERED, Project, check_per_key_order
from tests.connectors.tls_support import Process, binary, free_port

pytestmark = pytest.mark.integration

CONNECTION = """
connection: mosquitto
mqtt: {{host: 127.0.0.1, port: 1883, client_id: "{client}", session_expiry: 5m}}
"""
FLOW = """
flow: shipments-mqtt
trigger:
  consume:
    connection: mosquitto
    mqtt: {{topic: "{inbox}/+", qos: {qos}}}
    in_flight: 32
steps:
  - id: to_crm
    transform:
      jsonata: '{{"order": order_id, "tracking": shipment.tracking, "seq": seq, "k": k}}'
  - id: tell_crm
    mqtt: {{connection: mosquitto, topic: "{outbox}/{{{{ order }}}}", qos: {qos},
           headers: {{x-order: "{{{{ order }}}}"}}}}
"""


class Listener:
    """A test subscriber on the flow's output topics, collecting what arrives."""

    def __init__(self, topic: str, qos: int):
        self.messages: list[paho.MQTTMessage] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda c, *args: c.subscribe(topic, qos=qos)
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish(topic: str, bodies: list[bytes], ids: list[str] | None = None,
            qos: int = 1) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        infos = []
        for i, body in enumerate(bodies):
            properties = Properties(PacketTypes.PUBLISH)
            if ids:
                properties.UserProperty = [("message_id", ids[i])]
            infos.append(client.publish(topic, body, qos=qos, properties=properties))
            if len(infos) >= 100:  # paho's own outgoing window
                infos.pop(0).wait_for_publish(30)
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def forget_session(client_id: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", 1883, clean_start=True)
    client.loop_start()
    time.sleep(0.2)  # the CONNACK; the session expires at once on disconnect
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    found = {"inbox": f"test/in/{suffix}", "outbox": f"test/out/{suffix}",
             "client": f"flowrun-test-{suffix}"}
    yield found
    forget_session(f"{found['client']}-consume-shipments-mqtt")


def make_project(tmp_path: Path, names: dict[str, str], qos: int) -> Project:
    return Project(tmp_path, FLOW.format(qos=qos, **names), CONNECTION.format(**names),
                   "shipments-mqtt")


@pytest.fixture
def project(tmp_path: Path, names: dict[str, str]) -> Iterator[Project]:
    running = make_project(tmp_path, names, 1)
    yield running
    running.stop()


def started(project: Project) -> None:
    project.start()
    wait_until(lambda: "shipments-mqtt: mqtt" in project.output(), 30, "the consumer")
    time.sleep(1.0)  # its subscription; a message sent before it would not be for this session


def shipment(order: str, **more: object) -> bytes:
    return orjson.dumps({"order_id": order, "shipment": {"tracking": f"T-{order}"}, **more})


def test_qos2_consume_run_publish_round_trip(tmp_path: Path, names: dict[str, str]) -> None:
    project = make_project(tmp_path, names, 2)
    listener = Listener(f"{names['outbox']}/#", 2)
    try:
        started(project)
        publish(f"{names['inbox']}/dc1", [shipment("A-1"), shipment("A-2")], ["m-1", "m-2"],
                qos=2)
        runs = project.wait_runs(2)
        wait_until(lambda: len(listener.messages) >= 2, 30, "the published messages")
        assert sorted(orjson.loads(m.payload)["order"] for m in listener.messages) == \
            ["A-1", "A-2"]
        assert {m.topic for m in listener.messages} == \
            {f"{names['outbox']}/A-1", f"{names['outbox']}/A-2"}
        assert all(m.qos == 2 for m in listener.messages)
        props = dict(listener.messages[0].properties.UserProperty)
        assert props["x-order"] in ("A-1", "A-2") and props["message_id"].endswith(":tell_crm")
        request = runs[0].envelope["meta"]["request"]
        assert request["bus"] == "mqtt" and request["topic"] == f"{names['inbox']}/dc1"
        assert {r.envelope["meta"]["request"]["message_id"] for r in runs} == {"m-1", "m-2"}
        assert project.stop() == 0
    finally:
        listener.close()
        project.stop()


def test_a_repeated_message_id_starts_one_run(project: Project,
                                              names: dict[str, str]) -> None:
    started(project)
    publish(f"{names['inbox']}/dc1", [shipment("B-1"), shipment("B-1")], ["m-7", "m-7"])
    project.wait_runs(1)
    wait_until(lambda: project.store().count_runs("shipments-mqtt"), 10, "the count")
    assert len(project.runs()) == 1


def test_consumer_killed_before_intake_the_message_comes_again_and_runs_once(
        project: Project, names: dict[str, str]) -> None:
    started(project)
    lock = sqlite3.connect(project.folder / "home" / "state.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # intake cannot record: the message stays unacknowledged
    try:
        publish(f"{names['inbox']}/dc1", [shipment("C-1")], ["m-9"])
        time.sleep(1.0)  # delivered to the consumer by now (if not, the broker keeps it anyway)
        project.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert project.runs() == []
    project.start()  # the same client id: the broker resumes the session and sends it again
    runs = project.wait_runs(1)
    assert runs[0].original["body"]["order_id"] == "C-1"
    time.sleep(1.0)  # a second delivery, were there one, would be taken in by now
    assert len(project.runs()) == 1


def test_undecodable_message_is_dead_lettered_with_its_bytes(project: Project,
                                                            names: dict[str, str]) -> None:
    started(project)
    raw = b"\x00\xffnot json"
    publish(f"{names['inbox']}/dc2", [raw], ["m-bad"])
    entry = wait_until(lambda: project.dead_letters(), 30, "a dead-letter entry")[0]
    assert base64.b64decode(entry.original["body"]["base64"]) == raw
    request = entry.original["request"]
    assert request["topic"] == f"{names['inbox']}/dc2" and request["message_id"] == "m-bad"
    assert entry.reason["kind"] == "undecodable"
    assert project.runs("succeeded") == []


def test_many_qos1_messages_are_taken_in_per_key_in_topic_order(project: Project,
                                                                names: dict[str, str]) -> None:
    started(project)
    began = time.monotonic()
    # in bursts of 500: Mosquitto drops QoS 1 messages queued for one session beyond its
    # max_queued_messages (1000 by default), a broker setting this test cannot raise
    for start in range(0, ORDERED, 500):
        seqs = range(start, start + 500)
        publish(f"{names['inbox']}/dc1", [shipment(f"D-{i}", k=f"key-{i % KEYS}", seq=i)
                                          for i in seqs], [f"d-{i}" for i in seqs])
        runs = project.wait_runs(start + 500, timeout=120)
    check_per_key_order("mqtt", runs, began)


def test_messages_published_while_the_consumer_is_stopped_wait_in_its_session(
        project: Project, names: dict[str, str]) -> None:
    started(project)
    assert project.stop() == 0  # SIGTERM: the session and its subscription stay
    publish(f"{names['inbox']}/dc3", [shipment("E-1"), shipment("E-2")], ["m-e1", "m-e2"])
    project.start()
    runs = project.wait_runs(2)
    assert sorted(r.original["body"]["order_id"] for r in runs) == ["E-1", "E-2"]


@pytest.mark.parametrize("pairs", [
    [],
    [("message_id", "run-1:tell_crm")],
    [("message_id", "é" * 300), ("x-source", "flowrunner"), ("traceparent", "00-ab-cd-01")],
])
def test_user_properties_pack_as_paho_packs_them(pairs: list[tuple[str, str]]) -> None:
    theirs = Properties(PacketTypes.PUBLISH)
    if pairs:
        theirs.UserProperty = list(pairs)
    packed = UserProperties(list(pairs)).pack()
    assert packed == bytes(theirs.pack())
    read = Properties(PacketTypes.PUBLISH)
    read.unpack(packed)
    assert getattr(read, "UserProperty", []) == pairs


def test_paho_properties_share_their_tables_and_decode_as_before() -> None:
    sent = Properties(PacketTypes.PUBLISH)
    sent.UserProperty = [("message_id", "m-1"), ("x-order", "A-1")]
    sent.ContentType = "application/json"
    sent.MessageExpiryInterval = 60
    topic = b"plant/dc1/scans"
    packet = (len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big")
              + bytes(sent.pack()) + b'{"a": 1}')
    decoded = _packet.decode_publish(0x32, packet, MQTTProtocolVersion.MQTTv5)
    assert (decoded.topic, decoded.mid, decoded.payload) == (topic, 7, b'{"a": 1}')
    props = decoded.properties
    assert props.UserProperty == [("message_id", "m-1"), ("x-order", "A-1")]
    assert (props.ContentType, props.MessageExpiryInterval) == ("application/json", 60)
    other = Properties(PacketTypes.PUBACK)
    assert other.names is props.names and not hasattr(other, "UserProperty")
    assert len(other.names) == 27 and other.packetType == PacketTypes.PUBACK
    with pytest.raises(MQTTException):  # still checked against the tables
        other.ContentType = "text/plain"


REFUSING = """
flow: refused-mqtt
defaults:
  retry: {{max_attempts: 3, backoff: {{initial: 10ms}}}}
trigger:
  consume:
    connection: acl
    mqtt: {{topic: "in/{suffix}/+", qos: 1}}
steps:
  - id: tell
    mqtt: {{connection: acl, topic: "{topic}", qos: 1}}
"""


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Process]:
    """A Mosquitto of the test's own that lets clients use in/# and out/# only."""
    folder = tmp_path / "broker"
    folder.mkdir()
    (folder / "acl").write_text("topic readwrite in/#\ntopic readwrite out/#\n",
                                encoding="utf-8")
    port = free_port()
    # run by root, mosquitto would drop to its own user, who cannot read the test's folder
    (folder / "mosquitto.conf").write_text(
        f"user {getpass.getuser()}\nallow_anonymous true\npersistence false\n"
        f"acl_file {folder / 'acl'}\nlog_dest file {folder / 'mosquitto.log'}\n"
        f"listener {port} 127.0.0.1\n", encoding="utf-8")
    broker = Process([binary("mosquitto", "/usr/sbin/mosquitto"), "-c",
                      str(folder / "mosquitto.conf")], port, folder / "mosquitto.log")
    yield broker
    broker.stop()


@pytest.mark.parametrize("where, status", [("out", "succeeded"), ("forbidden", "dead_lettered")])
def test_a_publish_the_broker_refuses_fails_the_step(tmp_path: Path, acl_broker: Process,
                                                      where: str, status: str) -> None:
    # Mosquitto answers a publish its ACL denies with PUBACK "Not authorized" (0x87), which
    # paho counts as published: the run must not succeed on it
    suffix = uuid.uuid4().hex[:8]
    project = Project(tmp_path, REFUSING.format(suffix=suffix, topic=f"{where}/{suffix}"),
                      f"connection: acl\nmqtt: {{host: 127.0.0.1, port: {acl_broker.port}, "
                      f"client_id: t-{suffix}, session_expiry: 1m}}\n", "refused-mqtt")
    sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    try:
        project.start()
        wait_until(lambda: "refused-mqtt: mqtt" in project.output(), 30, "the consumer")
        sender.connect("127.0.0.1", acl_broker.port)
        sender.loop_start()
        # the consumer subscribes once connected: send until a run starts
        wait_until(lambda: sender.publish(f"in/{suffix}/a", shipment("R-1"), qos=1)
                   .wait_for_publish(5) or project.runs(), 30, "a run")
        run = project.wait_runs(1, status)[0]
        if status == "dead_lettered":
            assert run.error is not None and "Not authorized" in run.error["message"]
            assert run.error["kind"] == "permission" and len(run.error["attempts"]) == 1
        assert project.stop() == 0
    finally:
        sender.loop_stop()
        sender.disconnect()
        project.stop()
