"""One flowrunner process: settings, loaded flows, store, runner, executor and intake, wired once.

Everything that takes messages in — the CLI, the webhook server, the scheduler, replay — goes
through `App.accept`, which dedupes on the idempotency key, records the run and hands it to the
executor, in that order. The caller answers the sender only after ``accept`` returned.
"""

from __future__ import annotations

import json
import logging
import reprlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import dlq
from engine.envelope import Envelope
from engine.executor import EmbeddedExecutor
from engine.expressions import ExpressionError
from engine.loader import CompiledFlow, FlowSet, Loader
from engine.local import resources_factory
from engine.records import DeadLetter, RunState, start
from engine.refs import Secrets
from engine.reload import FlowWatcher
from engine.runner import Runner
from engine.schemas import SchemaStore
from engine.settings import Settings
from engine.store.base import Store
from engine.store.sqlite import SqliteStore

log = logging.getLogger("flowrunner.app")

#: the text kept of a message too deep to record: the first levels, each shortened
_SHALLOW = reprlib.Repr()
_SHALLOW.maxlevel, _SHALLOW.maxlist, _SHALLOW.maxdict, _SHALLOW.maxstring = 30, 50, 50, 200
_SHALLOW.maxother = 200

if TYPE_CHECKING:
    from engine.celery_executor import CeleryExecutor


@dataclass
class Accepted:
    run_id: str
    correlation_id: str
    duplicate: bool = False


def loader_for(settings: Settings) -> Loader:
    """The loader flows are read with: the configured JSON Schemas and secrets."""
    secrets = Secrets(str(settings.secrets_file) if settings.secrets_file else None)
    return Loader(schemas=SchemaStore(settings.schemas_dir()), secrets=secrets)


