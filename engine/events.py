"""Business events: published once by a flow, one run for each flow subscribed to the type.

A ``publish`` step notes its event on the run (``meta.publish``); before the run is next recorded
(a checkpoint or the end of the delivery) the execution core calls `flush`, which delivers each
event with `publish_event` and moves its record to ``meta.events``. Delivery creates one run per
subscriber — a flow whose trigger is ``event: {type: ...}`` in today's set, its ``when:`` true —
through the store's `create_runs`, each claiming the idempotency key (``event:<flow>``, event
id). The claims are written before the publishing run is recorded, so a crash in between
publishes again on re-execution and the copy starts nothing; a replay of the publisher that
publishes the same id is dropped the same way. The new runs go back to the executor, which
queues them like the runs a split spawns.

Ordering: an event with an ordering key (the subscription's ``key:``, else the event's own)
gets a sequence number, and its subscriber run waits in a per-(flow, key) line
(engine/ordering) until the runs of that key published before it have ended.

`publish_event` is the one entry point: anything that takes messages in (a bus connector) can
publish through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.envelope import Envelope
from engine.expressions import Compiled, ExpressionError
from engine.problems import Path, Problem
from engine.records import DeadLetter, RunState, start
from engine.steps.route import _truthy

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow
    from engine.observe import Observers
    from engine.runner import Runner
    from engine.store.base import Store
    from engine.versions import FlowVersions
    from engine.yamlsrc import Source

log = logging.getLogger("flowrunner.events")

#: envelope meta keys: events noted by publish steps and not yet delivered; events delivered
PENDING, PUBLISHED = "publish", "events"
#: meta key of a subscriber run in an ordered line: {key, seq}
ORDER = "order"
#: idempotency scope of the runs one subscriber gets: one per event id
SCOPE = "event:"


@dataclass
class Event:
    """One business event on its way to the subscribers."""

    type: str
    id: str
    data: Any
    key: str | None = None
    correlation_id: str | None = None
    source_flow: str | None = None
    source_run: str | None = None
    seq: int = 0

    def headers(self) -> dict[str, Any]:
        """What a subscriber run's ``$headers`` carry of the event."""
        found = {"event-type": self.type, "event-id": self.id, "event-key": self.key,
                 "event-source-flow": self.source_flow, "event-source-run": self.source_run}
        return {k: v for k, v in found.items() if v is not None}


def default_id(envelope: Envelope, step_id: str) -> str:
    """The id a publish step gives its event when it names none: the same when the run is
    executed again, or replayed without edits (the replay keeps ``effects_of``)."""
    run = envelope.meta.get("effects_of") or envelope.meta.get("run_id") or "run"
    return f"{run}:{step_id}"


@dataclass
class Subscription:
    """A flow's ``event:`` trigger, compiled when the flow is loaded."""

    type: str
    when: Compiled | None
    key: Compiled | None


class Ordering(Protocol):
    """Per-(flow, key) lines of subscriber runs (engine/ordering)."""

    def register(self, runs: list[RunState]) -> None: ...


class Events:
    """The event side of one execution core: how long a subscriber's claim on an event id holds,
    whether events are delivered at all (a flow test only records them), the ordering lines new
    runs join (set by the executor), and a counter of what happened to each event."""

    def __init__(self, *, ttl: float = 7 * 86400.0, deliver: bool = True,
                 count: Callable[[str, str, int], None] | None = None):
        self.ttl, self.deliver, self.count = ttl, deliver, count
        self.ordering: Ordering | None = None
        self._claims: set[tuple[str, str]] = set()  # without a store (flowrun run)
        self._last_seq = 0
        self._lock = threading.Lock()

    def claim(self, scope: str, key: str) -> bool:
        """Claim *key* in this process (a core without a store); False when it was taken."""
        with self._lock:
            if (scope, key) in self._claims:
                return False
            self._claims.add((scope, key))
            return True

    def next_seq(self, store: Any) -> int:
        """The sequence number of an ordered event: one counter for every process when the
        store keeps one (Redis), else from this process's clock, so numbers keep increasing
        across restarts of the embedded executor."""
        shared = getattr(store, "next_event_seq", None)
        if shared is not None:
            return int(shared())
        with self._lock:
            self._last_seq = max(self._last_seq + 1, time.time_ns())
            return self._last_seq


