"""Intake: deliveries are recorded in groups by one writer, then handed to the executor.

Whoever takes a message in — the webhook route, the scheduler, the CLI, replay — builds its run
(`Intake.prepare`, in the caller's thread: expressions, ids) and hands it to the writer. The
writer takes every delivery waiting, records the group in one write (one SQLite transaction,
one Redis script that also claims the idempotency keys), hands the new runs to the executor in
one go, and only then answers each delivery. Requests that arrive while a group is being written
form the next group: no delivery waits for a timer, and under load one commit serves many.

A duplicate is found atomically within a group and across groups: a key claimed by an earlier
delivery of the same group is held like any other. A group that cannot be recorded answers
every one of its deliveries with the error (a 503 for a webhook), never an acceptance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import tracing
from engine.compiled import CompiledFlow
from engine.envelope import Envelope
from engine.expressions import ExpressionError
from engine.observe import Observer
from engine.records import RecordError, RunState, start
from engine.store.base import Idempotency, Store
from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.intake")

#: most deliveries written in one group; more wait for the next
MAX_GROUP = 256
#: seconds the writer thread waits for work before it ends (it starts again on demand)
IDLE = 2.0


@dataclass
class Accepted:
    run_id: str
    correlation_id: str
    duplicate: bool = False


@dataclass
class Delivery:
    """One message on its way in: its new run, its idempotency claim, and who to answer."""

    flow: CompiledFlow
    state: RunState
    idempotency: Idempotency | None
    answer: Callable[[Accepted | BaseException], None] = field(repr=False)


class _Waiter:
    """A caller that blocks until its delivery is answered (CLI, scheduler, replay)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.result: Accepted | BaseException | None = None

    def __call__(self, result: Accepted | BaseException) -> None:
        if not self._event.is_set():  # the first answer stands
            self.result = result
            self._event.set()

    def wait(self) -> Accepted:
        self._event.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        assert self.result is not None
        return self.result


