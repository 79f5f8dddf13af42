"""The distributed executor: runs go to Celery workers through Redis; retries wait in Redis.

Same interface as `EmbeddedExecutor` (`start`, `stop`, `submit`, `schedule`, `on_finished`,
`process`), used by `App` when ``FLOWRUN_REDIS_URL`` is set. `submit` sends the task
``flowrun.run(run_id)``; a worker (``worker.py``) calls `process`, which advances the run from its
checkpoint under a lease lock, so two deliveries of one run never execute it side by side.
Taking the lease, counting the delivery (engine/reaper: stuck and poison runs) and reading the
record is one round trip to Redis; saving is one; releasing is one — the whole of a run's cost
beyond Celery's own besides its steps. Limits (``concurrency:``, ``rate_limit:``) and the lines of
ordered subscriber runs are kept in the same Redis, shared by every worker (engine/limits,
engine/ordering).

Delayed retries never use Celery countdown/ETA: on the Redis transport an ETA message sits
unacknowledged in the worker and is delivered again once it is older than the visibility timeout,
so a retry due later than that would run twice. A retry is instead a member of the sorted set
``flowrun:due`` scored by its due time, and a `DuePump` (in every worker and in ``flowrun serve``)
moves due ids to the Celery queue. One Lua script claims the due ids, so two pumps never move one
id; a claim is parked in ``flowrun:due:moving`` until the task is sent, and a claim whose pump
died before sending goes back to ``due`` after `claim_lease` seconds — lost never, duplicated at
worst, and a duplicate finds the run done or not yet due and does nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery

from engine import redis_url
from engine.broker import transport_for
from engine.celery_config import CelerySettings, layered
from engine.celery_events import TASK, Sent, SentEvents, task_label
from engine.limits import RedisLimits
from engine.ordering import RedisLines
from engine.periodic import Periodic
from engine.processing import Core, Save
from engine.reaper import Reaper, poison
from engine.records import DeadLetter, RunState
from engine.settings import Settings
from engine.store.base import Store
from engine.store.redis import RedisStore

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow

log = logging.getLogger("flowrunner.celery")

def celery_config(settings: Settings, tuning: CelerySettings | None = None, *,
                  require_broker: bool = True) -> dict[str, Any]:
    """The Celery configuration of producers and workers alike (engine/celery_config: defaults,
    a Celery configuration module, FLOWRUN_* overrides); nothing is lost by a crash."""
    config = layered(settings, tuning or CelerySettings())
    if require_broker and not config["broker_url"]:
        raise ValueError("FLOWRUN_REDIS_URL (or FLOWRUN_BROKER_URL) is not set; the Celery "
                         "executor needs a broker")
    if not config["broker_url"]:
        del config["broker_url"], config["result_backend"]
        return config
    # a sentinel:// URL becomes Celery's form and the primary's name (engine/redis_url)
    config["result_backend"], config["result_backend_transport_options"] = \
        redis_url.celery_broker(config["result_backend"])
    config["broker_url"], sentinel = redis_url.celery_broker(config["broker_url"])
    config["broker_transport_options"] = {**config["broker_transport_options"], **sentinel}
    if not config.get("broker_transport"):  # kombu's, acknowledging without MULTI (engine/broker)
        config["broker_transport"] = transport_for(config["broker_url"])
    return config


def lane_queue(tuning: CelerySettings, lane: str | None) -> str:
    """The Celery queue of a flow's lane (its ``queue:``): ``flowrun`` for the default lane,
    ``flowrun.<lane>`` for the others, so a worker serves lanes with ``-Q flowrun,flowrun.bulk``."""
    return tuning.queue if lane in (None, "default") else f"{tuning.queue}.{lane}"


def make_celery(settings: Settings, tuning: CelerySettings | None = None, *,
                require_broker: bool = True) -> Celery:
    celery = Celery("flowrun", set_as_current=False)
    celery.conf.update(celery_config(settings, tuning, require_broker=require_broker))
    return celery


class DuePump(Periodic):
    """Moves runs whose retry is due from the store's due set to the Celery queue, each once."""

    duty = "due-retry pump"

    def __init__(self, store: RedisStore, send: Callable[[str], None], *,
                 interval: float = 0.5, claim_lease: float = 60.0):
        super().__init__(interval, first=0.0)
        self.store = store
        self.send = send
        self.claim_lease = claim_lease

    def schedule(self, run_id: str, due_at: float) -> None:
        self.store.schedule_due(run_id, due_at)

    def pump_once(self, batch: int = 100) -> int:
        """Send every due run now; the number sent."""
        sent = 0
        while True:
            now = time.time()
            ids = self.store.claim_due(now, batch, now + self.claim_lease)
            for run_id in ids:
                self.send(run_id)
                # only now is the id safely in the queue; until here a dead pump's claim returns
                self.store.sent_due(run_id)
                sent += 1
            if len(ids) < batch:
                return sent

    def tick(self) -> float:
        self.pump_once()
        return self.until_next()

    def until_next(self) -> float:
        """Seconds to sleep: until the earliest due run, at most the interval. A retry or a
        reserved rate-limit token due in 50 ms is sent then, not up to an interval late (late
        sends bunch up the calls a rate limit had spread out)."""
        first = self.store.first_due()
        if first is None:
            return self.interval
        return min(self.interval, max(0.0, first - time.time()))


