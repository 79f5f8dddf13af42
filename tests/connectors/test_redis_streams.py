"""The ``redis`` step and ``consume: {redis: ...}`` against a redis-server the tests start.

Each test uses streams of its own (a unique suffix) and deletes them at the end.
"""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import redis

from engine.reload import reload_flows
from tests.conftest import wait_until
from tests.connectors.bus_support import (
    KEYS,
    ORDERED,
    Project,
    check_per_key_order,
    ordered_timeout,
)
from tests.connectors.connections_support import project as connections_project
from tests.redis_fixture import RedisServer

pytestmark = pytest.mark.integration

CONNECTION = """
connection: events
redis: {{host: 127.0.0.1, port: {port}, db: {db}}}
"""
FLOW = """
flow: shipments-stream
trigger:
  consume:
    connection: events
    redis: {{stream: {inbox}, group: crm, consumer: consume-1}}
    in_flight: 32
steps:
  - id: to_crm
    transform:
      jsonata: '{{"order": order_id, "tracking": shipment.tracking, "seq": seq, "k": k}}'
  - id: tell_crm
    redis: {{connection: events, stream: {outbox}, headers: {{order: "{{{{ order }}}}"}}}}
"""


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def names(client: redis.Redis) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    found = {"inbox": f"test.in.{suffix}", "outbox": f"test.out.{suffix}"}
    yield found
    client.delete(found["inbox"], found["outbox"])


@pytest.fixture
def project(tmp_path: Path, names: dict[str, str], redis_url: str) -> Iterator[Project]:
    url = urlsplit(redis_url)
    connection = CONNECTION.format(port=url.port, db=url.path.strip("/") or 0)
    running = Project(tmp_path, FLOW.format(**names), connection, "shipments-stream")
    yield running
    running.stop()


def started(project: Project, client: redis.Redis, stream: str) -> None:
    project.start()
    wait_until(lambda: client.exists(stream) and client.xinfo_consumers(stream, "crm"), 30,
               "the consumer")


def shipment(order: str, **more: object) -> dict[str, bytes]:
    return {"body": orjson.dumps({"order_id": order, "shipment": {"tracking": f"T-{order}"},
                                  **more})}


def pending(client: redis.Redis, stream: str) -> int:
    return int(client.xpending(stream, "crm")["pending"])


def test_consume_run_publish_round_trip(project: Project, names: dict[str, str],
                                        client: redis.Redis) -> None:
    started(project, client, names["inbox"])
    ids = [client.xadd(names["inbox"], shipment(o)).decode() for o in ("A-1", "A-2")]
    runs = project.wait_runs(2)
    out = wait_until(lambda: (found := client.xrange(names["outbox"])) and len(found) >= 2
                     and found, 30, "the published entries")
    assert sorted(orjson.loads(fields[b"body"])["order"] for _, fields in out) == ["A-1", "A-2"]
    assert {fields[b"order"] for _, fields in out} == {b"A-1", b"A-2"}
    assert {r.envelope["meta"]["request"]["message_id"] for r in runs} == set(ids)
    wait_until(lambda: pending(client, names["inbox"]) == 0, 10, "both acknowledged")
    assert project.stop() == 0


def test_consumer_killed_before_intake_reads_its_pending_entry_again_and_runs_once(
        project: Project, names: dict[str, str], client: redis.Redis) -> None:
    started(project, client, names["inbox"])
    lock = sqlite3.connect(project.folder / "home" / "state.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # intake cannot record: the entry stays pending
    try:
        client.xadd(names["inbox"], shipment("C-1"))
        wait_until(lambda: pending(client, names["inbox"]) == 1, 10, "the entry read")
        project.kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert project.runs() == []
    project.start()  # the same consumer name: it reads its pending entry first
    runs = project.wait_runs(1)
    assert runs[0].envelope["meta"]["request"]["deliveries"] == 2
    wait_until(lambda: pending(client, names["inbox"]) == 0, 10, "the entry acknowledged")
    assert len(project.runs()) == 1


def test_undecodable_and_fieldless_entries_are_dead_lettered(
        project: Project, names: dict[str, str], client: redis.Redis) -> None:
    started(project, client, names["inbox"])
    raw = b"\xffnot json"
    bad = client.xadd(names["inbox"], {"body": raw}).decode()
    client.xadd(names["inbox"], {"other": b"x"})
    entries = wait_until(lambda: len(found := project.dead_letters()) >= 2 and found, 30,
                         "two dead-letter entries")
    by_id = {e.original["request"]["message_id"]: e for e in entries}
    assert base64.b64decode(by_id[bad].original["body"]["base64"]) == raw
    assert by_id[bad].original["request"]["stream"] == names["inbox"]
    assert {e.reason["kind"] for e in entries} == {"undecodable"}
    assert any("no field 'body'" in e.reason["message"] for e in entries)
    wait_until(lambda: pending(client, names["inbox"]) == 0, 10, "both acknowledged")
    assert project.runs("succeeded") == []


def test_many_entries_are_taken_in_per_key_in_stream_order(
        project: Project, names: dict[str, str], client: redis.Redis) -> None:
    started(project, client, names["inbox"])
    began = time.monotonic()
    pipe = client.pipeline()
    for i in range(ORDERED):
        pipe.xadd(names["inbox"], shipment(f"D-{i}", k=f"key-{i % KEYS}", seq=i))
    pipe.execute()
    runs = project.wait_runs(ORDERED, timeout=ordered_timeout(ORDERED))
    check_per_key_order("redis_streams", runs, began)


PUBLISH = """
flow: t
description: {note}
steps:
  - id: tell
    redis: {{connection: events, stream: out}}
"""


def test_a_process_keeps_one_client_per_connection_and_reads_a_changed_file_at_restart(
        tmp_path: Path) -> None:
    """Connection files are read when a process starts; hot reload reloads flow files only
    (docs/analyst-guide.md). So a running process neither follows a changed connection nor
    leaks a client over it: one client per connection, reused, closed with the process."""
    first, second = RedisServer(tmp_path / "first"), RedisServer(tmp_path / "second")
    brokers = [redis.Redis.from_url(s.url) for s in (first, second)]

    def clients(broker: redis.Redis) -> int:  # the broker's view, its own caller left out
        return sum(int(c["id"]) != broker.client_id() for c in broker.client_list())

    def connection(server: RedisServer) -> str:
        return f"connection: events\nredis: {{host: 127.0.0.1, port: {server.port}}}\n"

    try:
        with connections_project(tmp_path / "project") as made:
            made.connection("events", connection(first))
            made.flow(PUBLISH.format(note="first"))
            app = made.app()
            for n in range(3):
                made.run(app, {"n": n})
            assert [b.xlen("out") for b in brokers] == [3, 0]
            assert clients(brokers[0]) == 1

            made.connection("events", connection(second))  # moved, and a flow changed too
            made.flow(PUBLISH.format(note="second"))
            assert reload_flows(app.loader, app.versions, made.flows).changed
            made.run(app, {"n": 3})
            assert [b.xlen("out") for b in brokers] == [4, 0]  # still where it started
            assert clients(brokers[0]) == 1

            restarted = made.app()
            made.run(restarted, {"n": 4})
            assert [b.xlen("out") for b in brokers] == [4, 1]
            app.executor.stop(timeout=2)
            app.loader.close()  # what the old process held goes with it
            wait_until(lambda: clients(brokers[0]) == 0, 10, "the old client to close")
            assert clients(brokers[1]) == 1
    finally:
        for broker in brokers:
            broker.close()
        first.stop()
        second.stop()
