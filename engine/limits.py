"""Per-flow concurrency slots and shared rate limits, in this process or across workers in Redis.

Two gates, neither of which ever makes a worker wait:

- **Concurrency** (``concurrency: N`` on a flow): a run takes one of the flow's N slots while its
  steps run. Over the limit, the run is put back: in Redis it joins the flow's waiters and a run
  that finishes wakes the oldest one through the due set; a recheck later in the due set covers a
  holder that died (its slot lease expires). In-process, the embedded executor keeps the waiters.
- **Rate** (``rate_limit: {name, per_second, burst}`` on a step): a token bucket per name. Taking
  a token always succeeds, but may reserve one in the future: the answer is how many seconds
  until it is ours, and the run is scheduled for then — the runner never sleeps. Reserving
  instead of asking again later means waiting runs queue in order, none starve, and no herd of
  runs wakes to fight over one token.

Redis state: ``{prefix}slots:{flow}`` (holders, scored by lease expiry), ``{prefix}slots:{flow}:
waiting`` (scored by arrival) and ``{prefix}rate:{name}`` (tokens, last refill). Times inside the
scripts come from Redis ``TIME``, so workers on machines with skewed clocks still share one bucket.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from engine.dsl.flow import RateLimit

if TYPE_CHECKING:
    from engine.store.redis import RedisStore


class RateLimiter(Protocol):
    """Token buckets by name: steps' `rate_limit:` reserve a turn, webhooks' only take a token
    that is there now. One interface, in this process or in Redis."""

    @property
    def local(self) -> bool:
        """True when taking a token never waits for I/O (safe on the event loop)."""

    def take(self, limit: RateLimit) -> float:
        """Take a token of *limit*: 0 to go now, or the seconds until the reserved token."""

    def try_take(self, name: str, per_second: float, burst: int) -> float:
        """A token of bucket *name* if one is there now (0), else the seconds until one will
        be; unlike `take`, a refusal reserves nothing."""


class LocalBucket:
    """Token buckets of one process (embedded executor), same semantics as the Redis ones."""

    local = True

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, limit: RateLimit) -> float:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(limit.name, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + max(0.0, now - at) * limit.per_second) - 1
            self._buckets[limit.name] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / limit.per_second

    def try_take(self, name: str, per_second: float, burst: int) -> float:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(name, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - at) * per_second)
            if tokens >= 1:
                self._buckets[name] = (tokens - 1, now)
                return 0.0
            self._buckets[name] = (tokens, now)
        return (1 - tokens) / per_second


class RedisLimits:
    """Slots and buckets shared by every worker through one Redis: the store's keys and
    scripts (engine/store/redis)."""

    local = False

    def __init__(self, store: RedisStore):
        self.store = store

    def take(self, limit: RateLimit) -> float:
        return self.store.take_token(limit.name, limit.per_second, limit.burst, "reserve")

    def try_take(self, name: str, per_second: float, burst: int) -> float:
        """A token of bucket *name* if one is there now (0), else the seconds until one will be;
        unlike `take`, a refusal reserves nothing."""
        return self.store.take_token(name, per_second, burst, "try")

    def acquire_slot(self, flow_id: str, holder: str, limit: int, lease: float, member: str,
                     recheck: float) -> bool:
        """Take one of the flow's *limit* slots for *holder*, or queue *member* as a waiter
        (woken through the due set by a release, or at the latest *recheck* seconds from now)."""
        return self.store.acquire_slot(flow_id, holder, limit, lease, member,
                                       time.time() + recheck)

    def renew_slot(self, flow_id: str, holder: str, lease: float) -> bool:
        return self.store.renew_slot(flow_id, holder, lease)

    def release_slot(self, flow_id: str, holder: str) -> str | None:
        """Free the slot; the due member of the waiter woken, if any."""
        return self.store.release_slot(flow_id, holder)

    def holders(self, flow_id: str) -> int:
        return self.store.slot_holders(flow_id)