class WireMessages:
    """`flowrun.run` task messages as the Redis transport stores them, for intake to push in
    the same script that records the runs: one round trip and one atomic write for "recorded
    and queued", where kombu's publish would be a second round trip after the record.

    Only when the broker is the store's own Redis and kombu's keys are plain (no
    ``global_keyprefix``): then a queue is a list named after it, and a message is the JSON
    that kombu's virtual transport writes with LPUSH — the task message of `as_task_v2`, its
    body base64-encoded, with a delivery tag and its routing. The message of each lane is
    built once with placeholders and filled in per run; a test compares it with what kombu
    publishes, so a kombu upgrade that changes the format fails there rather than in a worker.
    """

    # placeholders: nothing else in a task message (ids, names, base64) holds a '%'; the
    # label (which holds a business key) is filled in last, so nothing in it is replaced
    _RUN, _TASK, _TAG, _BODY, _LABEL = "%run%", "%task%", "%tag%", "%body%", "%label%"

    def __init__(self, celery: Celery, tuning: CelerySettings):
        self.celery, self.tuning = celery, tuning
        self._templates: dict[str, tuple[str, str]] = {}

    @staticmethod
    def usable(celery: Celery, settings: Settings) -> bool:
        """The broker (as configured in the end: environment or a Celery configuration module)
        is the store's own Redis, with kombu's keys plain."""
        options = celery.conf.broker_transport_options or {}
        store = settings.redis_url
        return bool(store and celery.conf.broker_url == store
                    and store.split(":", 1)[0] in ("redis", "rediss", "unix")
                    and not options.get("global_keyprefix"))

    def _template(self, queue: str) -> tuple[str, str]:
        template = self._templates.get(queue)
        if template is None:
            exchange = self.celery.amqp.queues[queue].exchange
            task = self.celery.amqp.as_task_v2(
                self._TASK, TASK, args=[self._RUN], argsrepr=self._LABEL,
                kwargsrepr="{}", ignore_result=True)
            body = json.dumps(task.body)
            message = {
                "body": self._BODY, "content-encoding": "utf-8",
                "content-type": "application/json", "headers": task.headers,
                "properties": {**task.properties,
                               "delivery_mode": exchange.delivery_mode or 2,
                               "delivery_info": {"exchange": "", "routing_key": queue},
                               "priority": 0, "body_encoding": "base64",
                               "delivery_tag": self._TAG}}
            template = self._templates[queue] = (body, json.dumps(message))
        return template

    def message(self, run_id: str, lane: str | None, label: str | None = None,
                task_id: str | None = None) -> tuple[str, str]:
        """(the queue's list key, the message) that queues *run_id* on *lane*, with *label*
        as its argument repr (`task_label`) and *task_id* (default: a new one)."""
        queue = lane_queue(self.tuning, lane)
        body, message = self._template(queue)
        encoded = base64.b64encode(body.replace(self._RUN, run_id).encode()).decode()
        label = json.dumps(label or task_label(run_id, None))[1:-1]  # inside a JSON string
        return queue, (message.replace(self._BODY, encoded).replace(self._RUN, run_id)
                       .replace(self._TASK, task_id or uuid.uuid4().hex)
                       .replace(self._TAG, str(uuid.uuid4())).replace(self._LABEL, label))


