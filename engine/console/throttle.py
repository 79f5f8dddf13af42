"""Throttling of failed console logins and API credentials, so they cannot be guessed at speed.

Failures are counted per key — the client's address, and the user name when the caller gave
one — over a sliding window. A key with ``limit`` failures in the last ``window`` seconds is
blocked until the oldest of them leaves the window: the caller gets 429 with ``Retry-After``
and its credential is not even checked. A success clears the keys it was made under.

`Throttle` keeps the counts in this process. The interface is three calls on a list of keys, so
the shared backends (`engine.console.redis_state`, `engine.console.sql_state`), which every
``flowrun serve`` of a deployment sees, take its place without touching the callers. Their
clock is the wall clock, which several servers share (kept in step by NTP), not a process's
monotonic one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

clock = time.time  # the throttle's and the sessions' clock; tests move it through this name
LIMIT = 10  # failures per key ...
WINDOW = 300.0  # ... within five minutes
MAX_KEYS = 50_000  # beyond this the least recently failed keys are forgotten first


class Throttle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW):
        self.limit, self.window = limit, window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, keys: list[str]) -> int | None:
        """Seconds until a caller under *keys* may try again, or None if it may now."""
        now = clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.limit:
                    wait = max(wait, times[0] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, keys: list[str]) -> None:
        now = clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now) or deque(maxlen=self.limit)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        while times and times[0] <= now - self.window:
            times.popleft()
        return times
