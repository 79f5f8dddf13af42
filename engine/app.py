"""One flowrunner process: settings, loaded flows, store, runner, executor and intake, wired once.

Everything that takes messages in — the CLI, the webhook server, the scheduler, replay — goes
through `App.accept`, which dedupes on the idempotency key, records the run and hands it to the
executor, in that order. The caller answers the sender only after ``accept`` returned.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from engine import dlq, tracing
from engine.compiled import FlowSet
from engine.events import Event, Events, publish_event
from engine.executor import EmbeddedExecutor, Executor
from engine.intake import Accepted, Intake
from engine.limits import LocalBucket
from engine.loader import Loader
from engine.local import resources_factory
from engine.metrics import Metrics
from engine.processing import SHALLOW, Core
from engine.records import DeadLetter, RecordError, RunState, start
from engine.refs import Secrets
from engine.reload import FlowWatcher
from engine.retention import Pruner
from engine.runlog import RunLog
from engine.runner import Runner
from engine.schemas import SchemaStore
from engine.settings import Settings
from engine.sla import SlaWatch
from engine.store.base import Store, StoreError
from engine.store.sqlite import SqliteStore
from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.app")

__all__ = ["Accepted", "App", "loader_for"]


def open_store(settings: Settings) -> Store:
    """The store *settings* name: records in PostgreSQL (FLOWRUN_DATABASE_URL), Redis
    (FLOWRUN_REDIS_URL), both (records in PostgreSQL, hot state in Redis), or SQLite."""
    if settings.database_url:
        try:
            from engine.store.postgres import PostgresStore
        except ImportError as exc:  # psycopg is the optional extra
            raise StoreError(f"FLOWRUN_DATABASE_URL needs flowrunner-ipaas[postgres] ({exc.name} "
                             "is not installed): pip install 'flowrunner-ipaas[postgres]'"
                             ) from None
        records = PostgresStore(settings.database_url, pool_size=settings.database_pool,
                                timeout=settings.busy_timeout)
        if not settings.redis_url:
            return records
        from engine.store.pg_redis import RedisPostgresStore

        return RedisPostgresStore(settings.redis_url, records,
                                  replica_wait=settings.redis_replica_wait)
    if settings.redis_url:
        from engine.store.redis import RedisStore

        return RedisStore(settings.redis_url, replica_wait=settings.redis_replica_wait)
    return SqliteStore(settings.state_db, settings.busy_timeout, settings.durability)


def state_location(settings: Settings) -> str:
    """Where the state of *settings* lives, for start-up lines (no password)."""
    if settings.database_url:
        from engine.store.postgres import describe

        where = f"PostgreSQL {describe(settings.database_url)}"
        return where + (" and Redis" if settings.redis_url else "")
    return "Redis" if settings.redis_url else str(settings.state_db)


def loader_for(settings: Settings) -> Loader:
    """The loader flows are read with: the configured JSON Schemas and secrets."""
    secrets = Secrets(str(settings.secrets_file) if settings.secrets_file else None)
    return Loader(schemas=SchemaStore(settings.schemas_dir()), secrets=secrets)


class App:
    """One process's parts, built once: store, flow versions, runner, execution core, executor
    and intake. The run log, metrics and the log context are composed into the core here."""

    def __init__(self, settings: Settings, *, store: Store | None = None,
                 flows: FlowSet | None = None, on_step: Any = None):
        self.settings = settings
        tracing.configure(settings)  # FLOWRUN_OTEL: before any run, client or fork
        self.loader = loader_for(settings)
        self.secrets = self.loader.secrets
        loaded = flows if flows is not None else self.loader.load_paths([settings.flows])
        #: what steps may use besides their config: the app's home folder, and the Redis
        #: client when state lives there (e.g. X12 control numbers shared by every worker)
        self.services: dict[str, Any] = {"home": settings.home}
        self.store: Store = store or open_store(settings)
        if settings.redis_url:  # distributed: hot state in Redis, runs on Celery workers
            from engine.store.redis import RedisStore

            if not isinstance(self.store, RedisStore) or self.store.prefix != "flowrun:":
                raise ValueError("the Celery executor keeps run state in Redis: it needs the "
                                 "RedisStore with prefix 'flowrun:'")
            self.services["redis"] = self.store.redis
        self.versions = FlowVersions(loaded, store=self.store, loader=self.loader,
                                     folder=settings.flows)
        self.metrics = Metrics()
        self.runner = Runner(resources_factory(self.secrets, self.services),
                             self.secrets.redactor, on_step=on_step,
                             snapshots=settings.step_snapshots)
        # FLOWRUN_OTEL: the run and step spans are made on the same seam as logs and metrics
        traces = tracing.observer()
        self.core = Core(self.runner, self.versions, self.store,
                         observers=[RunLog(), self.metrics, *([traces] if traces else [])],
                         events=Events(ttl=settings.idempotency_ttl, count=self.metrics.event))
        # flows handed in (tests, flowrun test) are not watched; a flows folder is
        watcher = (FlowWatcher(self.loader, self.versions, settings.flows)
                   if flows is None and settings.flows.is_dir() else None)
        self.watcher = watcher
        self.executor: Executor
        if settings.redis_url:
            from engine.celery_executor import CeleryExecutor

            assert isinstance(self.store, RedisStore)
            self.executor = CeleryExecutor(self.core, self.store, settings, watcher=watcher)
        else:
            self.executor = EmbeddedExecutor(self.core, self.store, settings.workers,
                                             rate_limiter=LocalBucket(), watcher=watcher,
                                             max_workers=settings.worker_ceiling)
        self.runner.rate_limiter = self.executor.rate_limiter.take
        self.intake = Intake(self.store, self.executor, self.versions,
                             idempotency_ttl=settings.idempotency_ttl,
                             observer=self.core.observers)
        #: started by the long-running commands (serve, scheduler), not by one-off ones
        self.pruner = Pruner(self.store, settings, lambda: self.flows)
        #: late runs (engine/sla): claimed at finish here, swept by serve and scheduler
        self.sla = SlaWatch(self.store, self.versions, self.executor, self.metrics,
                            interval=settings.sla_interval)
        self.core.on_finished(self.sla.finished)

    @property
    def flows(self) -> FlowSet:
        """Today's flows (hot reload replaces them; runs in flight keep their versions)."""
        return self.versions.flows

    # -- intake --------------------------------------------------------------------------------
    def accept(self, flow: Any, body: Any, headers: dict[str, Any] | None = None, *,
               trigger: str = "manual", correlation_id: str | None = None,
               request: dict[str, Any] | None = None) -> Accepted:
        """Dedupe on the idempotency key, record the run (in a group with the deliveries that
        arrive meanwhile) and hand it to the executor; returns once it is recorded."""
        try:
            return self.intake.accept(flow, body, headers, trigger=trigger,
                                      correlation_id=correlation_id, request=request)
        except (RecursionError, RecordError) as exc:
            # a poll record or a hand-off nested deeper than anything can record, or holding a
            # value no record can hold (the webhook server refuses such bodies with a 400): keep
            # what can be kept in the dead-letter queue, so one bad record neither vanishes nor
            # blocks its poll
            return self._dead_letter_unrecordable(flow, body, headers, trigger, correlation_id,
                                                  exc)

    def _dead_letter_unrecordable(self, flow: Any, body: Any,
                                  headers: dict[str, Any] | None, trigger: str,
                                  correlation_id: str | None, exc: BaseException) -> Accepted:
        text = SHALLOW.repr(body)
        try:
            kept_headers = json.loads(json.dumps(headers or {}, default=str))
        except (RecursionError, ValueError):
            kept_headers = {}
        too_deep = isinstance(exc, RecursionError) or "recursion" in str(exc)
        why = "is nested too deeply to record" if too_deep else f"cannot be recorded ({exc})"
        state = self.dead_letter_message(
            flow, {"unrecordable": text}, kept_headers, trigger=trigger,
            correlation_id=correlation_id, kind="too_deep" if too_deep else "unrecordable",
            message=f"the message {why}; it is kept as text (the first levels, shortened) in "
                    "the body's 'unrecordable' field")
        log.error("flow %s: a %s message that %s was dead-lettered as run %s", flow.id, trigger,
                  why, state.run_id)
        return Accepted(state.run_id, state.correlation_id)

    def dead_letter_message(self, flow: Any, body: Any, headers: dict[str, Any], *,
                            trigger: str, kind: str, message: str,
                            correlation_id: str | None = None,
                            request: dict[str, Any] | None = None) -> RunState:
        """Record a message that cannot start a run as a dead-lettered run with its entry
        (*body* already in a form a record holds), so it can be looked at and replayed."""
        state = start(flow, body, headers, trigger=trigger, correlation_id=correlation_id,
                      request=request)
        state.status = "dead_lettered"
        state.error = {"kind": kind, "message": message}
        self.store.create_run(state)
        self.store.save_run(state, dead_letter=DeadLetter.for_run(state))
        observers = self.core.observers
        observers.accepted(state)
        observers.dead_lettered(state)
        observers.finished(state)
        return state

    def publish(self, event: Event) -> list[RunState]:
        """Publish *event* from outside a flow (a bus connector, a test): its subscribers'
        runs, recorded and queued."""
        runs = publish_event(self.core, event)
        if runs:
            self.executor.submit_many(runs)
        return runs

    # -- dead letters --------------------------------------------------------------------------
    def replay(self, entry_id: str, *, start_from: str = "failed-step",
               version: str = "original", body: Any = None, edited: bool = False,
               dry_run: bool = False, who: str | None = None, force: bool = False,
               patch: str | None = None) -> RunState:
        """Replay a dead-letter entry as a new run; *patch* is the text of the expression
        that made *body* (engine/dlq_patch), kept on the audit item."""
        entry = self.store.get_dead_letter(entry_id)
        if entry is None:
            raise dlq.ReplayRefused(f"no dead-letter entry '{entry_id}'")
        current = self.flows.flows.get(entry.flow_id)
        if current is None:
            raise dlq.ReplayRefused(f"flow '{entry.flow_id}' no longer exists (it was deleted or "
                                    "does not load); restore it to replay this entry")
        flow = current if version == "current" else self.versions.get(entry.flow_id,
                                                                      entry.flow_version)
        if flow is None:
            raise dlq.ReplayRefused(f"version {entry.flow_version} of flow '{entry.flow_id}' is "
                                    "not kept; replay with --version current")
        plan = dlq.plan_replay(entry, flow, start_from=start_from,  # type: ignore[arg-type]
                               body=body, edited=edited, force=force)
        if dry_run:
            return dlq.dry_run(self.runner, plan)
        if edited:
            try:
                dlq.check_edited(self.runner, plan)
            except dlq.ReplayRefused as exc:
                dlq.record(entry, "replay_refused", who=who, reason=str(exc),
                           **({"patch": patch} if patch else {}))
                self.store.update_dead_letter(entry)
                raise
        self.versions.remember(flow)
        # the run and the entry's audit are two writes: a process that died between them left
        # the run recorded (and resumed) with the entry still open. The replay's key, the
        # entry and how many replays its audit holds, finds that run again instead of
        # recording a second one for the same replay
        replays = sum(1 for item in entry.audit if item.get("action") == "replay")
        key = ("dlq-replay", f"{entry.id}#{replays + 1}", self.settings.idempotency_ttl)
        holder = self.store.create_run(plan.state, key)
        if holder is not None:
            earlier = self.store.get_run(holder)
            if earlier is not None:
                plan.state = earlier
        dlq.record(entry, "replay", who=who, start_from=start_from, version=flow.version,
                   edited=edited, run_id=plan.state.run_id, result="queued",
                   **({"patch": patch} if patch else {}))
        entry.status = "replaying"
        self.store.update_dead_letter(entry)
        self.core.observers.replayed(entry, plan.state, entry.audit[-1].get("who"))
        self.executor.submit(plan.state, flow.model.queue)
        return plan.state

    def discard(self, entry_id: str, *, who: str | None = None, reason: str = "") -> DeadLetter:
        entry = self.store.get_dead_letter(entry_id)
        if entry is None:
            raise dlq.ReplayRefused(f"no dead-letter entry '{entry_id}'")
        dlq.record(entry, "discard", who=who, reason=reason)
        entry.status = "discarded"
        self.store.update_dead_letter(entry)
        self.core.observers.discarded(entry, entry.audit[-1].get("who"))
        return entry

    def _replay_settled(self, state: RunState) -> bool:
        """For a replay run: whether its result is on the entry's audit trail (written with the
        run's last record, engine/dlq.settle)."""
        entry_id = state.envelope.get("meta", {}).get("replay_of")
        entry = self.store.get_dead_letter(entry_id) if entry_id else None
        return entry is None or any(item.get("run_id") == state.run_id and "finished_at" in item
                                    for item in entry.audit)

    # -- waiting (CLI, tests, demo) ------------------------------------------------------------
    def wait_for(self, run_id: str, timeout: float = 60.0) -> list[RunState]:
        """Wait until the run and every run it spawned are finished; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            tree = self._tree(run_id)
            if tree and all(s.done for s in tree) and self._replay_settled(tree[0]):
                return tree
            if time.monotonic() > deadline:
                return tree
            time.sleep(0.02)

    def _tree(self, run_id: str) -> list[RunState]:
        out: list[RunState] = []
        todo = [run_id]
        while todo:
            state = self.store.get_run(todo.pop(0))
            if state is None:
                continue
            out.append(state)
            todo.extend(state.envelope.get("meta", {}).get("children", []))
        return out
