"""Business SLAs in a running process: each run's deadline, and the watch that finds late runs.

A flow's ``sla:`` (engine/dsl/sla) gives every run it receives a deadline (`RunState.deadline`,
set in `records.start`), and the store keeps new runs with one in a due-set ordered by deadline.
A run that succeeds in time leaves the set in the write that records it. What is left once its
deadline passed is late: still queued, waiting for a retry, dead-lettered, failed — or it
succeeded after the deadline. `SlaWatch` finds those two ways: at finish (a run that ends
past its deadline, in the process that ran it) and by a sweep of the due-set every
``FLOWRUN_SLA_INTERVAL`` under the ``sla`` lease (one sweeper at a time across processes).

Each breach is claimed once in the store (`Store.claim_breach`); only the claimer counts it in
``flowrun_sla_breaches_total``. The alert is a run of the ``alert.flow`` holding the late run's
summary, recorded under the idempotency key ``sla/<run id>`` *before* the claim: a process that
dies between the two leaves the run due, and the next sweep finds the alert already recorded
and claims. Retries and dead letters of the alert are the alert flow's own.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.expressions import ExpressionError
from engine.periodic import Periodic
from engine.records import SLA_MET, Breach, RunState, start

if TYPE_CHECKING:
    from engine.dsl.sla import SlaSpec
    from engine.envelope import Envelope
    from engine.executor import Executor
    from engine.expressions import Compiled
    from engine.metrics import Metrics
    from engine.store.base import Store
    from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.sla")

LOCK = "sla"
#: how long the sweep lease lasts: a sweeper that dies holds the next sweep back this long
LEASE = 30.0
#: due runs read per store query while sweeping
BATCH = 200
#: how long the alert's idempotency key holds: longer than any run stays open
ALERT_KEY_TTL = 90 * 86400.0
def met(state: RunState) -> bool:
    """Whether *state* ended in an outcome that counts as done (at whatever time)."""
    return state.status in SLA_MET and not (state.status == "handed_off" and state.error)


def late_by(state: RunState, now: float) -> float | None:
    """Seconds past its deadline: up to its finish if it succeeded, up to *now* while it is
    not done; None when it has no deadline or is not (yet) late."""
    if state.deadline is None:
        return None
    if met(state):  # succeeded at its deadline is in time
        end = state.updated_at
        return end - state.deadline if end > state.deadline else None
    # not succeeded when its deadline comes: late, by 0 s at that very instant (the sweep
    # would otherwise take it off the watch as in time and never announce it)
    return now - state.deadline if now >= state.deadline else None


@dataclass(frozen=True)
class Rule:
    within: float
    key: str | None = None
    when: Compiled | None = None


@dataclass
class CompiledSla:
    """A flow's ``sla:`` as loaded: rules with their expressions compiled."""

    within: float
    rules: list[Rule] = field(default_factory=list)
    alert_flow: str | None = None

    def within_for(self, key: str | None, envelope: Envelope) -> float:
        """The deadline of a run with business *key* and message *envelope*, in seconds."""
        for rule in self.rules:
            if rule.key is not None and (key is None or not fnmatch.fnmatchcase(key, rule.key)):
                continue
            if rule.when is not None:
                try:
                    if not rule.when.evaluate(envelope):
                        continue
                except ExpressionError as exc:
                    log.warning("sla rule 'when: %s' not evaluated: %s", rule.when.source, exc)
                    continue
            return rule.within
        return self.within


def compile_sla(spec: SlaSpec, ctx: Any) -> CompiledSla:
    """The ``sla:`` block with its ``when:`` expressions compiled and the alert flow noted as
    a flow reference (checked like hand-off targets); problems go through *ctx*."""
    rules = [Rule(rule.within, rule.key,
                  ctx.expr(rule.when, ("sla", "rules", i, "when")) if rule.when else None)
             for i, rule in enumerate(spec.rules)]
    alert = spec.alert.flow if spec.alert else None
    if alert:
        ctx.flow_ref(alert, ("sla", "alert", "flow"))
    return CompiledSla(spec.within, rules, alert)


def summary(state: RunState, breach: Breach) -> dict[str, Any]:
    """The body an alert flow receives: what is late, by how much, and where it stands."""
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {"sla": {"run_id": state.run_id, "flow": state.flow_id, "key": state.key,
                    "correlation_id": state.correlation_id,
                    "received_at": time.strftime(iso, time.gmtime(state.created_at)),
                    "deadline": time.strftime(iso, time.gmtime(breach.deadline)),
                    "late_by_s": round(breach.late_by, 3), "status": breach.status}}


