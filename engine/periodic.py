"""Background duties of a process: one daemon thread each, calling `tick` until stopped.

The due-retry pump, the stuck-run reaper and the flow watcher all work this way. A tick that
fails is logged and tried again at the next one: Redis or a file system away for a moment must
never take a worker or the server down, and the next tick finds the same work still there.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("flowrunner.periodic")


class Periodic:
    """Calls `tick` every `interval` seconds on its own thread; an interval of 0 is off."""

    #: the thread's name, and what the log calls this duty when a tick fails
    duty = "background duty"

    def __init__(self, interval: float, *, first: float | None = None):
        self.interval = interval
        self._first = interval if first is None else first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> float | None:
        """Do the work once; seconds until the next tick, or None for the interval."""
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None or self.interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"flowrun {self.duty}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            try:
                after = self.tick()
            except Exception:
                log.warning("%s failed; trying again in %g s", self.duty, self.interval,
                            exc_info=True)
                after = None
            wait = self.interval if after is None else after
