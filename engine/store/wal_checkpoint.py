"""Checkpoints of the embedded store's write-ahead log, off the commit path.

In WAL mode SQLite copies the log back into the database file (a checkpoint) once the log
passes 1,000 pages, inside the commit that crossed the line, and with ``synchronous=NORMAL``
it syncs both files to disk then. Under webhook load that was a checkpoint every few hundred
milliseconds: the intake group or the run save that happened to cross the line waited for a
4 MB copy and two disk syncs (10-20 ms each on a small machine), and every sender of the group
with it.

Here each connection's own checkpoint is set far out (`SAFETY_PAGES`, a net that holds the log's
size should this thread fall behind), and the store's `Checkpointer` thread checkpoints
PASSIVE — never waiting for a writer or a reader — every `EVERY` seconds while commits happen,
on a connection of its own. SQLite runs the copy and the syncs without the interpreter lock, so
they take the other core, not the request's time. What a commit survives does not change: with
NORMAL a killed process loses nothing, a power loss may lose what was committed since the last
checkpoint (now at most `EVERY` seconds of it); with FULL each commit is synced itself.

The thread starts on the first commit and ends after `IDLE` seconds without one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("flowrunner.store")

#: pages (4 KiB) of log past which a connection checkpoints in its own commit: a net only
SAFETY_PAGES = 10_000
#: seconds between the thread's checkpoints while commits happen
EVERY = 0.25
#: seconds without a commit after which the thread ends (the next commit starts it again)
IDLE = 5.0


class Checkpointer:
    """Checkpoints one database's log in a thread of its own while it is written to."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._cond = threading.Condition()
        self._written = False  # a commit since the last checkpoint
        self._thread: threading.Thread | None = None
        self._closed = False
        #: checkpoints made (tests read it)
        self.checkpoints = 0

    def committed(self) -> None:
        """A commit happened: checkpoint within `EVERY` seconds."""
        if self._written and self._thread is not None:
            return  # already known: the cheap case, no lock
        with self._cond:
            self._written = True
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="flowrun-wal-checkpoint")
                self._thread.start()

    def close(self) -> None:
        """Stop the thread (after a checkpoint under way); the store closes the database."""
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _loop(self) -> None:
        db: sqlite3.Connection | None = None
        quiet = 0.0
        try:
            while True:
                with self._cond:
                    self._cond.wait(EVERY)
                    if self._closed:
                        return
                    written, self._written = self._written, False
                    if not written:
                        quiet += EVERY
                        if quiet >= IDLE:
                            self._thread = None
                            return
                        continue
                quiet = 0.0
                try:
                    if db is None:
                        db = self._connect()
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    # another process checkpointing, a file going away: the connections' own
                    # checkpoints (SAFETY_PAGES) still hold the log; try again next time
                    log.debug("checkpoint of the state database skipped: %s", exc)
        finally:
            if db is not None:
                db.close()
