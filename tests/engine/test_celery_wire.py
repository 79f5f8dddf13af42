"""Task messages written by intake's own script are the messages kombu would publish.

Where the broker is the store's Redis, intake queues a run in the same Lua script that records
it (`WireMessages`), instead of publishing through kombu afterwards. These tests hold that
message to what kombu itself writes for the same task, field by field, so a kombu upgrade that
changes its format fails here; the Celery integration tests run real workers on it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from engine.app import App
from engine.celery_events import Sent, SentEvents
from engine.celery_executor import (
    CeleryExecutor,
    CelerySettings,
    WireMessages,
    lane_queue,
    make_celery,
)
from engine.loader import FlowSet
from engine.problems import Problems
from engine.records import RunState
from engine.settings import Settings
from engine.store.redis import RedisStore

# differ per message by design
IDS = {("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
       ("properties", "delivery_tag")}


def _kombu_message(settings: Settings, queue: str, run_id: str) -> dict[str, Any]:
    """What the executor's kombu path (`CeleryExecutor.submit`) publishes for *run_id*, read
    back raw from the queue's list."""
    app = App(settings, flows=FlowSet({}, Problems()))
    assert isinstance(app.executor, CeleryExecutor)
    app.executor.submit(run_id, lane=queue.removeprefix("flowrun."))
    raw = app.store.redis.rpop(queue)  # type: ignore[attr-defined]
    assert raw is not None, "kombu published nothing to the queue's list"
    return dict(json.loads(raw))


def _flat(message: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(part, name): value for part in ("headers", "properties")
            for name, value in message[part].items()}


def test_the_message_written_with_the_run_is_kombus_own(redis_url: str, tmp_path: Any) -> None:
    settings = Settings(redis_url=redis_url, home=tmp_path)
    tuning = CelerySettings()
    wire = WireMessages(make_celery(settings, tuning), tuning)
    queue, text = wire.message("run-0001", "bulk")
    assert queue == lane_queue(tuning, "bulk") == "flowrun.bulk"
    ours = json.loads(text)
    theirs = _kombu_message(settings, queue, "run-0001")

    assert set(ours) == set(theirs)
    for field in ("content-type", "content-encoding"):
        assert ours[field] == theirs[field]
    flat_ours, flat_theirs = _flat(ours), _flat(theirs)
    assert set(flat_ours) == set(flat_theirs)
    for name in flat_ours.keys() - IDS:
        assert flat_ours[name] == flat_theirs[name], name
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == \
        ours["properties"]["correlation_id"]
    assert json.loads(base64.b64decode(ours["body"])) == \
        json.loads(base64.b64decode(theirs["body"]))


def test_each_run_gets_its_own_task_id_and_tag() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    wire = WireMessages(make_celery(settings), CelerySettings())
    first = json.loads(wire.message("a", None)[1])
    second = json.loads(wire.message("b", None)[1])
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    assert json.loads(base64.b64decode(second["body"]))[0] == ["b"]
    assert second["headers"]["argsrepr"] == "['b']"


def test_only_a_broker_that_is_the_stores_redis_takes_messages_from_the_store() -> None:
    def usable(**values: Any) -> bool:
        settings = Settings(**values)
        return WireMessages.usable(make_celery(settings), settings)

    assert usable(redis_url="redis://127.0.0.1:6379/0")
    assert usable(redis_url="redis://127.0.0.1:6379/0", broker_url="redis://127.0.0.1:6379/0")
    assert not usable(redis_url="redis://127.0.0.1:6379/0",
                      broker_url="redis://127.0.0.1:6379/1")
    assert not usable(redis_url="redis://127.0.0.1:6379/0", broker_url="amqp://127.0.0.1//")


def test_a_duplicate_is_neither_recorded_nor_queued(redis_url: str) -> None:
    store = RedisStore(redis_url)
    settings = Settings(redis_url=redis_url)
    wire = WireMessages(make_celery(settings), CelerySettings())
    runs = [RunState(run_id=f"r{i}", flow_id="orders", flow_version="v1", status="queued",
                     envelope={"body": {}, "headers": {}, "meta": {}}, original={},
                     created_at=float(i),
                     updated_at=float(i)) for i in range(3)]
    key = ("orders", "A-1", 60.0)
    holders = store.create_runs([(runs[0], key), (runs[1], key), (runs[2], None)],
                                [wire.message(run.run_id, None) for run in runs])
    assert holders == [None, "r0", None]
    queued = [json.loads(raw)["headers"]["argsrepr"]
              for raw in store.redis.lrange("flowrun", 0, -1)]
    assert sorted(queued) == ["['r0']", "['r2']"]
    assert store.get_run("r1") is None
    store.close()


def _published(redis_url: str, send: Any) -> tuple[bytes, dict[str, Any]]:
    """The channel and message of what *send* publishes, caught by a pattern subscriber
    (as Flower's and `celery events`' receivers subscribe)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    watch = client.pubsub()
    watch.psubscribe("*")
    assert watch.get_message(timeout=5)["type"] == "psubscribe"
    send()
    got = watch.get_message(timeout=5)
    watch.close()
    client.close()
    assert got is not None and got["type"] == "pmessage", "nothing was published"
    return got["channel"], json.loads(got["data"])


def test_task_sent_events_published_directly_are_kombus_own(redis_url: str) -> None:
    celery = make_celery(Settings(redis_url=redis_url))
    store = RedisStore(redis_url)
    sent = [Sent("t1", "flowrun", "orders key=#1"), Sent("t2", "flowrun.bulk", "orders run=r2")]
    direct = SentEvents(celery, store.redis)
    assert direct.redis is not None
    channel, ours = _published(redis_url, lambda: direct.sent(sent))
    through_kombu = SentEvents(celery)
    assert through_kombu.redis is None
    kombu_channel, theirs = _published(redis_url, lambda: through_kombu.sent(sent))

    db = redis_url.rsplit("/", 1)[1]
    assert channel == kombu_channel == f"/{db}.celeryev/task.multi".encode()
    assert set(ours) == set(theirs)
    for field in ("content-type", "content-encoding", "headers"):
        assert ours[field] == theirs[field], field
    assert {**ours["properties"], "delivery_tag": None} == \
        {**theirs["properties"], "delivery_tag": None}
    events = [json.loads(base64.b64decode(m["body"])) for m in (ours, theirs)]
    varying = {"timestamp", "clock"}
    assert [{k: v for k, v in e.items() if k not in varying} for e in events[0]] == \
        [{k: v for k, v in e.items() if k not in varying} for e in events[1]]
    assert [e["uuid"] for e in events[0]] == ["t1", "t2"]
    assert [e["queue"] for e in events[0]] == ["flowrun", "flowrun.bulk"]
    assert events[0][0]["clock"] < events[0][1]["clock"] < events[1][0]["clock"]


def test_task_sent_events_go_through_kombu_when_the_fanout_is_configured() -> None:
    celery = make_celery(Settings(redis_url="redis://127.0.0.1:1/0"))
    celery.conf.broker_transport_options = {"fanout_prefix": "custom"}
    assert SentEvents(celery, object()).redis is None
