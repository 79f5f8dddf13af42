"""Per-(flow, key) lines: subscriber runs of one ordering key handled one at a time, in order.

A subscriber run with an ordering key (engine/events: ``meta.order`` = key and sequence) joins
the line of its flow and key when it is created. Only the head of a line — the lowest sequence
not yet ended — may run; any other run that reaches a worker is parked, and the run that ends
(succeeded, dead-lettered, ...) hands the turn to the next one, queuing it if it was parked.
A head that waits for a retry keeps its turn: inventory for one SKU is never applied out of
order, while other keys' lines run in parallel. No worker ever waits: like the concurrency
slots (engine/limits), a run that may not go now is put back and woken by the one before it.

`LocalLines` keeps the lines in the embedded executor's memory; `RedisLines` keeps them in the
store's Redis, shared by every Celery worker: ``{prefix}line:{flow}:{key}`` (run ids scored by
sequence) and ``{prefix}line:{flow}:{key}:parked``.
"""

from __future__ import annotations

import bisect
import threading
from typing import TYPE_CHECKING

from engine.events import ordering_of
from engine.records import RunState

if TYPE_CHECKING:
    from engine.store.redis import RedisStore


class LocalLines:
    """The lines of one process (embedded executor)."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._member: dict[str, tuple[str, str]] = {}
        self._parked: set[str] = set()
        self._lock = threading.Lock()

    def register(self, runs: list[RunState]) -> None:
        """Put new runs in their lines, in sequence order (before any of them is queued)."""
        with self._lock:
            for run in runs:
                self._add(run)

    def _add(self, run: RunState) -> tuple[str, str] | None:
        order = ordering_of(run)
        if order is None:
            return None
        line = (run.flow_id, order[0])
        if run.run_id not in self._member:
            bisect.insort(self._lines.setdefault(line, []), (order[1], run.run_id))
            self._member[run.run_id] = line
        return line

    def enter(self, run: RunState) -> bool:
        """Whether *run* may run now; if not it is parked, queued again by `leave`."""
        with self._lock:
            line = self._add(run)
            if line is None or self._lines[line][0][1] == run.run_id:
                self._parked.discard(run.run_id)
                return True
            self._parked.add(run.run_id)
            return False

    def leave(self, run: RunState) -> str | None:
        """*run* has ended: the parked run whose turn it is now, to queue, if any."""
        with self._lock:
            line = self._member.pop(run.run_id, None)
            self._parked.discard(run.run_id)
            if line is None:
                return None
            members = self._lines[line]
            members.remove(next(m for m in members if m[1] == run.run_id))
            if not members:
                del self._lines[line]
                return None
            head = members[0][1]
            if head in self._parked:
                self._parked.discard(head)
                return head
            return None

    def waiting(self) -> int:
        """Runs in lines now (tests)."""
        with self._lock:
            return len(self._member)


# KEYS: line, parked. ARGV: run id, sequence. Joins the line (once) and answers 1 for the head.
_ENTER = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head == ARGV[1] then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
redis.call('SADD', KEYS[2], ARGV[1])
return 0
"""

# KEYS: line, parked. ARGV: run id. Leaves the line; the next head if it was parked (unparked).
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head and redis.call('SREM', KEYS[2], head) == 1 then
  return head
end
return false
"""


class RedisLines:
    """The lines of every worker, in the store's Redis; each change is one script."""

    def __init__(self, store: RedisStore):
        self.redis, self.prefix = store.redis, store.prefix
        self._enter = self.redis.register_script(_ENTER)
        self._leave = self.redis.register_script(_LEAVE)

    def _keys(self, run: RunState, key: str) -> list[str]:
        line = f"{self.prefix}line:{run.flow_id}:{key}"
        return [line, f"{line}:parked"]

    def register(self, runs: list[RunState]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            order = ordering_of(run)
            if order is not None:
                pipe.zadd(self._keys(run, order[0])[0], {run.run_id: order[1]}, nx=True)
        pipe.execute()

    def enter(self, run: RunState) -> bool:
        order = ordering_of(run)
        if order is None:
            return True
        return bool(self._enter(keys=self._keys(run, order[0]), args=[run.run_id, order[1]]))

    def leave(self, run: RunState) -> str | None:
        order = ordering_of(run)
        if order is None:
            return None
        head = self._leave(keys=self._keys(run, order[0]), args=[run.run_id])
        return head.decode() if isinstance(head, bytes) else head