class SlaWatch(Periodic):
    """Finds late runs (at finish and by a periodic sweep), claims each breach once, counts it
    and hands it to the flow's alert flow."""

    duty = "sla sweep"

    def __init__(self, store: Store, versions: FlowVersions, executor: Executor,
                 metrics: Metrics, *, interval: float = 15.0,
                 clock: Callable[[], float] = time.time):
        super().__init__(interval)
        self.store, self.versions, self.executor = store, versions, executor
        self.metrics, self.clock = metrics, clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    # -- the sweep -----------------------------------------------------------------------------
    def sweep(self) -> int | None:
        """One pass over the runs due by now, unless another process is sweeping (None);
        the breaches this pass claimed."""
        if not self.store.acquire_lock(LOCK, self.owner, LEASE):
            return None
        claimed = 0
        try:
            now = self.clock()
            while True:
                due = self.store.sla_due(now, BATCH)
                for run_id, _ in due:
                    state = self.store.get_run(run_id)
                    if state is None or state.deadline is None or late_by(state, now) is None:
                        # gone (pruned, or a duplicate never recorded), or in time after all
                        self.store.settle_sla([run_id])
                    elif self.breach(state, now):
                        claimed += 1
                if len(due) < BATCH:
                    return claimed
                self.store.acquire_lock(LOCK, self.owner, LEASE)  # a long pass keeps its lease
        finally:
            self.store.release_lock(LOCK, self.owner)

    def tick(self) -> None:
        self.sweep()

    # -- at finish -----------------------------------------------------------------------------
    def finished(self, state: RunState) -> None:
        """A listener of finished runs: a run that ended late is claimed now, not at the next
        sweep; a replay that succeeded answers for the run it replays."""
        now = self.clock()
        try:
            if state.trigger == "replay" and met(state):
                self._replayed(state)
            if state.deadline is not None and state.updated_at > state.deadline \
                    and self.store.get_breach(state.run_id) is None:
                self.breach(state, now)
        except Exception:  # the sweep finds it: a run never waits on its alert
            log.warning("sla of run %s not checked at finish", state.run_id, exc_info=True)

    def _replayed(self, replay: RunState) -> None:
        entry_id = replay.envelope.get("meta", {}).get("replay_of")
        entry = self.store.get_dead_letter(entry_id) if entry_id else None
        original = self.store.get_run(entry.run_id) if entry else None
        if original is None or original.deadline is None:
            return
        if replay.updated_at <= original.deadline:
            self.store.settle_sla([original.run_id])

    # -- one breach ----------------------------------------------------------------------------
    def breach(self, state: RunState, now: float) -> bool:
        """Record *state* as late — alert first, then the claim; whether this call claimed it."""
        assert state.deadline is not None
        over = late_by(state, now) or 0.0
        breach = Breach(run_id=state.run_id, flow_id=state.flow_id, deadline=state.deadline,
                        detected_at=now, late_by=over, status=state.status, key=state.key,
                        correlation_id=state.correlation_id)
        breach.alert_run_id = self._alert(state, breach)
        if not self.store.claim_breach(breach):
            return False
        self.metrics.sla_breach(state.flow_id)
        log.warning("run %s of flow %s is late: %.1f s past its deadline (%s)", state.run_id,
                    state.flow_id, over, state.status)
        return True

    def _alert(self, state: RunState, breach: Breach) -> str | None:
        flow = self.versions.get(state.flow_id, state.flow_version) or \
            self.versions.current(state.flow_id)
        sla = getattr(flow, "sla", None) if flow is not None else None
        target_id = sla.alert_flow if sla is not None else None
        if target_id is None:
            return None
        target = self.versions.current(target_id)
        if target is None:
            log.error("sla alert of flow %s: flow '%s' is not loaded; breach of run %s counted "
                      "and recorded, not announced", state.flow_id, target_id, state.run_id)
            return None
        self.versions.remember(target)
        alert = start(target, summary(state, breach), {}, trigger="sla",
                      correlation_id=state.correlation_id)
        holder = self.store.create_run(alert, ("sla", state.run_id, ALERT_KEY_TTL))
        if holder is not None:
            return holder  # announced before (a claim lost, or a process that died after it)
        self.executor.submit(alert, target.model.queue)
        return alert.run_id


# -- what the console, /api and `flowrun runs list --late` show ------------------------------------
def late_runs(store: Store, *, flow: str | None = None, limit: int = 100,
              now: float | None = None) -> list[dict[str, Any]]:
    """The runs that breached their SLA, latest breach first: each with how late it is (up to
    its success, or up to *now* while it is not done) and its status now."""
    now = time.time() if now is None else now
    return [late_view(breach, store.get_run(breach.run_id), now)
            for breach in store.list_breaches(flow, limit)]


def late_view(breach: Breach, state: RunState | None, now: float) -> dict[str, Any]:
    """One breach with its run as it is now (None: removed by retention)."""
    over = late_by(state, now) if state is not None else None
    return {"run_id": breach.run_id, "flow": breach.flow_id, "key": breach.key,
            "deadline": breach.deadline, "detected_at": breach.detected_at,
            "late_by_s": round(breach.late_by if over is None else over, 3),
            "status_then": breach.status,
            "status": state.status if state is not None else "removed",
            "open": state is not None and not met(state), "alert_run_id": breach.alert_run_id}

