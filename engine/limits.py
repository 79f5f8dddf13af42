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
from typing import Protocol

import redis

from engine.dsl.flow import RateLimit


class RateLimiter(Protocol):
    """Token buckets by name: steps' `rate_limit:` reserve a turn, webhooks' only take a token
    that is there now. One interface, in this process or in Redis."""

    #: True when taking a token never waits for I/O (safe on the event loop)
    local: bool

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


# KEYS: bucket. ARGV: per second, burst, mode. Returns the wait in seconds as text ('0' = go now).
# mode 'reserve' always takes the token, perhaps one in the future (a step waits its turn);
# mode 'try' takes one only if it is there now, else takes nothing (a refused webhook must not
# use up a later turn).
TAKE_TOKEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if not tokens then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 or ARGV[3] == 'reserve' then
  tokens = tokens - 1
  if tokens < 0 then wait = -tokens / rate end
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""

# KEYS: holders, waiters, due. ARGV: holder, limit, lease ms, due member, recheck at (due score).
# Expired holders (their worker died) free their slot first. 1 = slot taken, 0 = waiting.
ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1])
   or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  return 1
end
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
return 0
"""

# KEYS: holders. ARGV: holder, lease ms. Only a holder that still has its slot renews it.
RENEW_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
"""

# KEYS: holders, waiters, due. ARGV: holder, now (due score). Wakes the oldest waiter.
RELEASE_SLOT = """
redis.call('ZREM', KEYS[1], ARGV[1])
local w = redis.call('ZPOPMIN', KEYS[2])
if w[1] then redis.call('ZADD', KEYS[3], ARGV[2], w[1]) return w[1] end
return false
"""


class RedisLimits:
    """Slots and buckets shared by every worker through one Redis."""

    local = False

    def __init__(self, client: redis.Redis, prefix: str = "flowrun:"):
        self.client = client
        self.prefix = prefix
        self.due_key = f"{prefix}due"
        self._take = client.register_script(TAKE_TOKEN)
        self._acquire = client.register_script(ACQUIRE_SLOT)
        self._renew = client.register_script(RENEW_SLOT)
        self._release = client.register_script(RELEASE_SLOT)

    def _slots(self, flow_id: str) -> list[str]:
        holders = f"{self.prefix}slots:{flow_id}"
        return [holders, f"{holders}:waiting", self.due_key]

    def take(self, limit: RateLimit) -> float:
        return self._token(limit.name, limit.per_second, limit.burst, "reserve")

    def try_take(self, name: str, per_second: float, burst: int) -> float:
        """A token of bucket *name* if one is there now (0), else the seconds until one will be;
        unlike `take`, a refusal reserves nothing."""
        return self._token(name, per_second, burst, "try")

    def _token(self, name: str, per_second: float, burst: int, mode: str) -> float:
        wait = self._take(keys=[f"{self.prefix}rate:{name}"],
                          args=[repr(float(per_second)), burst, mode])
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    def acquire_slot(self, flow_id: str, holder: str, limit: int, lease: float, member: str,
                     recheck: float) -> bool:
        """Take one of the flow's *limit* slots for *holder*, or queue *member* as a waiter
        (woken through the due set by a release, or at the latest *recheck* seconds from now)."""
        return bool(self._acquire(keys=self._slots(flow_id), args=[
            holder, limit, max(1, int(lease * 1000)), member, repr(time.time() + recheck)]))

    def renew_slot(self, flow_id: str, holder: str, lease: float) -> bool:
        return bool(self._renew(keys=[f"{self.prefix}slots:{flow_id}"],
                                args=[holder, max(1, int(lease * 1000))]))

    def release_slot(self, flow_id: str, holder: str) -> str | None:
        """Free the slot; the due member of the waiter woken, if any."""
        woken = self._release(keys=self._slots(flow_id), args=[holder, repr(time.time())])
        if not woken:
            return None
        return woken.decode() if isinstance(woken, bytes) else str(woken)

    def holders(self, flow_id: str) -> int:
        return int(self.client.zcard(f"{self.prefix}slots:{flow_id}"))