# -- publishing ---------------------------------------------------------------------------------
class Publishing(Protocol):
    """What delivering an event asks of the execution core (`engine.processing.Core`, which
    calls `flush`): today's flows, the store, these settings, the observers, the clock and the
    ids of new runs."""

    @property
    def versions(self) -> FlowVersions: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def events(self) -> Events: ...

    @property
    def observers(self) -> Observers: ...

    @property
    def runner(self) -> Runner: ...

    def new_run_id(self) -> str | None: ...


def subscribers(core: Publishing,
                event: Event) -> list[tuple[CompiledFlow, str | None, str | None]]:
    """Today's flows subscribed to *event*: each with the ordering key of its run, or with why
    its subscription cannot be evaluated on this event."""
    found: list[tuple[CompiledFlow, str | None, str | None]] = []
    for flow in core.versions.flows.flows.values():
        sub: Subscription | None = flow.subscription
        if sub is None or sub.type != event.type:
            continue
        try:
            taken, key = accepts(sub, event)
        except ExpressionError as exc:
            found.append((flow, None, str(exc)))
            continue
        if taken:
            found.append((flow, key, None))
    return found


def accepts(sub: Subscription, event: Event) -> tuple[bool, str | None]:
    """Whether the subscription takes *event* (its ``when:``), and the ordering key of the
    run; raises `ExpressionError` when an expression cannot be evaluated on this event."""
    view = Envelope(body=event.data, headers=event.headers(),
                    meta={"event": {"type": event.type, "id": event.id}})
    if sub.when is not None and not _truthy(sub.when.evaluate(view)):
        return False, None
    key = sub.key.evaluate(view) if sub.key is not None else event.key
    return True, None if key in (None, "") else str(key)


def publish_event(core: Publishing, event: Event) -> list[RunState]:
    """Deliver *event* to every subscriber: the new runs, recorded (each subscriber at most once
    per event id) and to be queued by the caller's executor. Runs a copy of the event started
    earlier and that are still queued come back too, so a publisher that died before its
    executor queued them gets them queued now (a run queued twice is advanced once)."""
    events: Events = core.events
    targets = subscribers(core, event)
    if not targets:
        log.info("event %s (%s) from flow %s has no subscriber", event.id, event.type,
                 event.source_flow or "-")
        _count(core, event.type, "no_subscriber")
        return []
    runs: list[tuple[RunState, tuple[str, str, float]]] = []
    for flow, key, error in targets:
        state = start(flow, event.data, event.headers(), trigger="event",
                      correlation_id=event.correlation_id, parent_run_id=event.source_run,
                      run_id=core.new_run_id(), now=core.runner.clock())
        meta = state.envelope["meta"]
        meta["event"] = {"type": event.type, "id": event.id, "source_flow": event.source_flow,
                         "source_run": event.source_run}
        if error is not None:
            # never dropped in silence: the subscriber's run is dead-lettered with the event,
            # to be replayed once the subscription is fixed
            state.status = "dead_lettered"
            state.error = {"message": f"the subscription of flow '{flow.id}' cannot be "
                           f"evaluated on event {event.id} ({event.type}): {error}",
                           "kind": "subscription", "step": None}
        elif key is not None:
            meta[ORDER] = {"key": key, "seq": event.seq or events.next_seq(core.store)}
        core.versions.remember(flow)
        runs.append((state, (SCOPE + flow.id, event.id, events.ttl)))
    fresh, again = _record(core, runs)
    failed = [s for s in fresh if s.done]
    for state in failed:
        log.error("event %s: %s", event.id, state.error["message"] if state.error else "")
        if core.store is not None:
            core.store.save_run(state, dead_letter=DeadLetter.for_run(state))
        core.observers.accepted(state)
        core.observers.dead_lettered(state)
        core.observers.finished(state)
    fresh = [s for s in fresh if not s.done]
    for state in fresh:
        core.observers.accepted(state)
    if events.ordering is not None:
        events.ordering.register(fresh)
    duplicates = len(runs) - len(fresh) - len(failed)
    _count(core, event.type, "delivered", len(fresh))
    _count(core, event.type, "subscription_error", len(failed))
    if duplicates:
        log.info("event %s (%s): %d subscriber(s) already had it; no second run", event.id,
                 event.type, duplicates)
        _count(core, event.type, "duplicate", duplicates)
    return fresh + again


