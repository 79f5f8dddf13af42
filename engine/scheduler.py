"""The scheduler: fires every poll flow at its slots, once, whatever the number of processes.

Due-time based: the loop sleeps until the earliest of the next slot, a scheduled retry, a file's
second look or the lease renewal — never polling the clock. Three guards make a slot fire once:

* one active scheduler — a lease-held lock (``scheduler``) in the store; the others stand by and
  take over when the lease runs out (the holder died or was paused);
* a claim per slot — ``slot:<flow>:<time>``, taken atomically in the store, then the flow's
  last fired slot is read again: a scheduler that was paused (SIGSTOP) between its checks and
  resumes late finds the slot claimed or already past, and does not fire it again;
* one poll per flow at a time — a lease-held ``poll:<flow>`` lock; a slot that comes while the
  previous poll still runs is skipped (the next poll reads on from the cursor).

``missed: skip`` leaves a slot alone once it is late (past a grace period: after downtime);
``missed: once`` fires the latest missed slot once. Earlier missed slots never fire: the cursor
makes one poll catch up on all of them. A failed poll is retried per the trigger's retry policy
at its due time, from the same cursor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.poll import cursor as cursors
from engine.poll.job import PollJob, Result
from engine.poll.schedule import slot_text
from engine.retry import next_delay
from engine.store.base import StoreError

if TYPE_CHECKING:
    from engine.app import App
    from engine.compiled import CompiledFlow

log = logging.getLogger("flowrunner.scheduler")

LEADER_LOCK = "scheduler"
#: a claim must outlive the longest pause of a scheduler that read "not fired yet" before it
MIN_CLAIM_TTL = 3600.0
MAX_GRACE = 300.0


def schedule_name(flow_id: str) -> str:
    return f"schedule:{flow_id}"


@dataclass
class _Job:
    flow: CompiledFlow
    job: PollJob
    running: bool = False
    retry_at: float | None = None
    retry_attempt: int = 1
    retry_slot: float = 0.0
    first_attempt_at: float = 0.0
    recheck_at: float | None = None
    last_slot: float | None = None
    skipped: set[float] = field(default_factory=set)


@dataclass
class Fired:
    """What one tick started (tests and logs)."""

    flow: str
    slot: float
    attempt: int
    reason: str  # slot, retry or recheck


class Scheduler:
    def __init__(self, app: App, *, clock: Callable[[], float] = time.time,
                 owner: str | None = None, lease: float = 15.0, workers: int = 4,
                 inline: bool = False, single_leader: bool = True,
                 start_executor: bool = True):
        self.app = app
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.single_leader = single_leader
        self.start_executor = start_executor
        self.jobs = {f.id: _Job(f, PollJob(app, f, self.owner, lease, clock))
                     for f in app.flows.flows.values() if f.poll is not None}
        self._pool = None if inline else ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(self.jobs) or 1)), thread_name_prefix="poll")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._leader = False
        self._renew_at = 0.0
        self._claims: deque[tuple[float, str]] = deque()
        self._executor_started = False

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Tick at every due time until *stop* is set."""
        while not stop.is_set():
            try:
                self.tick()
            except StoreError as exc:  # the store is away: try again shortly, do not die
                log.error("scheduler: %s", exc)
                self._leader = False
            self._wake.clear()
            if stop.is_set():
                break
            # woken early by a finished poll (a retry or second look to plan) or by stop
            self._wake.wait(max(0.0, self.next_due() - self.clock()))

    def stop_waiting(self) -> None:
        self._wake.set()

    def next_due(self) -> float:
        """When the loop must tick next: a poll due, or the lease to renew (or to try for)."""
        return min(self.next_poll(), self.clock() + self.lease / 3)

    def next_poll(self) -> float:
        """The earliest next slot, retry or second look of any flow."""
        now = self.clock()
        due = [now + 3600.0] if not self.jobs else []
        with self._lock:
            for job in self.jobs.values():
                due.append(job.flow.poll.schedule.next_after(now))
                due.extend(t for t in (job.retry_at, job.recheck_at) if t is not None)
        return min(due)

    def tick(self) -> list[Fired]:
        """One pass: start every poll that is due now (as the active scheduler only)."""
        if self.single_leader and not self._leadership():
            return []
        now = self.clock()
        fired: list[Fired] = []
        for job in self.jobs.values():
            slot = self._claim_due_slot(job, now)
            with self._lock:
                if slot is not None:
                    start = Fired(job.flow.id, slot, 1, "slot")
                elif job.retry_at is not None and job.retry_at <= now and not job.running:
                    start = Fired(job.flow.id, job.retry_slot, job.retry_attempt, "retry")
                elif job.recheck_at is not None and job.recheck_at <= now and not job.running:
                    start = Fired(job.flow.id, job.last_slot or now, 1, "recheck")
                else:
                    continue
                if job.running:
                    self._skip(job, start.slot, "the previous poll of this flow is still running")
                    continue
                job.running = True
                job.recheck_at = None
                if start.reason != "retry":
                    job.retry_at, job.first_attempt_at = None, now
            fired.append(start)
            self._start(job, start)
        self._forget_old_claims()
        return fired

    def close(self) -> None:
        """Wait for running polls, give up leadership, stop the executor."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._leader:
            try:
                self.app.store.release_lock(LEADER_LOCK, self.owner)
            except StoreError:
                log.warning("scheduler lock not released; it expires by itself")
            self._leader = False
        if self._executor_started:
            self.app.executor.stop()

    # -- leadership ----------------------------------------------------------------------------
    def _leadership(self) -> bool:
        if self._leader and time.monotonic() < self._renew_at:
            return True
        held = self.app.store.acquire_lock(LEADER_LOCK, self.owner, self.lease)
        if held and not self._leader:
            log.warning("scheduler %s is now the active scheduler", self.owner)
            if self.start_executor and not self._executor_started:
                # runs a previous active scheduler took in but did not finish resume here
                self.app.executor.start(resume=True)
                self._executor_started = True
        elif not held and self._leader:
            log.warning("scheduler %s lost the lease; standing by", self.owner)
        self._leader = held
        self._renew_at = time.monotonic() + self.lease / 3
        return held

    @property
    def leader(self) -> bool:
        return self._leader

    # -- slots ---------------------------------------------------------------------------------
    def _claim_due_slot(self, job: _Job, now: float) -> float | None:
        schedule = job.flow.poll.schedule
        due = schedule.latest_at_or_before(now)
        last = self._last_fired(job.flow.id)
        if last is not None and due <= last:
            return None
        grace = min(max(schedule.interval_hint / 2, 1.0), MAX_GRACE)
        if now - due > grace and job.flow.poll.trigger.missed == "skip":
            if due not in job.skipped:  # say so once, not on every tick
                job.skipped = {due}
                log.warning("%s: slot %s missed (late by %.0f s) and skipped (missed: skip)",
                            job.flow.id, slot_text(due), now - due)
                self._status(job, skipped_slot=slot_text(due), skipped_reason="missed")
            return None
        name = f"slot:{job.flow.id}:{slot_text(due)}"
        ttl = max(MIN_CLAIM_TTL, 3 * schedule.interval_hint)
        if not self.app.store.acquire_lock(name, self.owner, ttl):
            return None  # another scheduler fired it
        # read again after the claim: a claim that expired while its scheduler was paused must
        # not let a slot fire twice (the last fired slot only moves forward)
        last = self._last_fired(job.flow.id)
        if last is not None and due <= last:
            return None
        self.app.store.set_cursor(schedule_name(job.flow.id), repr(due))
        self._claims.append((time.time() + ttl, name))
        job.last_slot = due
        return due

    def _last_fired(self, flow_id: str) -> float | None:
        text = self.app.store.get_cursor(schedule_name(flow_id))
        return float(text) if text else None

    def _forget_old_claims(self) -> None:
        # expired claims block nothing; deleting ours keeps the embedded locks table small
        while self._claims and self._claims[0][0] < time.time():
            _, name = self._claims.popleft()
            try:
                self.app.store.release_lock(name, self.owner)
            except StoreError:
                break

    # -- polls ---------------------------------------------------------------------------------
    def _start(self, job: _Job, fired: Fired) -> None:
        log.info("poll %s: slot %s attempt %d (%s)", fired.flow, slot_text(fired.slot),
                 fired.attempt, fired.reason)
        if self._pool is None:
            self._finished(job, fired, job.job.run(fired.slot, fired.attempt))
            return
        future = self._pool.submit(job.job.run, fired.slot, fired.attempt)

        def done(f: Future[Result]) -> None:
            try:
                result = f.result()
            except Exception:  # a bug in a source must not stop the flow's schedule
                log.exception("poll of %s crashed", fired.flow)
                result = Result()
            self._finished(job, fired, result)

        future.add_done_callback(done)

    def _finished(self, job: _Job, fired: Fired, result: Result) -> None:
        now = self.clock()
        with self._lock:
            job.running = False
            if result.busy:
                self._skip(job, fired.slot, "another scheduler is still polling this flow")
            elif result.error is not None:
                delay = next_delay(job.flow.poll.retry, result.error, fired.attempt,
                                   now - job.first_attempt_at)
                if delay is None:
                    job.retry_at = None
                    log.error("poll of %s gave up after attempt %d: %s; the next slot reads "
                              "from the same cursor", job.flow.id, fired.attempt,
                              result.error.message)
                else:
                    job.retry_at = now + delay
                    job.retry_attempt = fired.attempt + 1
                    job.retry_slot = fired.slot
                    self._status(job, retry_at=job.retry_at)
            else:
                job.retry_at = None
                if result.outcome is not None and result.outcome.again_at is not None:
                    job.recheck_at = result.outcome.again_at
        self._wake.set()

    def _skip(self, job: _Job, slot: float, reason: str) -> None:
        log.warning("%s: slot %s skipped: %s", job.flow.id, slot_text(slot), reason)
        self._status(job, skipped_slot=slot_text(slot), skipped_reason=reason)

    def _status(self, job: _Job, **changes: object) -> None:
        try:
            cursors.write_status(self.app.store, job.flow.id, **changes)
        except StoreError:
            log.warning("poll status of %s not saved", job.flow.id, exc_info=True)
