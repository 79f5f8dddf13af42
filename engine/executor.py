"""The embedded executor: worker threads plus a due-time scheduler, over the store.

A run is processed by one worker thread at a time: the runner advances it, and the store saves
the result together with its dead-letter entry and the runs it spawned. A run whose retry is due
later waits in the scheduler's heap — no worker sleeps through a back-off. On start, every run
the store holds as queued, running or waiting for a retry is resumed, so killing the process
loses nothing that was recorded.

Limits hold within the process: a flow's ``concurrency: N`` lets N of its runs be in steps at
once — the next one waits in the flow's line (no thread blocked) and is queued again when a run
of the flow finishes; a step's ``rate_limit:`` takes tokens from an in-process bucket. Subscriber
runs with an ordering key wait their turn in their line the same way (engine/ordering).
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from engine.limits import LocalBucket, RateLimiter
from engine.ordering import LocalLines
from engine.periodic import Periodic
from engine.processing import Core
from engine.records import RunState
from engine.store.base import Store, StoreError

log = logging.getLogger("flowrunner.executor")

#: run ids this process finished lately: a stale in-memory copy of one is never advanced again
RECENT = 10_000
#: seconds before a run whose store was away is looked at again
STORE_RETRY = 5.0
#: most runs kept in memory while they wait for a worker thread; past it (a backlog), runs wait
#: as ids and are read back from the store when their turn comes
IN_HAND = 10_000
#: seconds a worker thread added under load waits for work before it ends
SPARE_IDLE = 5.0


class Executor(Protocol):
    """What intake, replay and the CLI hand runs to: embedded threads or Celery workers."""

    @property
    def rate_limiter(self) -> RateLimiter:
        """The token buckets of the steps' and webhooks' rate limits."""

    def start(self, resume: bool = True) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def submit(self, run: RunState | str, lane: str | None = None) -> None:
        """Queue a run: its state in hand (nothing read back) or its id."""

    def submit_many(self, runs: list[RunState]) -> None:
        """Queue runs recorded together (one group of intake)."""

    def queue_messages(self, runs: list[RunState]) -> list[tuple[str, str]] | None:
        """Broker messages that queue *runs*, for the store to write in the same write as
        their records (then `submit_many` is not called); None to be given the runs instead."""

    def queued(self, runs: list[RunState]) -> None:
        """*runs* were queued by the store's write of `queue_messages`' messages."""

    def schedule(self, run_id: str, due_at: float, lane: str | None = None) -> None: ...

    def process(self, run_id: str) -> RunState | None: ...


class EmbeddedExecutor:
    """*workers* threads always; up to *max_workers* while runs wait for a thread and every
    thread is in a run (steps waiting on a partner or a broker: the GIL is free meanwhile).
    A thread added under load ends after `SPARE_IDLE` seconds without work."""

    def __init__(self, core: Core, store: Store, workers: int = 4, *,
                 rate_limiter: RateLimiter | None = None, watcher: Periodic | None = None,
                 max_workers: int | None = None):
        self.core, self.store, self.workers = core, store, workers
        self.max_workers = max(workers, max_workers or workers)
        self._alive = 0  # worker threads running (grows with the load, see _put)
        self.watcher = watcher
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running = False
        self._busy = 0
        self._inflight: set[str] = set()
        # states handed over in memory (intake, children): advanced without reading them back
        self._in_hand: dict[str, RunState] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._in_steps: dict[str, int] = {}  # runs of each concurrency-limited flow in steps
        self._waiting: dict[str, deque[str]] = {}  # and the runs waiting for one to finish
        self.rate_limiter: RateLimiter = rate_limiter or LocalBucket()
        self.lines = LocalLines()  # ordered subscriber runs, joined when they are published
        core.events.ordering = self.lines

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, resume: bool = True) -> None:
        if self._running:
            return
        self._running = True
        with self._cond:
            for _ in range(self.workers):
                self._add_worker(spare=False)
        scheduler = threading.Thread(target=self._schedule_loop, name="flowrun-scheduler",
                                     daemon=True)
        scheduler.start()
        self._threads.append(scheduler)
        if resume:
            active = self.store.active_runs()
            self.lines.register(active)  # in sequence order, before any of them is queued
            for state in active:
                if state.status == "retrying" and state.due_at:
                    self.schedule(state.run_id, state.due_at)
                else:
                    self.submit(state.run_id)
        if self.watcher is not None:
            self.watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; runs not finished stay recorded and resume on the next start."""
        if self.watcher is not None:
            self.watcher.stop()
        with self._cond:
            self._running = False
            self._cond.notify_all()
            alive = self._alive
        for _ in range(alive):
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def on_finished(self, listener: Callable[[RunState], None]) -> None:
        self.core.on_finished(listener)

    # -- work ----------------------------------------------------------------------------------
    def submit(self, run: RunState | str, lane: str | None = None) -> None:
        """Queue the run; *lane* (the flow's ``queue:``) matters to Celery workers only."""
        if isinstance(run, RunState):
            with self._cond:
                if run.run_id not in self._finished and len(self._in_hand) < IN_HAND:
                    self._in_hand[run.run_id] = run
            run = run.run_id
        self._put(run)

    def submit_many(self, runs: list[RunState]) -> None:
        for run in runs:
            self.submit(run)

    def queue_messages(self, runs: list[RunState]) -> None:
        return None  # the queue is in this process

    def queued(self, runs: list[RunState]) -> None:
        pass  # never asked: there are no messages to write

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
                    self._put(run_id, locked=True)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(timeout=wait)

    def _put(self, run_id: str, *, locked: bool = False) -> None:
        """Queue *run_id*; add a worker thread when every one is in a run (up to max_workers).
        *locked*: the caller holds ``_cond``."""
        self._queue.put(run_id)
        if self.max_workers > self.workers:
            if locked:
                self._grow()
            else:
                with self._cond:
                    self._grow()

    def _grow(self) -> None:
        if (self._running and self._alive < self.max_workers
                and self._busy + self._queue.qsize() > self._alive):
            self._add_worker(spare=True)

    def _add_worker(self, *, spare: bool) -> None:
        """Start a worker thread (the caller holds ``_cond``)."""
        thread = threading.Thread(target=self._work, args=(spare,), daemon=True,
                                  name=f"flowrun-worker-{len(self._threads)}")
        self._alive += 1
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _work(self, spare: bool = False) -> None:
        while True:
            try:
                run_id = self._queue.get(timeout=SPARE_IDLE if spare else None)
            except queue.Empty:
                with self._cond:
                    if self._alive > self.workers:  # the load went: this thread ends
                        self._alive -= 1
                        return
                continue
            if run_id is None:
                with self._cond:
                    self._alive -= 1
                return
            with self._cond:
                self._busy += 1
                # a run queued while this thread was between taking and counting is seen here
                if self.max_workers > self.workers:
                    self._grow()
            try:
                self.process(run_id)
            except StoreError as exc:
                # the store is away (a database restarting, a file locked): the run stays
                # recorded as it was, at its last checkpoint; look at it again shortly
                log.error("run %s could not be processed (%s); trying again in %g s", run_id,
                          exc, STORE_RETRY)
                self.schedule(run_id, time.time() + STORE_RETRY)
            except Exception:
                # the run stays recorded as it was and is resumed on the next start
                log.exception("run %s could not be processed", run_id)
            finally:
                with self._cond:  # nobody waits for this: the scheduler wakes for due runs only
                    self._busy -= 1

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
            state = self._in_hand.pop(run_id, None)
        try:
            if state is None:
                state = self.store.get_run(run_id)
            if state is None:
                return None
            self._process(state)
            if state.done:
                turn = self.lines.leave(state)  # the next run of its line, if it was parked
                if turn is not None:
                    self._put(turn)
            return state
        finally:
            with self._cond:
                self._inflight.discard(run_id)

    def _process(self, state: RunState) -> RunState:
        if state.done:
            return state
        if state.status == "retrying" and state.due_at is not None and state.due_at > time.time():
            with self._cond:
                if all(queued != state.run_id for _, queued in self._heap):
                    self.schedule(state.run_id, state.due_at)
            return state
        flow = self.core.flow_of(state)
        if flow is None:
            return state
        if not self.lines.enter(state):
            return state  # queued again when the run before it in its line ends
        limit = flow.model.concurrency
        if limit is not None and not self._take_slot(flow.id, state.run_id, limit):
            return state  # queued again by the run of this flow that finishes next
        try:
            children = self.core.run(flow, state)
        finally:
            if limit is not None:
                self._free_slot(flow.id)
        self.submit_many(children)
        if state.status == "retrying" and state.due_at is not None:
            with self._cond:
                self._in_hand[state.run_id] = state  # as recorded: the retry reads nothing
            self.schedule(state.run_id, state.due_at)
        if state.done:
            with self._cond:
                self._finished[state.run_id] = None
                if len(self._finished) > RECENT:
                    self._finished.popitem(last=False)
            self.core.finished(state)
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
                self._put(waiting.popleft(), locked=True)

    def in_steps(self, flow_id: str) -> int:
        """Runs of the flow in steps now (tests and the console)."""
        with self._cond:
            return self._in_steps.get(flow_id, 0)
