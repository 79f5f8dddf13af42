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
    __slots__ = ("done", "error", "job")

    def __init__(self, job: Job):
        self.job = job
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[Job]):
    """Writes jobs through *write* (one transaction for a list of jobs), in groups."""

    def __init__(self, write: Callable[[list[Job]], None], *, max_group: int = 256):
        self._write = write
        self.max_group = max_group
        self._pending: list[_Waiting[Job]] = []
        self._cond = threading.Condition()  # guards _pending and _writing
        self._writing = False  # a group is being written: one at a time
        #: groups written and jobs in them (tests read the grouping)
        self.groups = self.written = 0

    def __call__(self, job: Job) -> None:
        """Write *job*, alone or in a group; returns once it is committed, or raises."""
        mine = _Waiting(job)
        with self._cond:
            self._pending.append(mine)
        while True:
            with self._cond:
                # a caller whose job a group wrote returns at once: it never waits behind
                # the next group's transaction
                while not mine.done and self._writing:
                    self._cond.wait()
                if mine.done:
                    break
                self._writing = True
                group = self._pending[:self.max_group]
                del self._pending[:self.max_group]
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error

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