class Intake:
    def __init__(self, store: Store, executor: Any, versions: FlowVersions, *,
                 idempotency_ttl: float, max_group: int = MAX_GROUP,
                 observer: Observer | None = None):
        self.store, self.executor, self.versions = store, executor, versions
        #: told of every new run once it is recorded (its logs and metrics: engine/processing)
        self.observer = observer or Observer()
        self.idempotency_ttl = idempotency_ttl
        self.max_group = max_group
        self._pending: list[Delivery] = []
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        #: deliveries the writer took, groups written and deliveries in them (bench and tests
        #: read the grouping)
        self.taken = self.groups = self.written = 0

    # -- taking deliveries ---------------------------------------------------------------------
    def prepare(self, flow: CompiledFlow, body: Any, headers: dict[str, Any] | None, *,
                trigger: str, correlation_id: str | None, request: dict[str, Any] | None,
                answer: Callable[[Accepted | BaseException], None],
                key: str | None = None) -> Delivery:
        """The delivery of one message to *flow*'s newest version; may raise RecursionError
        for a message nested too deeply to handle. *key* is an idempotency key the caller
        already has (an AS2 Message-Id), in place of the flow's expression."""
        flow = self.versions.current(flow.id) or flow  # the newest version (hot reload)
        self.versions.remember(flow)
        state = start(flow, body, headers, trigger=trigger, correlation_id=correlation_id,
                      request=request)
        idempotency = None
        if key:
            idempotency = (flow.id, key, self.idempotency_ttl)
        elif flow.idempotency_key is not None:
            key = _key(flow, state)
            if key:
                idempotency = (flow.id, key, self.idempotency_ttl)
        return Delivery(flow, state, idempotency, answer)

    def accept(self, flow: CompiledFlow, body: Any, headers: dict[str, Any] | None = None, *,
               trigger: str = "manual", correlation_id: str | None = None,
               request: dict[str, Any] | None = None) -> Accepted:
        """Record one message and hand it on; returns once it is recorded (or raises)."""
        with tracing.intake(flow.id, trigger) as span:
            waiter = _Waiter()
            self.put(self.prepare(flow, body, headers, trigger=trigger,
                                  correlation_id=correlation_id, request=request,
                                  answer=waiter))
            try:
                accepted = waiter.wait()
            except BaseException as exc:
                span.failed(type(exc).__name__)
                raise
            span.set("flowrun.run_id", accepted.run_id)
            span.set("flowrun.duplicate", accepted.duplicate)
            return accepted

    def put(self, delivery: Delivery) -> None:
        """Queue *delivery* for the next group; its `answer` is called from the writer."""
        with self._cond:
            self._pending.append(delivery)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="flowrun-intake-writer")
                self._writer.start()
            else:
                self._cond.notify()

    # -- the writer ----------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(IDLE)
                if not self._pending:
                    self._writer = None
                    return
                group = self._pending[:self.max_group]
                del self._pending[:self.max_group]
                self.taken += len(group)
            try:
                self._write(group)
            except BaseException as exc:  # answered, never left waiting
                log.exception("intake: a group of %d deliveries failed", len(group))
                for delivery in group:
                    delivery.answer(exc)

    def _write(self, group: list[Delivery]) -> None:
        try:
            # where the broker is the store's server, the runs are queued by the same write
            messages = self.executor.queue_messages([d.state for d in group])
            holders = self.store.create_runs([(d.state, d.idempotency) for d in group],
                                             messages)
        except RecordError:
            # one delivery the store cannot encode must not fail the others of its group
            holders = []
            for i, delivery in enumerate(group):
                try:
                    holders.extend(self.store.create_runs(
                        [(delivery.state, delivery.idempotency)],
                        None if messages is None else [messages[i]]))
                except RecordError as exc:
                    delivery.answer(exc)
                    holders.append("")
        except Exception as exc:  # StoreError: every delivery of the group is refused
            for delivery in group:
                delivery.answer(exc)
            return
        self.groups += 1
        self.written += len(group)
        fresh = [d for d, holder in zip(group, holders, strict=True) if holder is None]
        for delivery in fresh:  # before it is queued, so its story starts with its intake
            self.observer.accepted(delivery.state)
        try:
            if fresh and messages is None:
                self.executor.submit_many([d.state for d in fresh])
            elif messages is not None:
                self.executor.queued([d.state for d in fresh])
        except Exception as exc:
            # recorded but not queued (the broker went away): answer as not recorded, so the
            # sender retries; its retry finds the run queued and queues it then
            for delivery in fresh:
                delivery.answer(exc)
            fresh = []
        else:
            for delivery in fresh:
                delivery.answer(Accepted(delivery.state.run_id, delivery.state.correlation_id))
        # a copy of a delivery recorded in this very group: its original is queued already
        queued = {d.state.run_id: d.state.correlation_id for d in fresh}
        for delivery, holder in zip(group, holders, strict=True):
            if holder and holder in queued:
                delivery.answer(Accepted(holder, queued[holder], True))
            elif holder:
                delivery.answer(self._duplicate(delivery, holder))

    def _duplicate(self, delivery: Delivery, existing: str) -> Accepted | BaseException:
        try:
            original = self.store.get_run(existing)
            if original is not None and original.status == "queued":
                # the first delivery may have been answered 503 after its run was recorded but
                # before it reached the queue (the broker went away in between); the sender's
                # retry sends it now. A run already queued is still advanced once (its lease).
                self.executor.submit(existing, delivery.flow.model.queue)
        except Exception as exc:
            return exc
        return Accepted(existing, original.correlation_id if original else "", True)


def _key(flow: CompiledFlow, state: RunState) -> str | None:
    assert flow.idempotency_key is not None
    try:
        value = flow.idempotency_key.evaluate(Envelope.from_dict(state.envelope))
    except ExpressionError:
        return None
    return None if value in (None, "") else str(value)
