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
  `Deliveries` counts the deliveries of each run that started and did not return, so retries and
  waits for a slot or a token never count; only deliveries that died with their worker do. When
  ``FLOWRUN_CELERY_MAX_DELIVERIES`` (5) have died, the next delivery dead-letters the run with
  kind ``poison`` instead of executing it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from engine.periodic import Periodic
from engine.records import RunState
from engine.store.base import Store

log = logging.getLogger("flowrunner.reaper")


# KEYS: lock, run record, deliveries, in flight. ARGV: owner, lease ms, run id, now.
# Takes the run's lease (the owner may renew its own), counts the delivery and reads the record:
# one round trip instead of three, on every run.
BEGIN = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local count = redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
return {count, redis.call('HGET', KEYS[2], 'data') or ''}
"""

# KEYS: lock, deliveries, in flight. ARGV: owner, run id. The delivery returned: forget it.
END = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""


class Deliveries:
    """Runs in a worker now (``{prefix}inflight``, scored by start) and, per run, how many of
    its deliveries started without returning (``{prefix}deliveries``).

    `begin` and `end` also take and release the run's lease and read its record, with the key
    layout of `engine.store.redis.RedisStore` (``lock:run:<id>``, ``run:<id>``): the
    distributed executor only runs on that store, and the three together are one round trip.
    """

    def __init__(self, client: redis.Redis, prefix: str = "flowrun:"):
        self.client = client
        self.prefix = prefix
        self.inflight_key, self.count_key = f"{prefix}inflight", f"{prefix}deliveries"
        self._begin = client.register_script(BEGIN)
        self._end = client.register_script(END)

    def begin(self, run_id: str, owner: str, lease: float) -> tuple[int, str | None] | None:
        """Take the run's lease for *owner* and enter the delivery: None when another
        delivery holds the lease, else (deliveries before this one that died, run record)."""
        p = self.prefix
        out = self._begin(keys=[f"{p}lock:run:{run_id}", f"{p}run:{run_id}", self.count_key,
                                self.inflight_key],
                          args=[owner, max(1, int(lease * 1000)), run_id, repr(time.time())])
        if not out:
            return None
        count, record = out
        record = record.decode() if isinstance(record, bytes) else str(record)
        return int(count) - 1, record or None

    def end(self, run_id: str, owner: str) -> None:
        """The delivery returned, whatever the outcome: release the lease, forget it."""
        self._end(keys=[f"{self.prefix}lock:run:{run_id}", self.count_key, self.inflight_key],
                  args=[owner, run_id])

    def count(self, run_id: str) -> int:
        value = self.client.hget(self.count_key, run_id)
        return int(value) if value is not None else 0

    def started_before(self, when: float, limit: int) -> list[str]:
        ids = self.client.zrangebyscore(self.inflight_key, "-inf", when, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def queued_before(self, when: float, limit: int) -> list[str]:
        """Runs recorded ``queued`` before *when* (the store's status index, scored by creation)."""
        ids = self.client.zrangebyscore(f"{self.prefix}runs:status:queued", "-inf", when,
                                        start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def in_flight(self, run_id: str) -> bool:
        return self.client.zscore(self.inflight_key, run_id) is not None

    def claim_requeue(self, run_id: str, period: float) -> bool:
        """True once per *period* per run: who may queue a stranded run again now."""
        return bool(self.client.set(f"{self.prefix}requeued:{run_id}", "1", nx=True,
                                    px=max(1, int(period * 1000))))

    def touch(self, run_id: str) -> None:
        """Restart the clock of a run queued again, so the next sweep leaves it to its worker."""
        self.client.zadd(self.inflight_key, {run_id: time.time()}, xx=True)


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
    """Queues again the runs in a worker whose lease has expired: their worker died."""

    duty = "stuck-run sweep"

    def __init__(self, store: Store, deliveries: Deliveries, leased: Callable[[str], bool],
                 requeue: Callable[[str], None], *, identity: str, interval: float = 30.0,
                 grace: float = 60.0, batch: int = 1000, stranded_after: float = 600.0):
        super().__init__(interval)
        self.store = store
        self.deliveries = deliveries
        self.leased = leased
        self.requeue = requeue
        self.identity = identity
        # only runs in a worker longer than this are looked at: covers clocks that disagree
        self.grace = grace
        self.batch = batch
        self.stranded_after = stranded_after

    def sweep(self) -> list[str]:
        """Queue every stuck run again now; their ids. One worker sweeps per interval."""
        if not self.store.acquire_lock("reaper", self.identity, self.interval * 0.9):
            return []
        reaped = []
        for run_id in self.deliveries.started_before(time.time() - self.grace, self.batch):
            if self.leased(run_id):
                continue  # a long step: its worker is alive and renews the lease
            log.warning("run %s was in a worker that stopped (its lease expired); queued again "
                        "to resume from its last checkpoint", run_id)
            self.deliveries.touch(run_id)
            self.requeue(run_id)
            reaped.append(run_id)
        for run_id in self.deliveries.queued_before(time.time() - self.stranded_after,
                                                    self.batch):
            if (self.deliveries.in_flight(run_id) or self.leased(run_id)
                    or not self.deliveries.claim_requeue(run_id, self.stranded_after)):
                continue
            log.warning("run %s has been queued for over %.0f s with no worker on it (its task "
                        "may have been lost by the broker); queued again", run_id,
                        self.stranded_after)
            self.requeue(run_id)
            reaped.append(run_id)
        return reaped

    def tick(self) -> None:
        self.sweep()