class App:
    def __init__(self, settings: Settings, *, store: Store | None = None,
                 flows: FlowSet | None = None, on_step: Any = None):
        self.settings = settings
        self.loader = loader_for(settings)
        self.secrets = self.loader.secrets
        self.flows = flows if flows is not None else self.loader.load_paths([settings.flows])
        #: what steps may use besides their config: the app's home folder, and its Redis
        #: client when state lives there (e.g. X12 control numbers shared by every worker)
        self.services: dict[str, Any] = {"home": settings.home}
        self.runner = Runner(resources_factory(self.secrets, self.services),
                             self.secrets.redactor, on_step=on_step)
        self.executor: EmbeddedExecutor | CeleryExecutor
        if settings.redis_url:  # distributed: state in Redis, runs on Celery workers
            from engine.celery_executor import CeleryExecutor
            from engine.store.redis import RedisStore

            self.store: Store = store or RedisStore(settings.redis_url)
            self.executor = CeleryExecutor(self, settings)
            self.services["redis"] = self.executor.redis
        else:
            self.store = store or SqliteStore(settings.state_db, settings.busy_timeout)
            self.executor = EmbeddedExecutor(self, settings.workers)
        self.executor.on_finished(self._replay_finished)
        self.runner.rate_limiter = self.executor.rate_limiter.take
        self._versions: dict[tuple[str, str], CompiledFlow] = {}
        self._saved_versions: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        for flow in self.flows.flows.values():
            self._versions[(flow.id, flow.version)] = flow
        # flows handed in (tests, flowrun test) are not watched; a flows folder is
        self.watcher = FlowWatcher(self) if flows is None and settings.flows.is_dir() else None

    # -- hot reload ----------------------------------------------------------------------------
    def use_flows(self, flows: FlowSet) -> None:
        """New runs use *flows* from now on; runs in flight keep their versions."""
        with self._lock:
            for flow in flows.flows.values():
                self._versions.setdefault((flow.id, flow.version), flow)
        for flow in flows.flows.values():
            self.remember_version(flow)  # other processes can rebuild the version from its text
        self.flows = flows

    # -- flow versions -------------------------------------------------------------------------
    def remember_version(self, flow: CompiledFlow) -> None:
        key = (flow.id, flow.version)
        if key not in self._saved_versions:
            self.store.save_flow_version(flow.id, flow.version, flow.text)
            self._saved_versions.add(key)

    def flow_version(self, flow_id: str, version: str) -> CompiledFlow | None:
        """The compiled flow of that version: loaded now, or rebuilt from the kept text."""
        with self._lock:
            if (flow_id, version) in self._versions:
                return self._versions[(flow_id, version)]
        text = self.store.get_flow_version(flow_id, version)
        if text is None:
            return None
        # named beside today's flow file, so it finds the same connections/ folder
        current = self.flows.flows.get(flow_id)
        folder = Path(current.file).parent if current else self.settings.flows
        flow, _ = self.loader.load_file(folder / f"{flow_id}@{version}.yaml",
                                        text.encode("utf-8"))
        if flow is None:
            return None
        flow.version = version  # the kept text hashes to it; the name must not change that
        with self._lock:
            self._versions[(flow_id, version)] = flow
        return flow

    # -- intake --------------------------------------------------------------------------------
    def accept(self, flow: CompiledFlow, body: Any, headers: dict[str, Any] | None = None, *,
               trigger: str = "manual", correlation_id: str | None = None,
               request: dict[str, Any] | None = None) -> Accepted:
        flow = self.flows.flows.get(flow.id, flow)  # the newest version (hot reload)
        self.remember_version(flow)
        try:
            state = start(flow, body, headers, trigger=trigger, correlation_id=correlation_id,
                          request=request)
            idempotency = None
            if flow.idempotency_key is not None:
                key = self._idempotency_key(flow, state)
                if key:
                    idempotency = (flow.id, key, self.settings.idempotency_ttl)
            existing = self.store.create_run(state, idempotency)
        except RecursionError:
            # a poll record or a hand-off nested deeper than anything can record (the webhook
            # server refuses such bodies with a 400 before this): keep what can be kept in the
            # dead-letter queue, so one bad record neither vanishes nor blocks its poll
            return self._dead_letter_unrecordable(flow, body, headers, trigger, correlation_id)
        if existing is not None:
            original = self.store.get_run(existing)
            if original is not None and original.status == "queued":
                # the first delivery may have been answered 503 after its run was recorded but
                # before it reached the queue (the broker went away in between); the sender's
                # retry sends it now. A run already queued is still advanced once (its lease).
                self.executor.submit(existing, flow.model.queue)
            return Accepted(existing, original.correlation_id if original else "", True)
        self.executor.submit(state.run_id, flow.model.queue)
        return Accepted(state.run_id, state.correlation_id)

    def _dead_letter_unrecordable(self, flow: CompiledFlow, body: Any,
                                  headers: dict[str, Any] | None, trigger: str,
                                  correlation_id: str | None) -> Accepted:
        text = _SHALLOW.repr(body)
        try:
            kept_headers = json.loads(json.dumps(headers or {}, default=str))
        except (RecursionError, ValueError):
            kept_headers = {}
        state = start(flow, {"unrecordable": text}, kept_headers, trigger=trigger,
                      correlation_id=correlation_id)
        state.status = "dead_lettered"
        state.error = {"kind": "too_deep", "message": "the message is nested too deeply to "
                       "record; it is kept as text (the first levels, shortened) in the body's "
                       "'unrecordable' field"}
        self.store.create_run(state)
        self.store.save_run(state, dead_letter=dlq.entry_for(state))
        log.error("flow %s: a %s message nested too deeply to record was dead-lettered as run %s",
                  flow.id, trigger, state.run_id)
        return Accepted(state.run_id, state.correlation_id)

    @staticmethod
    def _idempotency_key(flow: CompiledFlow, state: RunState) -> str | None:
        assert flow.idempotency_key is not None
        try:
            value = flow.idempotency_key.evaluate(Envelope.from_dict(state.envelope))
        except ExpressionError:
            return None
        return None if value in (None, "") else str(value)

    # -- dead letters --------------------------------------------------------------------------
    def replay(self, entry_id: str, *, start_from: str = "failed-step",
               version: str = "original", body: Any = None, edited: bool = False,
               dry_run: bool = False, who: str | None = None, force: bool = False) -> RunState:
        entry = self.store.get_dead_letter(entry_id)
        if entry is None:
            raise dlq.ReplayRefused(f"no dead-letter entry '{entry_id}'")
        current = self.flows.flows.get(entry.flow_id)
        if current is None:
            raise dlq.ReplayRefused(f"flow '{entry.flow_id}' no longer exists (it was deleted or "
                                    "does not load); restore it to replay this entry")
        flow = current if version == "current" else self.flow_version(entry.flow_id,
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
                dlq.record(entry, "replay_refused", who=who, reason=str(exc))
                self.store.update_dead_letter(entry)
                raise
        self.remember_version(flow)
        self.store.create_run(plan.state)
        dlq.record(entry, "replay", who=who, start_from=start_from, version=flow.version,
                   edited=edited, run_id=plan.state.run_id, result="queued")
        entry.status = "replaying"
        self.store.update_dead_letter(entry)
        self.executor.submit(plan.state.run_id, flow.model.queue)
        return plan.state

    def discard(self, entry_id: str, *, who: str | None = None, reason: str = "") -> DeadLetter:
        entry = self.store.get_dead_letter(entry_id)
        if entry is None:
            raise dlq.ReplayRefused(f"no dead-letter entry '{entry_id}'")
        dlq.record(entry, "discard", who=who, reason=reason)
        entry.status = "discarded"
        self.store.update_dead_letter(entry)
        return entry

    def _replay_finished(self, state: RunState) -> None:
        entry_id = state.envelope.get("meta", {}).get("replay_of")
        if not entry_id:
            return
        entry = self.store.get_dead_letter(entry_id)
        if entry is None:
            return
        for item in reversed(entry.audit):
            if item.get("run_id") == state.run_id:
                item["result"] = state.status
                item["finished_at"] = time.time()
                break
        entry.status = "replayed" if state.status == "succeeded" else "open"
        self.store.update_dead_letter(entry)

    def _replay_settled(self, state: RunState) -> bool:
        """For a replay run: whether its result is on the entry's audit trail yet (the listener
        writes it just after the run is recorded finished)."""
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