class Leases:
    """The run leases this process holds, renewed by one thread every third of the lease (a
    dead worker's leases simply expire). Each may carry *also*, renewed for as long: its flow's
    concurrency slot. One thread for all runs, not one per run: starting and joining a thread
    per run cost more than the rest of a short run's bookkeeping."""

    def __init__(self, store: Store, ttl: float):
        self.store, self.ttl = store, ttl
        self._held: dict[str, tuple[str, Callable[[], object] | None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, name: str, owner: str, also: Callable[[], object] | None = None) -> None:
        with self._lock:
            self._held[name] = (owner, also)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._renew, name="flowrun-run-leases",
                                                daemon=True)
                self._thread.start()

    def drop(self, name: str) -> None:
        """Stop renewing *name*; once this returns no renewal of it is under way either."""
        with self._lock:
            self._held.pop(name, None)

    def _renew(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self._lock:
                names = list(self._held)
            for name in names:
                with self._lock:  # held across the renewal, so `drop` waits for it
                    entry = self._held.get(name)
                    if entry is not None:
                        self._renew_one(name, *entry)

    def _renew_one(self, name: str, owner: str, also: Callable[[], object] | None) -> None:
        try:
            if not self.store.acquire_lock(name, owner, self.ttl):
                log.error("lost the lease on %s; another worker may take the run over", name)
            if also is not None:
                also()
        except Exception:
            log.warning("lease on %s not renewed", name, exc_info=True)


class CeleryExecutor:
    def __init__(self, core: Core, store: RedisStore, settings: Settings,
                 tuning: CelerySettings | None = None, *, watcher: Periodic | None = None):
        self.core, self.store = core, store
        self.tuning = tuning or CelerySettings()
        self.settings = settings
        self.watcher = watcher
        self.celery = make_celery(settings, self.tuning)
        self.redis = store.redis  # one client per process: the store's
        self.pump = DuePump(store, self.submit, interval=self.tuning.pump_interval,
                            claim_lease=self.tuning.claim_lease)
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._declared: set[str] = set()  # queues this process has declared to the broker
        self.wire = (WireMessages(self.celery, self.tuning)
                     if WireMessages.usable(self.celery, settings) else None)
        self._retry_policy = self.celery.conf.task_publish_retry_policy
        #: concurrency slots and rate-limit buckets shared by every worker
        self.limits = RedisLimits(store)
        self.rate_limiter = self.limits
        self.lines = RedisLines(store)  # ordered subscriber runs, joined when published
        core.events.ordering = self.lines
        self.leases = Leases(store, self.tuning.run_lease)
        # task-sent events straight to the store's Redis when it is the broker (no kombu)
        self.events = SentEvents(self.celery, self.redis if self.wire else None)
        self._unsent: dict[str, Sent] = {}
        self.reaper = Reaper(store, self.submit, identity=self._identity,
                             interval=self.tuning.reap_interval, grace=self.tuning.run_lease,
                             stranded_after=self.tuning.stranded_after
                             or 2 * self.tuning.visibility_timeout)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, resume: bool = True) -> None:
        """Start the due-retry pump and the flow watcher here (``flowrun serve``); with
        *resume*, hand every active run to the workers again — a duplicate of a run being worked
        on finds it leased."""
        self.pump.start()
        if self.watcher is not None:
            self.watcher.start()
        if resume:
            for state in self.store.active_runs():
                if state.status == "retrying" and state.due_at:
                    self.schedule(state.run_id, state.due_at)
                else:
                    self.submit(state)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the pump; queued runs stay in Redis for the workers."""
        if self.watcher is not None:
            self.watcher.stop()
        self.pump.stop(timeout)

    def on_finished(self, listener: Callable[[RunState], None]) -> None:
        self.core.on_finished(listener)

    # -- work ----------------------------------------------------------------------------------
    def submit(self, run: RunState | str, lane: str | None = None) -> None:
        """Send the run to its lane's queue; without *lane*, the lane of the run's flow."""
        state = run if isinstance(run, RunState) else None
        if lane is None:
            state = state or self.store.get_run(str(run))
            lane = self._lane(state)
        run_id = run.run_id if isinstance(run, RunState) else run
        with self.celery.producer_or_acquire() as producer:
            sent = self._publish(producer, run_id, lane, task_label(run_id, state))
        self.events.sent([sent])

    def submit_many(self, runs: list[RunState]) -> None:
        """Send a group of runs in one round trip to the broker (kombu's publish batch)."""
        if not runs:  # most runs have no children: no producer to take from kombu's pool
            return
        with self.celery.producer_or_acquire() as producer:
            batch = getattr(producer, "batch", None)
            with batch() if batch is not None and len(runs) > 1 else contextlib.nullcontext():
                sent = [self._publish(producer, run.run_id, self._lane(run),
                                      task_label(run.run_id, run)) for run in runs]
        self.events.sent(sent)

    def queue_messages(self, runs: list[RunState]) -> list[tuple[str, str]] | None:
        """The broker messages that queue *runs*, for the store to write with their records
        (`Store.create_runs`); None when the broker is not the store's Redis. `queued` tells
        which of them were written."""
        if self.wire is None:
            return None
        messages, self._unsent = [], {}
        for run in runs:
            task_id, label = uuid.uuid4().hex, task_label(run.run_id, run)
            queue, message = self.wire.message(run.run_id, self._lane(run), label, task_id)
            self._unsent[run.run_id] = Sent(task_id, queue, label)
            messages.append((queue, message))
        return messages

    def queued(self, runs: list[RunState]) -> None:
        """*runs*, of the last `queue_messages`, were queued by the store's write: their
        ``task-sent`` events go out now (one message for the group)."""
        unsent, self._unsent = self._unsent, {}
        self.events.sent([unsent[run.run_id] for run in runs if run.run_id in unsent])

    def _publish(self, producer: Any, run_id: str, lane: str | None, label: str) -> Sent:
        """An ordinary ``flowrun.run`` task message (what `send_task` sends, seen alike by
        workers, Flower and ``celery inspect``), built and published through kombu without
        `send_task`'s per-call option handling, which cost more than the rest of intake: the
        message is Celery's own (`as_task_v2`), with its argument repr given rather than
        computed; routed like `send_task` routes a direct queue (the anonymous exchange, the
        queue's name as routing key); the queue declared once per process. No result is
        kept (the run record is the result), so nothing subscribes to a result channel."""
        name = lane_queue(self.tuning, lane)
        queue = self.celery.amqp.queues[name]
        declare = [] if name in self._declared else [queue]
        task_id = uuid.uuid4().hex
        message = self.celery.amqp.as_task_v2(
            task_id, TASK, args=[run_id], argsrepr=label, kwargsrepr="{}", ignore_result=True)
        producer.publish(message.body, exchange="", routing_key=name, headers=message.headers,
                         serializer="json", delivery_mode=queue.exchange.delivery_mode or 2,
                         declare=declare, retry=True, retry_policy=self._retry_policy,
                         **message.properties)
        self._declared.add(name)
        return Sent(task_id, name, label)

    def schedule(self, run_id: str, due_at: float, lane: str | None = None) -> None:
        """Send the run when *due_at* comes (the pump finds its lane then)."""
        self.pump.schedule(run_id, due_at)

    def _lane(self, state: RunState | None) -> str | None:
        """The lane of the run's flow version (no store read when the state is in hand)."""
        flow = state and self.core.versions.get(state.flow_id, state.flow_version)
        return flow.model.queue if flow else None

    def process(self, run_id: str) -> RunState | None:
        """Advance one run as far as it goes now and record the outcome (in a worker)."""
        return self.deliver(run_id)[0]

    def deliver(self, run_id: str) -> tuple[RunState | None, bool]:
        """`process`, and whether this delivery is the one that ended the run (a redelivery
        that finds it finished did not).

        The run's lock makes a second delivery of the same run (a redelivered task, a resumed
        run, a duplicate claim) wait instead of running steps a second time: it checks again
        when the lease would have run out, and then finds the run finished or due. Taking the
        lease and reading the run is one round trip; the last save and the end of the delivery
        are another.
        """
        owner = f"{self._identity}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
        lease = self.tuning.run_lease
        taken = self.store.begin_delivery(run_id, owner, lease)
        if taken is None:
            self.schedule(run_id, time.time() + lease / 2)
            return None, False
        died, state = taken
        was_done = state is not None and state.done
        ended: list[bool] = []

        def save(state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None:
            self.store.save_run(state, dead_letter=dead_letter, children=children, delivery=owner)
            ended.append(True)

        self.leases.hold(f"run:{run_id}", owner)
        try:
            if state is None:
                return None, False
            self._process(state, died, owner, save)
            if state.done:
                turn = self.lines.leave(state)  # the next run of its line, if it was parked
                if turn is not None:
                    self.submit(turn)
            return state, state.done and not was_done
        finally:
            # not reached when the worker dies: that delivery stays counted, and in flight
            self.leases.drop(f"run:{run_id}")
            if not ended:
                try:
                    self.store.end_delivery(run_id, owner)
                except Exception:  # the lease expires by itself
                    log.warning("lease on run %s not released", run_id, exc_info=True)

    def _process(self, state: RunState, died: int, owner: str, save: Save) -> RunState:
        run_id = state.run_id
        if state.done:
            # a worker that died between recording the run and sending its children: send them
            for child_id in state.envelope.get("meta", {}).get("children", []):
                child = self.store.get_run(child_id)
                if child is not None and child.status == "queued":
                    self.submit(child)
            return state
        if state.status == "retrying" and state.due_at is not None and state.due_at > time.time():
            self.schedule(run_id, state.due_at)
            return state
        flow = self.core.flow_of(state)
        if flow is None:
            return state
        if died >= self.tuning.max_deliveries:
            return self._poisoned(flow, state, died)
        if not self.lines.enter(state):
            return state  # queued again when the run before it in its line ends
        limit, lease = flow.model.concurrency, self.tuning.run_lease
        if limit is not None:
            # over the limit the run waits in Redis, woken when a run of the flow finishes
            if not self.limits.acquire_slot(flow.id, run_id, limit, lease, run_id, lease):
                return state
            self.leases.hold(f"run:{run_id}", owner,
                             also=lambda: self.limits.renew_slot(flow.id, run_id, lease))
        try:
            children = self.core.run(flow, state, save=save)
        finally:
            if limit is not None:
                self.leases.hold(f"run:{run_id}", owner)
                self.limits.release_slot(flow.id, run_id)
        self.submit_many(children)
        if state.status == "retrying" and state.due_at is not None:
            self.schedule(state.run_id, state.due_at)
        if state.done:
            self.core.finished(state)
        return state

    def _poisoned(self, flow: CompiledFlow, state: RunState, died: int) -> RunState:
        step = flow.steps[state.position].id if state.position < len(flow.steps) else None
        log.error("run %s of flow %s: %d deliveries died with their worker; dead-lettered as "
                  "poison", state.run_id, flow.id, died)
        poison(state, died, step)
        self.store.save_run(state, dead_letter=self.core.entry_for(state))
        self.core.finished(state)
        return state
