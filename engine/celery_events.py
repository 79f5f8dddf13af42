"""What Celery's own tools see of flowrunner's tasks: their label, their events, their failure.

Flower, ``celery events`` and the worker's log show a ``flowrun.run`` task by its argument repr:
`task_label` makes it the flow and business key. `SentEvents` sends the ``task-sent`` events of
the runs a process queues (the worker sends the rest, `BatchedTaskEvents` gathering them into a
few broker messages). A delivery that dead-letters its run ends the task with `DeadLettered`:
Celery's FAILURE, with the reason.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import bootsteps
from celery.events import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu.utils.json import dumps

from engine.logs import one_line
from engine.retry import reason_kind

if TYPE_CHECKING:
    from celery import Celery

    from engine.records import RunState

log = logging.getLogger("flowrunner.celery")

TASK = "flowrun.run"
#: longest business key in a task's argument repr (what Flower and the worker log show)
LABEL_KEY_CHARS = 64


def task_label(run_id: str, state: RunState | None) -> str:
    """The task's ``argsrepr``: flow and business key (``shopify-order-intake key=#1001``), the
    flow and run id when the flow has no key, Celery's own ``['<run id>']`` when the run is not
    in hand. Its one argument stays the run id."""
    if state is None:
        return f"['{run_id}']"
    if state.key is None:
        return f"{state.flow_id} run={run_id}"
    key = one_line(state.key)
    if len(key) > LABEL_KEY_CHARS:
        key = key[:LABEL_KEY_CHARS - 1] + "…"
    return f"{state.flow_id} key={key}"


class DeadLettered(Exception):
    """The task's outcome when its delivery ended the run in the dead-letter queue: Celery's
    FAILURE state, the reason in the exception (``task-failed`` events and Flower show it; the
    result backend keeps it: ``task_store_errors_even_if_ignored``). Declared as expected
    (`throws`), so a worker logs it in one line, and neither retried by Celery nor delivered
    again — the run is recorded and its delivery over before it is raised."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, details or {})

    def __str__(self) -> str:
        return str(self.args[0])

    @classmethod
    def of(cls, state: RunState) -> DeadLettered:
        error = state.error or {}
        kind = reason_kind(error.get("kind"), error.get("status"))
        step = error.get("step")
        where = f" at step {step}" if step else ""
        return cls(f"{state.flow_id} run {state.run_id} dead-lettered{where} ({kind})",
                   {"run_id": state.run_id, "flow": state.flow_id, "step": step,
                    "key": state.key, "reason_kind": kind, "status": error.get("status"),
                    "correlation_id": state.correlation_id})


@dataclass(frozen=True)
class Sent:
    """A ``flowrun.run`` task message that was queued: what its ``task-sent`` event names."""

    task_id: str
    queue: str
    label: str


