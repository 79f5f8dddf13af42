"""Stuck runs and poison runs on Celery workers: the two ways a dead worker can strand a run.

- **Stuck.** A run whose worker died is normally delivered again by the broker (its task was
  never acknowledged). When that copy is gone too — Redis restarted without it, or a visibility
  timeout longer than anyone wants to wait — nothing would look at the run again. Every delivery
  that takes a run's lease enters it in ``{prefix}inflight`` and leaves when it returns, so a run
  still there without a lease (a live worker renews it every third of its lease) lost its worker.
  The `Reaper`, in every worker's main process, queues such runs again every
  ``FLOWRUN_CELERY_REAP_INTERVAL`` seconds; one worker sweeps per interval. A reaped run that the
  broker redelivers as well is harmless: the second delivery waits for the lease, then finds the
  run done.
- **Stranded in the queue.** Kombu's Redis transport takes a task off the queue and notes it
  as unacknowledged in two steps (and restores one the same way): a worker or Redis killed
  between the two loses the task, and its run stays ``queued`` with nothing to deliver it. The
  sweep also queues again every run still ``queued`` longer than ``stranded_after`` (twice the
  visibility timeout, by default, when the broker's own redelivery would long have come) and not
  in a worker, once per such period: a run merely waiting in a long backlog gets one harmless
  extra task (it finds its run taken or done), a stranded one gets going again.
- **Poison.** A run whose step kills the worker process (memory exhausted, a crash in a native
  library, ``os._exit``) would be delivered again and again, taking a worker down each time.
  The store counts the deliveries of each run that started and did not return, so retries and
  waits for a slot or a token never count; only deliveries that died with their worker do. When
  ``FLOWRUN_CELERY_MAX_DELIVERIES`` (5) have died, the next delivery dead-letters the run with
  kind ``poison`` instead of executing it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from engine.periodic import Periodic
from engine.records import RunState
from engine.store.redis import RedisStore

log = logging.getLogger("flowrunner.reaper")


def poison(state: RunState, died: int, step: str | None) -> None:
    """Mark *state* dead-lettered because *died* deliveries in a row killed their worker.

    *step* is where the run resumes (its last checkpoint): the culprit is that step or one of
    the pure steps after it, and a replay from the failed step starts there."""
    where = f", each time after resuming at step '{step}'" if step else ""
    state.status = "dead_lettered"
    state.error = {
        "message": f"the run stopped its worker {died} times in a row{where} (the worker process "
                   "died: out of memory, a crash in a native library, a kill); dead-lettered so "
                   "it stops taking workers down. Fix the cause, then replay it.",
        "kind": "poison", "step": step, "deliveries": died}


class Reaper(Periodic):
    """Queues again the runs in a worker whose lease has expired: their worker died. The
    deliveries in flight, their counts and the leases are the store's (`RedisStore`)."""

    duty = "stuck-run sweep"

    def __init__(self, store: RedisStore, requeue: Callable[[str], None], *, identity: str,
                 interval: float = 30.0, grace: float = 60.0, batch: int = 1000,
                 stranded_after: float = 600.0):
        super().__init__(interval)
        self.store = store
        self.requeue = requeue
        self.identity = identity
        # only runs in a worker longer than this are looked at: covers clocks that disagree
        self.grace = grace
        self.batch = batch
        self.stranded_after = stranded_after

    def leased(self, run_id: str) -> bool:
        return self.store.lock_owner(f"run:{run_id}") is not None

    def sweep(self) -> list[str]:
        """Queue every stuck run again now; their ids. One worker sweeps per interval."""
        store = self.store
        if not store.acquire_lock("reaper", self.identity, self.interval * 0.9):
            return []
        reaped = []
        for run_id in store.deliveries_started_before(time.time() - self.grace, self.batch):
            if self.leased(run_id):
                continue  # a long step: its worker is alive and renews the lease
            log.warning("run %s was in a worker that stopped (its lease expired); queued again "
                        "to resume from its last checkpoint", run_id)
            store.touch_delivery(run_id)
            self.requeue(run_id)
            reaped.append(run_id)
        for run_id in store.runs_queued_before(time.time() - self.stranded_after, self.batch):
            if (store.in_flight(run_id) or self.leased(run_id)
                    or not store.claim_requeue(run_id, self.stranded_after)):
                continue
            log.warning("run %s has been queued for over %.0f s with no worker on it (its task "
                        "may have been lost by the broker); queued again", run_id,
                        self.stranded_after)
            self.requeue(run_id)
            reaped.append(run_id)
        return reaped

    def tick(self) -> None:
        self.sweep()