def _record(core: Publishing, runs: list[tuple[RunState, tuple[str, str, float]]],
            ) -> tuple[list[RunState], list[RunState]]:
    """Record the runs whose claim is free; (new runs, queued runs holding a claim already)."""
    store = core.store
    if store is None:
        return [s for s, (scope, key, _) in runs if core.events.claim(scope, key)], []
    holders = store.create_runs(list(runs))
    fresh = [s for (s, _), holder in zip(runs, holders, strict=True) if holder is None]
    again = []
    for holder in {h for h in holders if h}:
        held = store.get_run(holder)
        if held is not None and held.status == "queued":
            again.append(held)
    return fresh, again


def flush(core: Publishing, state: RunState) -> list[RunState]:
    """Deliver the events the run's publish steps noted; their records go to ``meta.events``.
    Called before every write of the run, so no event is noted in a record yet undelivered."""
    meta = state.envelope.setdefault("meta", {})
    pending = meta.pop(PENDING, None)
    if not pending:
        return []
    runs: list[RunState] = []
    done = meta.setdefault(PUBLISHED, [])
    for noted in pending:
        event = Event(noted["type"], noted["id"], noted["data"], noted.get("key"),
                      state.correlation_id, state.flow_id, state.run_id)
        started = publish_event(core, event) if core.events.deliver else []
        runs.extend(started)
        # the runs of this event started by this run (a re-execution finds its own again);
        # a copy of an event another run published names none
        mine = [r.run_id for r in started if r.parent_run_id == state.run_id]
        done.append({**noted, "subscribers": mine})
    return runs


def _count(core: Publishing, event_type: str, outcome: str, n: int = 1) -> None:
    if core.events.count is not None and n:
        core.events.count(event_type, outcome, n)


def ordering_of(state: RunState) -> tuple[str, int] | None:
    """(key, sequence) of a subscriber run that waits its turn in a line, else None."""
    found = state.envelope.get("meta", {}).get(ORDER)
    return (str(found["key"]), int(found["seq"])) if isinstance(found, dict) else None


# -- loading and cross-checks ---------------------------------------------------------------------
def compile_subscription(trigger: Any, ctx: Any) -> Subscription:
    """The ``event:`` trigger with its expressions compiled (problems reported through *ctx*)."""
    path: Path = ("trigger", "event")
    when = ctx.expr(trigger.when, (*path, "when")) if trigger.when else None
    key = ctx.expr(trigger.key, (*path, "key")) if trigger.key else None
    return Subscription(trigger.type, when, key)


def declared(source: Source, model: Any) -> list[tuple[str, Problem]]:
    """The event types the flow's publish steps emit, each with where it is written."""
    found = []
    for i, step in enumerate(model.steps):
        if step.kind == "publish":
            found.append((step.config.type, source.problem(("steps", i, "publish", "type"), "")))
    return found


def cross_check(flows: dict[str, CompiledFlow]) -> list[Problem]:
    """Warnings for events nobody subscribes to and subscriptions nobody publishes to."""
    published = {t for f in flows.values() for t, _ in f.publishes}
    subscribed = {f.subscription.type for f in flows.values() if f.subscription is not None}
    problems = []
    for flow in flows.values():
        for event_type, where in flow.publishes:
            if event_type not in subscribed:
                problems.append(_warning(where, f"event '{event_type}' is published but no flow "
                                         "subscribes to it (trigger: {event: {type: "
                                         f"{event_type}}}}}); it will only be counted"))
        sub = flow.subscription
        if sub is not None and sub.type not in published and flow.subscription_at:
            problems.append(_warning(flow.subscription_at, f"no flow publishes event "
                                     f"'{sub.type}' (a publish step with that type); this "
                                     "flow starts only when another component publishes it"))
    return problems


def _warning(where: Problem, message: str) -> Problem:
    return Problem(where.file, where.line, where.column, where.path, message, "warning")
