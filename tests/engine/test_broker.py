"""kombu's Redis acknowledgement bookkeeping without MULTI/EXEC (engine/broker), on a real
redis-server: a delivery is noted and forgotten as kombu notes it, in the same keys, and half a
note — what a client cut off mid-pipeline can leave — is dropped by kombu's restore sweep, not
delivered nor left behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection

from engine.broker import NAME, Channel, QoS

QUEUE = "broker-test"


@pytest.fixture
def connection(redis_url: str) -> Iterator[Connection]:
    with Connection(redis_url, transport=NAME,
                    transport_options={"visibility_timeout": 1}) as conn:
        yield conn


def _commands(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in client.info("commandstats").items()}


def test_a_delivery_is_noted_then_forgotten_without_multi(connection: Connection,
                                                          redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    channel = connection.default_channel
    assert isinstance(channel, Channel) and isinstance(channel.qos, QoS)
    queue = connection.SimpleQueue(QUEUE)
    queue.put({"run": "r1"})
    before = _commands(client)
    message = queue.get(timeout=5)
    assert message.payload == {"run": "r1"}
    [(tag, _)] = client.zrange("unacked_index", 0, -1, withscores=True)
    assert client.hexists("unacked", tag)  # noted: restorable if this consumer dies
    message.ack()
    assert client.zcard("unacked_index") == 0 and client.hlen("unacked") == 0
    used = {k: n - before.get(k, 0) for k, n in _commands(client).items()
            if n - before.get(k, 0)}
    assert "multi" not in used and "exec" not in used, used
    assert used.get("zadd") == used.get("zrem") == used.get("hdel") == 1, used
    queue.close()


def test_an_unacknowledged_delivery_comes_back_and_half_a_note_is_dropped(
        connection: Connection, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = connection.SimpleQueue(QUEUE)
    queue.put({"run": "r2"})
    message = queue.get(timeout=5)
    assert message.payload == {"run": "r2"}
    # half a note: an index entry whose message never reached the hash
    client.zadd("unacked_index", {"lost-tag": time.time() - 60})
    time.sleep(1.2)  # both notes are older than the visibility timeout
    connection.default_channel.qos.restore_visible(num=100, interval=1)
    assert client.zcard("unacked_index") == 0 and client.hlen("unacked") == 0
    again = queue.get(timeout=5)  # kombu gave the unacknowledged one back
    assert again.payload == {"run": "r2"}
    again.ack()
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.5)
    queue.close()


def test_a_rejected_delivery_is_forgotten_or_given_back(connection: Connection,
                                                        redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = connection.SimpleQueue(QUEUE)
    queue.put({"run": "r3"})
    queue.get(timeout=5).reject(requeue=True)
    back = queue.get(timeout=5)
    assert back.payload == {"run": "r3"}
    back.reject()
    assert client.zcard("unacked_index") == 0 and client.hlen("unacked") == 0
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.5)
    queue.close()
