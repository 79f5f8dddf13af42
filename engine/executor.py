"""The embedded executor: worker threads plus a due-time scheduler, over the store.

A run is processed by one worker thread at a time: the runner advances it, and the store saves
the result together with its dead-letter entry and the runs it spawned. A run whose retry is due
later waits in the scheduler's heap — no worker sleeps through a back-off. On start, every run
the store holds as queued, running or waiting for a retry is resumed, so killing the process
loses nothing that was recorded.

Limits hold within the process: a flow's ``concurrency: N`` lets N of its runs be in steps at
once — the next one waits in the flow's line (no thread blocked) and is queued again when a run
of the flow finishes; a step's ``rate_limit:`` takes tokens from an in-process bucket.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine import dlq
from engine.envelope import Envelope
from engine.limits import LocalBucket
from engine.records import RunState, start

if TYPE_CHECKING:
    from engine.app import App

log = logging.getLogger("flowrunner.executor")


class EmbeddedExecutor:
    def __init__(self, app: App, workers: int = 4):
        self.app = app
        self.workers = workers
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running = False
        self._busy = 0
        self._inflight: set[str] = set()
        self._listeners: list[Callable[[RunState], None]] = []
        self._in_steps: dict[str, int] = {}  # runs of each concurrency-limited flow in steps
        self._waiting: dict[str, deque[str]] = {}  # and the runs waiting for one to finish
        self.rate_limiter = LocalBucket()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, resume: bool = True) -> None:
        if self._running:
            return
        self._running = True
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"flowrun-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        scheduler = threading.Thread(target=self._schedule_loop, name="flowrun-scheduler",
                                     daemon=True)
        scheduler.start()
        self._threads.append(scheduler)
        if resume:
            for state in self.app.store.active_runs():
                if state.status == "retrying" and state.due_at:
                    self.schedule(state.run_id, state.due_at)
                else:
                    self.submit(state.run_id)
        if self.app.watcher is not None:
            self.app.watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; runs not finished stay recorded and resume on the next start."""
        if self.app.watcher is not None:
            self.app.watcher.stop()
        with self._cond:
            self._running = False
            self._cond.notify_all()
        for _ in range(self.workers):
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def on_finished(self, listener: Callable[[RunState], None]) -> None:
        self._listeners.append(listener)

    # -- work ----------------------------------------------------------------------------------
    def submit(self, run_id: str, lane: str | None = None) -> None:
        """Queue the run; *lane* (the flow's ``queue:``) matters to Celery workers only."""
        self._queue.put(run_id)

    def schedule(self, run_id: str, due_at: float, lane: str | None = None) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due_at, run_id))
            self._cond.notify_all()

    def _schedule_loop(self) -> None:
        with self._cond:
            while self._running:
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    _, run_id = heapq.heappop(self._heap)
                    self._queue.put(run_id)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout=wait)

    def _work(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            with self._cond:
                self._busy += 1
            try:
                self.process(run_id)
            except Exception:
                # the run stays recorded as it was and is resumed on the next start
                log.exception("run %s could not be processed", run_id)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return self._queue.empty() and self._busy == 0

    def pending_retries(self) -> int:
        with self._cond:
            return len(self._heap)

    def process(self, run_id: str) -> RunState | None:
        """Advance one run as far as it goes now and record the outcome.

        A run can be submitted twice (accepted before `start` resumed it, or scheduled again
        by a duplicate); one worker at a time advances it, and a retry that is not due yet
        stays in the scheduler instead of being attempted early.
        """
        with self._cond:
            if run_id in self._inflight:
                return None  # another worker has it and records (or reschedules) it
            self._inflight.add(run_id)
        try:
            return self._process(run_id)
        finally:
            with self._cond:
                self._inflight.discard(run_id)

    def _process(self, run_id: str) -> RunState | None:
        app = self.app
        state = app.store.get_run(run_id)
        if state is None or state.done:
            return state
        if state.status == "retrying" and state.due_at is not None and state.due_at > time.time():
            with self._cond:
                if all(queued != run_id for _, queued in self._heap):
                    self.schedule(run_id, state.due_at)
            return state
        flow = app.flow_version(state.flow_id, state.flow_version)
        if flow is None:
            state.status = "failed"
            state.error = {"message": f"flow '{state.flow_id}' version {state.flow_version} is "
                           "no longer available", "kind": "flow_missing"}
            app.store.save_run(state)
            return state
        limit = flow.model.concurrency
        if limit is not None and not self._take_slot(flow.id, run_id, limit):
            return state  # queued again by the run of this flow that finishes next
        try:
            app.runner.advance(flow, state, checkpoint=app.store.save_run)
            children = spawn_children(app, state)
            entry = dlq.entry_for(state) if state.status == "dead_lettered" else None
            app.store.save_run(state, dead_letter=entry, children=children)
        finally:
            if limit is not None:
                self._free_slot(flow.id)
        for child in children:
            self.submit(child.run_id)
        if state.status == "retrying" and state.due_at is not None:
            self.schedule(state.run_id, state.due_at)
        if state.done:
            for listener in self._listeners:
                listener(state)
        return state

    def _take_slot(self, flow_id: str, run_id: str, limit: int) -> bool:
        with self._cond:
            if self._in_steps.get(flow_id, 0) >= limit:
                self._waiting.setdefault(flow_id, deque()).append(run_id)
                return False
            self._in_steps[flow_id] = self._in_steps.get(flow_id, 0) + 1
            return True

    def _free_slot(self, flow_id: str) -> None:
        with self._cond:
            self._in_steps[flow_id] -= 1
            waiting = self._waiting.get(flow_id)
            if waiting:
                self._queue.put(waiting.popleft())

    def in_steps(self, flow_id: str) -> int:
        """Runs of the flow in steps now (tests and the console)."""
        with self._cond:
            return self._in_steps.get(flow_id, 0)


def spawn_children(app: App, state: RunState) -> list[RunState]:
    """The runs *state* spawned (split items, hand-offs), ready to record with it.

    A hand-off to a flow that is not loaded dead-letters the parent instead: the message stays
    with the run that has it, never lost between two flows.
    """
    children = []
    for spawn in state.spawn:
        # split items go on through the rest of the parent's version (their position indexes
        # its steps); a hand-off starts the target's current version
        target = (app.flow_version(spawn.flow, state.flow_version) if spawn.flow == state.flow_id
                  else app.flows.flows.get(spawn.flow))
        if target is None:
            state.status = "dead_lettered"
            state.error = {"message": f"hand-off target flow '{spawn.flow}' is not loaded",
                           "kind": "flow_missing", "step": None}
            return []
        envelope = Envelope.from_dict(spawn.envelope)
        trigger = "split" if spawn.flow == state.flow_id else "handoff"
        child = start(target, envelope.body, envelope.headers, trigger=trigger,
                      correlation_id=state.correlation_id, position=spawn.position,
                      vars=envelope.vars, parent_run_id=state.run_id)
        if "split_index" in envelope.meta:
            child.envelope["meta"]["split_index"] = envelope.meta["split_index"]
        app.remember_version(target)
        children.append(child)
    state.spawn = []
    state.envelope.setdefault("meta", {})["children"] = [c.run_id for c in children]
    return children
