"""The execution core: one life cycle of a run, shared by every executor.

advance (steps, under the run's log context, watched by the observers) → spawn the runs it
hands on (split items, hand-offs; the subscribers of the events it published, recorded before
it: engine/events) → record the run with its dead-letter entry and children in
one write (a replay run settles the entry it replays instead of filing one: engine/dlq) → tell
the listeners of a finished run. The embedded executor, the Celery task and `flowrun run` call
`Core.run`; what differs between them — where a run waits, how children are queued, how two
deliveries of one run are kept apart — stays in the executor.

Observers (logs, metrics, traces) and the log context are composed here once, when the core is
built; nothing replaces the runner's methods at run time. An observer sees a run's story as
events — accepted at intake, advanced, a retry scheduled, dead-lettered, finished, and the
replay or discard of its dead-letter entry — and overrides only the ones it needs (`Observer`).
Observers are told after the fact and cannot change the outcome: one that raises is logged and
the run goes on. Two events are contexts instead, for traces: `delivering` wraps one delivery of
a run (advance, spawn, record) and `attempting` one attempt of a step, so what happens inside
them — an outbound call, a spawned run — happens within their span.
"""

from __future__ import annotations

import contextlib
import logging
import reprlib
from collections.abc import Callable, Sequence
from typing import Protocol

from engine import dlq
from engine.compiled import CompiledFlow
from engine.envelope import Envelope
from engine.events import Events, flush
from engine.logs import bind
from engine.observe import Observer, Observers, Retry
from engine.records import DeadLetter, RecordError, RunState, start
from engine.retry import reason_kind
from engine.runner import Runner
from engine.store.base import Store
from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.executor")

#: the text kept of a message that cannot be recorded: the first levels, each shortened
SHALLOW = reprlib.Repr()
SHALLOW.maxlevel, SHALLOW.maxlist, SHALLOW.maxdict, SHALLOW.maxstring = 30, 50, 50, 200
SHALLOW.maxother = 200


#: the context of a delivery no observer wraps (reusable: it holds nothing)
_NO_CONTEXT = contextlib.nullcontext()


