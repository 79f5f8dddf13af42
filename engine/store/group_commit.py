"""Group commit for writes made by many threads at once: one transaction for all that wait.

Worker threads each save the run they advanced. Written one by one, each save is a
transaction of its own and the others queue on the write lock meanwhile. `GroupCommit` lets
the first caller to get the turn write every save waiting at that moment in one transaction;
the others find theirs written and return. A caller returns only once the transaction holding
its write committed — or raises its error — so a save that returned is as durable as one
written alone. A thread alone pays nothing: its group is itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")


class _Waiting(Generic[Job]):
    __slots__ = ("done", "error", "job", "leads", "woken")

    def __init__(self, job: Job):
        self.job = job
        self.done = False
        self.leads = False  # chosen to write the next group
        self.error: BaseException | None = None
        #: held until the caller is woken: its job written, or its turn to write come
        self.woken = threading.Lock()
        self.woken.acquire()


class GroupCommit(Generic[Job]):
    """Writes jobs through *write* (one transaction for a list of jobs), in groups."""

    def __init__(self, write: Callable[[list[Job]], None], *, max_group: int = 256):
        self._write = write
        self.max_group = max_group
        self._pending: list[_Waiting[Job]] = []
        self._lock = threading.Lock()  # guards _pending and _writing
        self._writing = False  # a group is being written: one at a time
        #: groups written and jobs in them (tests read the grouping)
        self.groups = self.written = 0

    def __call__(self, job: Job) -> None:
        """Write *job*, alone or in a group; returns once it is committed, or raises."""
        mine = _Waiting(job)
        with self._lock:
            self._pending.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            # each caller is woken alone — by the writer of the group that held its job, or
            # as the next writer — never all of them at every commit
            try:
                mine.woken.acquire()
            except BaseException:  # interrupted while waiting: take its job back
                self._withdraw(mine)
                raise
        if not mine.done:  # its turn to write: its job heads the pending ones
            self._lead()
        if mine.error is not None:
            raise mine.error

    def _lead(self) -> None:
        nxt: _Waiting[Job] | None = None
        with self._lock:
            group = self._pending[:self.max_group]
            del self._pending[:self.max_group]
        try:
            self._commit(group)
        finally:
            with self._lock:
                nxt = self._next()
            for waiting in group[1:]:  # the first is the writer's own
                waiting.woken.release()
            if nxt is not None:  # not done: it writes the next group
                nxt.woken.release()

    def _next(self) -> _Waiting[Job] | None:
        """The caller to write the next group (None: writing ends); the lock is held."""
        if not self._pending:
            self._writing = False
            return None
        self._pending[0].leads = True
        return self._pending[0]

    def _withdraw(self, mine: _Waiting[Job]) -> None:
        """*mine* leaves before its job is taken: a caller chosen to write hands that on."""
        with self._lock:
            if mine not in self._pending:
                return  # a group holds it: written without anyone waiting
            self._pending.remove(mine)
            nxt = self._next() if mine.leads else None
        if nxt is not None:
            nxt.woken.release()

    def _commit(self, group: list[_Waiting[Job]]) -> None:
        try:
            self._write([w.job for w in group])
        except BaseException as exc:  # the transaction rolled back: none of them is written
            for waiting in group:
                waiting.error = exc
        else:
            self.groups += 1
            self.written += len(group)
        for waiting in group:
            waiting.done = True
