"""kombu's Redis transport with its acknowledgement bookkeeping in plain pipelines.

kombu emulates acknowledgements on Redis: a task taken off its queue (BRPOP) is noted as
unacknowledged — its delivery tag in the ``unacked_index`` sorted set, the message in the
``unacked`` hash — and forgotten when it is acknowledged; a note older than the visibility
timeout is given back to the queue. kombu wraps each of the two notes in MULTI/EXEC: four of
a run's Redis commands, and two more replies for the worker to read, that buy nothing here.

Sent in one pipeline, the two commands of a note still arrive together and run back to back;
what MULTI adds is that a client cut off in the middle of its write leaves both or neither.
The order makes half of either harmless: noting puts the index entry first (an index entry
whose message never came is dropped by the restore sweep, which finds nothing to give back),
and forgetting removes the message first (the index entry left behind meets the same end).
A task taken off the queue and never noted — kombu's own gap, MULTI or not — is the reaper's
stranded-run sweep's (engine/reaper). Restoring a note keeps kombu's WATCH/MULTI transaction.

`celery_config` names this transport for a ``redis://`` broker (``broker_transport``), unless
a Celery configuration module names one itself.
"""

from __future__ import annotations

from time import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

NAME = "engine.broker:Transport"


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, noting and forgetting a delivery without MULTI/EXEC."""

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()})
            pipe.hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self._forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            super().reject(delivery_tag, requeue=True)  # kombu's restore transaction
            return
        self._forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.hdel(self.unacked_key, delivery_tag)
            pipe.zrem(self.unacked_index_key, delivery_tag)
            pipe.execute()


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str | None) -> str | None:
    """The transport `celery_config` names for *broker_url*: this one for ``redis://``; None
    (kombu's choice) for anything else — TLS, Sentinel, other brokers."""
    return NAME if broker_url and broker_url.startswith("redis://") else None