class SentEvents:
    """``task-sent`` events of the runs this process queues, when ``task_send_sent_event``
    is on (``FLOWRUN_TASK_EVENTS``): what `send_task` would send, but one broker message for a
    group of runs (a ``task.multi`` list, as the worker's dispatcher sends its buffered
    events), published after they are queued. The worker sends the rest (received, started,
    succeeded, failed) with ``worker_send_task_events``.

    Given *redis*, a client of the broker's own Redis (`WireMessages.usable`), the message is
    built here and sent with one PUBLISH on the channel kombu's fanout publishes to: the same
    message, without a kombu producer's per-call work (binding, declaring, copying), which
    cost a tenth of intake. Otherwise kombu's event dispatcher sends it."""

    def __init__(self, celery: Celery, redis: Any = None):
        self.celery = celery
        self.enabled = bool(celery.conf.task_send_sent_event)
        self.redis: Any = redis if self._plain(celery) else None
        self._dispatcher: Any = None
        self._topic: str | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _plain(celery: Celery) -> bool:
        """kombu's event messages as `_message` writes them: JSON events, fanout channels
        named by kombu's defaults."""
        options = celery.conf.broker_transport_options or {}
        return (celery.conf.event_serializer == "json"
                and not {"fanout_prefix", "fanout_patterns", "global_keyprefix"} & set(options))

    def sent(self, messages: list[Sent]) -> None:
        if not self.enabled or not messages:
            return
        try:
            with self._lock:
                if self.redis is not None:
                    self._publish(messages)
                    return
                dispatcher = self._dispatcher
                if dispatcher is None:
                    dispatcher = self._dispatcher = self.celery.events.Dispatcher(
                        self.celery.connection_for_write(), buffer_group={"task"},
                        buffer_limit=1_000_000)
                for message in messages:
                    dispatcher.send("task-sent", **self._fields(message))
                dispatcher.flush()
        except Exception:  # the runs are queued; a monitor missing an event is no reason to fail
            log.warning("task-sent events not sent", exc_info=True)

    @staticmethod
    def _fields(message: Sent) -> dict[str, Any]:
        return {"uuid": message.task_id, "root_id": message.task_id, "parent_id": None,
                "name": TASK, "args": message.label, "kwargs": "{}", "retries": 0,
                "eta": None, "expires": None, "queue": message.queue, "exchange": "",
                "routing_key": message.queue}

    def _publish(self, messages: list[Sent]) -> None:
        if self._topic is None:
            with self.celery.connection_for_write() as connection:  # kombu names the channel
                self._topic = connection.default_channel._get_publish_topic(
                    self.celery.conf.event_exchange, MULTI)
        self.redis.publish(self._topic, self._message(messages))

    def _message(self, messages: list[Sent]) -> str:
        """The ``task.multi`` message kombu's Redis transport would publish for *messages*."""
        hostname, pid, offset = anon_nodename(), os.getpid(), utcoffset()
        events = [Event("task-sent", hostname=hostname, utcoffset=offset, pid=pid,
                        clock=self.celery.clock.forward(), **self._fields(message))
                  for message in messages]
        body = base64.b64encode(dumps(events).encode()).decode()
        return dumps({"body": body, "content-encoding": "utf-8",
                      "content-type": "application/json", "headers": {"hostname": hostname},
                      "properties": {"delivery_mode": 1,
                                     "delivery_info": {"exchange": self.celery.conf.event_exchange,
                                                       "routing_key": MULTI},
                                     "priority": 0, "body_encoding": "base64",
                                     "delivery_tag": str(uuid.uuid4())}})


MULTI = "task.multi"  # the routing key of a list of task events


class BatchedTaskEvents(bootsteps.StartStopStep):
    """A worker bootstep: the worker's task events (received, started, succeeded, failed) go
    out in one broker message every `INTERVAL` seconds instead of one per event loop turn.

    Celery's worker already buffers them (the dispatcher's ``task`` group, sent as one
    ``task.multi`` message that Flower and `celery events` read like single events), but it
    flushes the buffer as soon as the loop comes round: three PUBLISHes per task, each a
    Redis command and a kombu publish in the worker. Flushed by a timer instead, a monitor
    sees each event at most `INTERVAL` later; the buffer is flushed when the step stops too,
    and when it holds `LIMIT` events."""

    requires = ("celery.worker.consumer.events:Events",)
    INTERVAL = 0.2
    LIMIT = 2000

    def __init__(self, c: Any, **kwargs: Any):
        super().__init__(c, **kwargs)
        self._timer: Any = None

    def start(self, c: Any) -> None:
        dispatcher = c.event_dispatcher
        if c.hub is None or dispatcher is None or not dispatcher.buffer_group:
            return  # no event loop (eventlet, gevent): Celery sends each event itself
        dispatcher.on_send_buffered = None
        dispatcher.buffer_limit = self.LIMIT
        self._cancel()
        self._timer = c.hub.call_repeatedly(self.INTERVAL, self._flush, c)

    def stop(self, c: Any) -> None:
        self._cancel()
        self._flush(c)

    shutdown = stop

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @staticmethod
    def _flush(c: Any) -> None:
        dispatcher = c.event_dispatcher
        if dispatcher is None:
            return
        try:
            dispatcher.flush()
        except Exception:  # a monitor missing events is no reason to stop the worker
            log.warning("task events not sent", exc_info=True)
