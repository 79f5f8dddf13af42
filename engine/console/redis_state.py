"""Console sessions and the failed-login throttle in Redis, shared by every `flowrun serve`.

Keys, under the store's prefix (``flowrun:``):

* ``console:session:<sha256 of the id>`` — the session (JSON), expiring with it;
* ``console:fail:<key>`` — a sorted set of failure times (a sliding window), expiring when
  its newest failure leaves the window.

Both throttle calls are scripts, so the count and the trimming of a window are one step even
when two servers count the same guesser at once. The time comes from the caller (the
throttle's clock), so all servers and the tests agree on one.
"""

from __future__ import annotations

import json
import math
import secrets

from engine.console import throttle
from engine.console.sessions import Session
from engine.store.redis import RedisStore

# KEYS: one window per key. ARGV: now, window (s), limit, member. Records a failure in each
# window, drops the ones that left it and all but the newest `limit`.
FAILED = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('ZREMRANGEBYRANK', key, 0, -(limit + 1))
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return 0
"""

# KEYS: windows. ARGV: now, window, limit. The longest wait, in seconds (a string), over the
# windows that hold `limit` failures: until the oldest of them leaves; '0' if none is full.
BLOCKED = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, -limit, -limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
return string.format('%.6f', wait)
"""


class RedisSessions:
    def __init__(self, store: RedisStore):
        self.store, self.prefix = store, f"{store.prefix}console:session:"

    def put(self, key: str, session: Session) -> None:
        ttl = max(1, math.ceil((session.expires_at - throttle.clock()) * 1000))
        data = json.dumps(session.__dict__)
        self.store._do(lambda: self.store.redis.set(self.prefix + key, data, px=ttl))

    def get(self, key: str) -> Session | None:
        raw = self.store._do(lambda: self.store.redis.get(self.prefix + key))
        if raw is None:
            return None
        session = Session(**json.loads(raw))
        return session if session.expires_at >= throttle.clock() else None

    def delete(self, key: str) -> None:
        self.store._do(lambda: self.store.redis.delete(self.prefix + key))


class RedisThrottle:
    """`engine.console.throttle.Throttle` over Redis windows (same limit and window)."""

    def __init__(self, store: RedisStore, limit: int = throttle.LIMIT,
                 window: float = throttle.WINDOW):
        self.store, self.limit, self.window = store, limit, window
        self.prefix = f"{store.prefix}console:fail:"
        self._failed = store.redis.register_script(FAILED)
        self._blocked = store.redis.register_script(BLOCKED)

    def _keys(self, keys: list[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def blocked(self, keys: list[str]) -> int | None:
        wait = float(self.store._do(lambda: self._blocked(
            keys=self._keys(keys), args=[throttle.clock(), self.window, self.limit])))
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, keys: list[str]) -> None:
        # a random member: two failures in the same microsecond are still two
        member = secrets.token_hex(8)
        self.store._do(lambda: self._failed(
            keys=self._keys(keys), args=[throttle.clock(), self.window, self.limit, member]))

    def succeeded(self, keys: list[str]) -> None:
        self.store._do(lambda: self.store.redis.delete(*self._keys(keys)))
