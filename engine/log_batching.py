"""A log handler that writes its lines in batches: one write for many lines, not one per line.

`flowrun serve` logs three INFO lines per webhook request (access, run accepted, run finished).
A stream handler writes each of them with a write system call of its own, and each call lets go
of the GIL, so the event loop, the intake writer and the executor hand it to one another three
extra times per request. `BatchingHandler` keeps the formatted lines in memory and writes them
together: when `INTERVAL` has passed since the first of them, when they reach `LIMIT` bytes, at
once for a WARNING or worse (an operator sees a problem as it happens), and on `flush` and
`close` — which `logging.shutdown` calls as the process exits, so a clean stop loses no line.
A forked child drops the lines its parent still holds (the parent writes them, once) and starts
its own flusher.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import IO

#: longest a line waits in memory, in seconds
INTERVAL = 0.2
#: bytes held before they are written at once
LIMIT = 64 * 1024

_handlers: weakref.WeakSet[BatchingHandler] = weakref.WeakSet()


class BatchingHandler(logging.StreamHandler):
    """`logging.StreamHandler` writing lines in batches (see the module's docstring)."""

    def __init__(self, stream: IO[str], interval: float = INTERVAL, limit: int = LIMIT):
        super().__init__(stream)
        self.interval, self.limit = interval, limit
        self._pending: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._closed = False
        self._flusher: threading.Thread | None = None
        _handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # called by Handler.handle with the handler's lock held
        try:
            line = self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.limit or self._closed:
            self._write(record)
        elif len(self._pending) == 1:  # the first line of a batch: the flusher times it
            if self._flusher is None:
                self._start()
            self._wake.set()

    def _write(self, record: logging.LogRecord | None = None) -> None:
        """Write the pending lines (the lock held)."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._size = 0
        try:
            self.stream.write(text)
            if hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:
            if record is not None:
                self.handleError(record)
            # from the flusher: no record to report; the stream is as broken as before

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._closed = True
            self._write()
        self._wake.set()
        super().close()

    def _start(self) -> None:
        self._flusher = threading.Thread(target=self._flush_loop, name="flowrun-log-flusher",
                                         daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            # the lines of the next INTERVAL join the first one: one write for them all
            time.sleep(self.interval)
            self.flush()

    def _after_fork(self) -> None:
        # the parent writes what it held; the child's own flusher starts with its first line
        self._pending.clear()
        self._size = 0
        self._wake = threading.Event()
        self._flusher = None


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
