"""The ``nats`` step and ``consume: {nats: ...}`` against the NATS JetStream on 127.0.0.1:4222.

Each test uses a stream, subjects and a durable consumer of its own (a unique suffix) and
deletes the streams at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
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

CONNECTION = """
connection: nats_main
nats: {host: 127.0.0.1, port: 4222}
"""
FLOW = """
flow: shipments-nats
trigger:
  consume:
    connection: nats_main
    nats: {{stream: {stream}, subject: "{inbox}.>", durable: crm, ack_wait: 2s}}
    in_flight: 32
steps:
  - id: to_crm
    transform:
      jsonata: '{{"order": order_id, "tracking": shipment.tracking, "seq": seq, "k": k}}'
  - id: tell_crm
    nats: {{connection: nats_main, subject: "{outbox}.{{{{ order }}}}",
           headers: {{x-order: "{{{{ order }}}}"}}}}
"""


class Broker:
    """A NATS connection for the test, on an event loop of its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Any = self.run(nats.connect("nats://127.0.0.1:4222"))
        self.js = self.nc.jetstream()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def publish(self, subject: str, bodies: list[bytes], ids: list[str] | None = None) -> None:
        async def send() -> None:
            for i, body in enumerate(bodies):
                headers = {"Nats-Msg-Id": ids[i]} if ids else None
                await self.js.publish(subject, body, headers=headers)
        self.run(send())

    def messages(self, stream: str) -> list[Any]:
        async def read() -> list[Any]:
            info = await self.js.stream_info(stream)
            return [await self.js.get_msg(stream, seq)
                    for seq in range(info.state.first_seq, info.state.last_seq + 1)
                    if info.state.messages]
        return self.run(read())  # type: ignore[no-any-return]

    def ack_pending(self, stream: str) -> int:
        async def info() -> int:
            return int((await self.js.consumer_info(stream, "crm")).num_ack_pending)
        return self.run(info())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def broker() -> Iterator[Broker]:
    found = Broker()
    yield found
    found.close()


@pytest.fixture
def names(broker: Broker) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    found = {"stream": f"TEST_IN_{suffix}", "inbox": f"test.in.{suffix}",
             "out_stream": f"TEST_OUT_{suffix}", "outbox": f"test.out.{suffix}"}
    broker.run(broker.js.add_stream(name=found["out_stream"], subjects=[f"{found['outbox']}.>"]))
    yield found
    for stream in (found["stream"], found["out_stream"]):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            broker.run(broker.js.delete_stream(stream))


@pytest.fixture
def project(tmp_path: Path, names: dict[str, str]) -> Iterator[Project]:
    running = Project(tmp_path, FLOW.format(**names), CONNECTION, "shipments-nats")
    yield running
    running.stop()


def started(project: Project, broker: Broker, stream: str) -> None:
    project.start()

    def ready() -> bool:
        try:
            broker.ack_pending(stream)
            return True
        except nats.js.errors.NotFoundError:
            return False
    wait_until(ready, 30, "the durable consumer")


def shipment(order: str, **more: object) -> bytes:
    return orjson.dumps({"order_id": order, "shipment": {"tracking": f"T-{order}"}, **more})


def test_consume_run_publish_round_trip(project: Project, names: dict[str, str],
                                        broker: Broker) -> None:
    started(project, broker, names["stream"])
    broker.publish(f"{names['inbox']}.dc1", [shipment("A-1"), shipment("A-2")], ["m-1", "m-2"])
    runs = project.wait_runs(2)
    out = wait_until(lambda: len(found := broker.messages(names["out_stream"])) >= 2 and found,
                     30, "the published messages")
    assert sorted(orjson.loads(m.data)["order"] for m in out) == ["A-1", "A-2"]
    assert {m.headers["x-order"] for m in out} == {"A-1", "A-2"}
    assert all(m.headers["Nats-Msg-Id"].endswith(":tell_crm") for m in out)
    assert {r.envelope["meta"]["request"]["message_id"] for r in runs} == {"m-1", "m-2"}
    wait_until(lambda: broker.ack_pending(names["stream"]) == 0, 10, "both acknowledged")
    assert project.stop() == 0


def test_consumer_killed_before_intake_the_message_is_redelivered_and_runs_once(
        project: Project, names: dict[str, str], broker: Broker) -> None:
    started(project, broker, names["stream"])
    lock = sqlite3.connect(project.folder / "home" / "state.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # intake cannot record: the message stays unacknowledged
    try:
        broker.publish(f"{names['inbox']}.dc1", [shipment("C-1")])
        wait_until(lambda: broker.ack_pending(names["stream"]) == 1, 10, "the message read")
        project.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert project.runs() == []
    project.start()  # after ack_wait (2 s) JetStream delivers it again
    runs = project.wait_runs(1)
    assert runs[0].envelope["meta"]["request"]["deliveries"] >= 2
    assert runs[0].envelope["meta"]["request"]["message_id"] == f"{names['stream']}:1"
    wait_until(lambda: broker.ack_pending(names["stream"]) == 0, 10, "the message acknowledged")
    assert len(project.runs()) == 1


def test_undecodable_message_is_dead_lettered_with_its_bytes(
        project: Project, names: dict[str, str], broker: Broker) -> None:
    started(project, broker, names["stream"])
    raw = b"\xfe\xffnot json"
    broker.publish(f"{names['inbox']}.dc2", [raw], ["m-bad"])
    entry = wait_until(lambda: project.dead_letters(), 30, "a dead-letter entry")[0]
    assert base64.b64decode(entry.original["body"]["base64"]) == raw
    request = entry.original["request"]
    assert request["subject"] == f"{names['inbox']}.dc2" and request["message_id"] == "m-bad"
    assert entry.reason["kind"] == "undecodable"
    wait_until(lambda: broker.ack_pending(names["stream"]) == 0, 10, "the poison acknowledged")
    assert project.runs("succeeded") == []


def test_many_messages_are_taken_in_per_key_in_stream_order(
        project: Project, names: dict[str, str], broker: Broker) -> None:
    started(project, broker, names["stream"])
    began = time.monotonic()
    broker.publish(f"{names['inbox']}.dc1",
                   [shipment(f"D-{i}", k=f"key-{i % KEYS}", seq=i) for i in range(ORDERED)])
    runs = project.wait_runs(ORDERED, timeout=ordered_timeout(ORDERED))
    check_per_key_order("nats", runs, began)