class Save(Protocol):
    def __call__(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None: ...


def retry_of(flow: CompiledFlow, state: RunState, now: float) -> Retry | None:
    """The retry *state* waits for after its last advance, or None (it ended, goes on, or
    waits for a rate-limit token rather than after a failure)."""
    if (state.status != "retrying" or state.reserved is not None or not state.attempts
            or state.position >= len(flow.steps)):
        return None
    failed = state.attempts[-1]
    # from the failure, when the runner chose the delay
    delay = (state.due_at or now) - float(failed.get("at") or now)
    return Retry(step=flow.steps[state.position].id, attempt=int(failed.get("attempt", 1)),
                 delay=max(0.0, delay),
                 kind=reason_kind(failed.get("kind"), failed.get("status")),
                 message=str(failed.get("error", "")), status=failed.get("status"))


class Core:
    def __init__(self, runner: Runner, versions: FlowVersions, store: Store | None = None, *,
                 observers: Sequence[Observer] = (), run_ids: Callable[[], str] | None = None,
                 events: Events | None = None):
        self.runner, self.versions, self.store = runner, versions, store
        self.events = events or Events()
        #: every observer as one: intake, replay and discard tell it too (engine/app)
        self.observers = observers if isinstance(observers, Observers) else Observers(observers)
        if self.observers.makes_contexts:  # each attempt of a step runs in their context
            runner.around_step = self.observers.attempting
        self._listeners: list[Callable[[RunState], None]] = []
        self._run_ids = run_ids

    def on_finished(self, listener: Callable[[RunState], None]) -> None:
        self._listeners.append(listener)

    # -- one delivery ----------------------------------------------------------------------------
    def flow_of(self, state: RunState) -> CompiledFlow | None:
        """The flow version the run was started on; a run whose version is gone fails, recorded."""
        flow = self.versions.get(state.flow_id, state.flow_version)
        if flow is None:
            state.status = "failed"
            state.error = {"message": f"flow '{state.flow_id}' version {state.flow_version} is "
                           "no longer available", "kind": "flow_missing"}
            if self.store is not None:
                self.store.save_run(state, dead_letter=self.entry_for(state))
        return flow

    def run(self, flow: CompiledFlow, state: RunState, *, save: Save | None = None,
            ) -> list[RunState]:
        """Advance *state* as far as it goes now and record it; the runs it spawned (recorded
        with it, for the executor to queue). *save* records the outcome (default: the store's
        `save_run`; a Celery worker ends its delivery in the same write). A run that cannot be
        recorded — a value grown past what a record can hold — is dead-lettered with the step
        and the reason, never left to fail again at every delivery."""
        store = self.store
        # subscribers of the events published so far: recorded before the run that published
        # them (engine/events), queued with its children
        subscribers: list[RunState] = []

        def checkpoint(state: RunState) -> None:
            subscribers.extend(flush(self, state))
            if store is not None:
                store.save_run(state)

        # the delivery's context (a trace span) holds the runs it spawns too
        with self.observers.delivering(flow, state) or _NO_CONTEXT:
            try:
                before = len(state.steps)
                with bind(flow=state.flow_id, run_id=state.run_id,
                          correlation_id=state.correlation_id):
                    try:
                        self.runner.advance(flow, state, checkpoint=checkpoint)
                    finally:
                        self.observers.advanced(flow, state, before)
                        retry = retry_of(flow, state, self.runner.clock())
                        if retry is not None:
                            self.observers.retry_scheduled(flow, state, retry)
                    subscribers.extend(flush(self, state))
                children = self.spawn_children(state)
                entry = self.entry_for(state) if state.done else None
                if save is not None:
                    save(state, dead_letter=entry, children=children)
                elif store is not None:
                    store.save_run(state, dead_letter=entry, children=children)
            except RecordError as exc:
                self._unrecordable(state, exc)
                return subscribers
            # a spawned run is accepted once recorded, like a run at intake (trigger split or
            # handoff, with its parent), so its story has a beginning on either executor
            for child in children:
                self.observers.accepted(child)
        return children + subscribers

    def new_run_id(self) -> str | None:
        """The id of a run this core starts (None: a random one)."""
        return self._run_ids() if self._run_ids else None

    def entry_for(self, state: RunState) -> DeadLetter | None:
        """The dead-letter entry recorded with *state*, which has ended: a new one, or the
        one it replays, settled (engine/dlq)."""
        return dlq.settle(self.store, state)

    def finished(self, state: RunState) -> None:
        if state.status == "dead_lettered":
            self.observers.dead_lettered(state)
        self.observers.finished(state)
        for listener in self._listeners:
            listener(state)

    def _unrecordable(self, state: RunState, exc: RecordError) -> None:
        step = state.steps[-1]["id"] if state.steps else None
        where = f" after step '{step}'" if step else ""
        log.error("run %s of flow %s could not be recorded%s (%s); dead-lettered",
                  state.run_id, state.flow_id, where, exc)
        body = state.envelope.get("body")
        state.envelope = {**state.envelope, "body": {"unrecordable": SHALLOW.repr(body)},
                          "vars": {}}
        state.status, state.spawn = "dead_lettered", []
        state.error = {"kind": "unrecordable", "step": step,
                       "message": f"the message could not be recorded{where}: {exc}. The "
                       "original message is kept; the envelope's body holds the first levels "
                       "of the value that could not be recorded, as text"}
        if self.store is not None:
            self.store.save_run(state, dead_letter=self.entry_for(state))

    # -- spawned runs ------------------------------------------------------------------------------
    def spawn_children(self, state: RunState) -> list[RunState]:
        """The runs *state* spawned (split items, hand-offs), ready to record with it.

        A hand-off to a flow that is not loaded dead-letters the parent instead: the message
        stays with the run that has it, never lost between two flows."""
        children: list[RunState] = []
        for spawn in state.spawn:
            # split items go on through the rest of the parent's version (their position
            # indexes its steps); a hand-off starts the target's current version
            target = (self.versions.get(spawn.flow, state.flow_version)
                      if spawn.flow == state.flow_id else self.versions.current(spawn.flow))
            if target is None:
                state.status = "dead_lettered"
                state.error = {"message": f"hand-off target flow '{spawn.flow}' is not loaded",
                               "kind": "flow_missing", "step": None}
                children = []
                break
            envelope = Envelope.from_dict(spawn.envelope)
            trigger = "split" if spawn.flow == state.flow_id else "handoff"
            child = start(target, envelope.body, envelope.headers, trigger=trigger,
                          correlation_id=state.correlation_id, position=spawn.position,
                          vars=envelope.vars, parent_run_id=state.run_id,
                          run_id=self.new_run_id(),
                          now=self.runner.clock())
            if "split_index" in envelope.meta:
                child.envelope["meta"]["split_index"] = envelope.meta["split_index"]
            self.versions.remember(target)
            children.append(child)
        state.spawn = []
        state.envelope.setdefault("meta", {})["children"] = [c.run_id for c in children]
        return children

