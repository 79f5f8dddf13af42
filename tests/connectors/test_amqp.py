"""The ``amqp`` step and ``consume: {amqp: ...}`` against the RabbitMQ on 127.0.0.1:5672.

Each test declares queues of its own (a unique suffix) and deletes them at the end.
"""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import orjson
import pytest

from tests.conftest import wait_until
from tests.connectors.bus_support import (
    KEYS,
    ORDERED,
    Project,
    check_per_key_order,
    ordered_timeout,
)

pytestmark = pytest.mark.integration

URL = "amqp://guest:guest@127.0.0.1:5672//"
CONNECTION = """
connection: rabbit
amqp: {host: 127.0.0.1, port: 5672, username: guest, password: "${secret:BUS_PASSWORD}"}
"""
FLOW = """
flow: shipments-to-crm
trigger:
  consume:
    connection: rabbit
    amqp: {{queue: {inbox}}}
    in_flight: 32
steps:
  - id: to_crm
    transform:
      jsonata: '{{"order": order_id, "tracking": shipment.tracking, "seq": seq, "k": k}}'
  - id: tell_crm
    amqp: {{connection: rabbit, routing_key: {outbox}, headers: {{x-order: "{{{{ order }}}}"}}}}
"""


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    inbox, outbox = f"test.in.{suffix}", f"test.out.{suffix}"
    with kombu.Connection(URL) as conn:
        channel = conn.channel()
        kombu.Queue(outbox, channel=channel, durable=True).declare()
        yield inbox, outbox
        for name in (inbox, outbox):
            channel.queue_delete(name)


@pytest.fixture
def project(tmp_path: Path, names: tuple[str, str]) -> Iterator[Project]:
    inbox, outbox = names
    running = Project(tmp_path, FLOW.format(inbox=inbox, outbox=outbox), CONNECTION,
                      "shipments-to-crm")
    yield running
    running.stop()


def publish(queue: str, bodies: list[bytes], ids: list[str] | None = None) -> None:
    with kombu.Connection(URL, transport_options={"confirm_publish": True}) as conn:
        producer = kombu.Producer(conn.default_channel)
        for i, body in enumerate(bodies):
            producer.publish(body, routing_key=queue, serializer=None,
                             content_type="application/json", content_encoding="binary",
                             message_id=ids[i] if ids else None, delivery_mode=2)


def drain(queue: str, count: int, timeout: float = 60.0) -> list[kombu.Message]:
    got: list[kombu.Message] = []
    with kombu.Connection(URL) as conn:
        simple = conn.SimpleQueue(queue, serializer=None)
        simple.consumer.accept = None
        def more() -> bool:
            while len(got) < count:
                try:
                    message = simple.get(timeout=0.5)
                except simple.Empty:
                    return False
                message.ack()
                got.append(message)
            return True
        wait_until(more, timeout, f"{count} messages on {queue}")
        simple.close()
    return got


def consumers(queue: str) -> int:
    with kombu.Connection(URL) as conn:
        try:
            return conn.default_channel.queue_declare(queue, passive=True).consumer_count
        except Exception:
            return 0


def ready(queue: str) -> int:
    with kombu.Connection(URL) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def shipment(order: str, **more: object) -> bytes:
    return orjson.dumps({"order_id": order, "shipment": {"tracking": f"T-{order}"}, **more})


def test_consume_run_publish_round_trip(project: Project, names: tuple[str, str]) -> None:
    inbox, outbox = names
    project.start()
    wait_until(lambda: consumers(inbox), 30, "the consumer")
    publish(inbox, [shipment("A-1"), shipment("A-2")], ["wms-1", "wms-2"])
    runs = project.wait_runs(2)
    out = drain(outbox, 2)
    assert sorted(orjson.loads(m.body)["order"] for m in out) == ["A-1", "A-2"]
    assert {m.headers["x-order"] for m in out} == {"A-1", "A-2"}
    assert all(m.properties["delivery_mode"] == 2 for m in out)
    request = runs[0].envelope["meta"]["request"]
    assert request["bus"] == "amqp" and request["queue"] == inbox
    assert {r.envelope["meta"]["request"]["message_id"] for r in runs} == {"wms-1", "wms-2"}
    assert ready(inbox) == 0
    assert project.stop() == 0


def test_a_redelivered_message_id_starts_one_run(project: Project,
                                                 names: tuple[str, str]) -> None:
    inbox, outbox = names
    project.start()
    wait_until(lambda: consumers(inbox), 30, "the consumer")
    # the broker delivering a message again after its run was recorded looks like this
    publish(inbox, [shipment("B-1"), shipment("B-1")], ["wms-7", "wms-7"])
    project.wait_runs(1)
    wait_until(lambda: ready(inbox) == 0, 10, "both deliveries acknowledged")
    drain(outbox, 1)
    assert len(project.runs()) == 1


def test_consumer_killed_before_intake_the_message_is_redelivered_and_runs_once(
        project: Project, names: tuple[str, str]) -> None:
    inbox, outbox = names
    project.start()
    wait_until(lambda: consumers(inbox), 30, "the consumer")
    lock = sqlite3.connect(project.folder / "home" / "state.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # intake cannot record: the message waits, unacknowledged
    try:
        publish(inbox, [shipment("C-1")], ["wms-9"])
        wait_until(lambda: ready(inbox) == 0, 10, "the consumer to receive the message")
        project.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert project.runs() == []
    assert ready(inbox) == 1  # back on the queue
    project.start()
    runs = project.wait_runs(1)
    assert runs[0].envelope["meta"]["request"]["deliveries"] >= 2
    drain(outbox, 1)
    wait_until(lambda: ready(inbox) == 0, 10, "the redelivery acknowledged")
    assert len(project.runs()) == 1


def test_undecodable_message_is_dead_lettered_with_its_bytes(project: Project,
                                                            names: tuple[str, str]) -> None:
    inbox, _ = names
    project.start()
    wait_until(lambda: consumers(inbox), 30, "the consumer")
    raw = b"\xffnot json{"
    publish(inbox, [raw], ["wms-bad"])
    entry = wait_until(lambda: project.dead_letters(), 30, "a dead-letter entry")[0]
    assert base64.b64decode(entry.original["body"]["base64"]) == raw
    request = entry.original["request"]
    assert request["queue"] == inbox and request["message_id"] == "wms-bad"
    assert entry.reason["kind"] == "undecodable"
    wait_until(lambda: ready(inbox) == 0, 10, "the poison message acknowledged")
    assert project.runs("succeeded") == []


def test_many_messages_are_taken_in_per_key_in_queue_order(project: Project,
                                                           names: tuple[str, str]) -> None:
    inbox, outbox = names
    project.start()
    wait_until(lambda: consumers(inbox), 30, "the consumer")
    started = time.monotonic()
    bodies = [shipment(f"D-{i}", k=f"key-{i % KEYS}", seq=i) for i in range(ORDERED)]
    publish(inbox, bodies, [f"d-{i}" for i in range(ORDERED)])
    runs = project.wait_runs(ORDERED, timeout=ordered_timeout(ORDERED))
    check_per_key_order("amqp", runs, started)
    drain(outbox, ORDERED, timeout=60)
