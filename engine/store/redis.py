"""The distributed store: run records, dead letters, flow versions, cursors and locks in Redis.

Used when ``FLOWRUN_REDIS_URL`` is set, so every worker and every intake process sees the same
state. A run is a hash (its JSON record plus the fields it is indexed by); sorted sets scored by
``created_at`` index runs by flow, status, business key and correlation id, and dead letters by
flow, step and status. Every write that touches a record and its indexes is one Lua script, so
an index never disagrees with its record, and the idempotency key of a new run is claimed in the
same script that records the run. Keys assume one Redis (or one hash slot), not Redis Cluster.
Any Redis failure surfaces as a `StoreError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from engine.records import ACTIVE, DeadLetter, RunState
from engine.store.base import DeadLetterFilter, RunFilter, StoreError

T = TypeVar("T")

# Shared by the scripts below: write one run (hash + indexes + status counters). An index entry
# is removed from the old status set before the new one is added, so a run is in exactly one.
_SAVE_RUN = """
local function save_run(p, id, data, flow, status, key, corr, created)
  local rk = p .. 'run:' .. id
  local old = redis.call('HMGET', rk, 'status', 'flow')
  if old[1] then
    redis.call('ZREM', p .. 'runs:status:' .. old[1], id)
    redis.call('HINCRBY', p .. 'runs:count', old[1], -1)
    redis.call('HINCRBY', p .. 'runs:count:' .. old[2], old[1], -1)
  end
  redis.call('HSET', rk, 'data', data, 'status', status, 'flow', flow)
  redis.call('ZADD', p .. 'runs:all', created, id)
  redis.call('ZADD', p .. 'runs:flow:' .. flow, created, id)
  redis.call('ZADD', p .. 'runs:status:' .. status, created, id)
  if key ~= '' then redis.call('ZADD', p .. 'runs:key:' .. key, created, id) end
  if corr ~= '' then redis.call('ZADD', p .. 'runs:corr:' .. corr, created, id) end
  redis.call('HINCRBY', p .. 'runs:count', status, 1)
  redis.call('HINCRBY', p .. 'runs:count:' .. flow, status, 1)
end
"""

# KEYS: none (all keys derive from the prefix). ARGV: prefix, then 7 fields per run, repeated.
SAVE_RUNS = _SAVE_RUN + """
local p = ARGV[1]
for i = 2, #ARGV, 7 do
  save_run(p, ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6])
end
return 1
"""

# ARGV: prefix, idempotency key name ('' = none), ttl ms, then the 7 run fields. Returns the run
# id already holding the key (nothing recorded) or false.
CREATE_RUN = _SAVE_RUN + """
local p = ARGV[1]
if ARGV[2] ~= '' then
  local holder = redis.call('GET', ARGV[2])
  if holder then return holder end
  redis.call('SET', ARGV[2], ARGV[4], 'PX', ARGV[3])
end
save_run(p, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
return false
"""

# ARGV: prefix, id, data, flow, step, status, created, only_if_exists ('1'/'0').
SAVE_DEAD_LETTER = """
local p, id = ARGV[1], ARGV[2]
local dk = p .. 'dl:' .. id
local old = redis.call('HGET', dk, 'status')
if not old and ARGV[8] == '1' then return 0 end
if old then redis.call('ZREM', p .. 'dls:status:' .. old, id) end
if old ~= ARGV[6] then  -- per status, entries by flow: read by metrics and the console
  if old then redis.call('HINCRBY', p .. 'dls:count:' .. old, ARGV[4], -1) end
  redis.call('HINCRBY', p .. 'dls:count:' .. ARGV[6], ARGV[4], 1)
end
redis.call('HSET', dk, 'data', ARGV[3], 'status', ARGV[6])
redis.call('ZADD', p .. 'dls:all', ARGV[7], id)
redis.call('ZADD', p .. 'dls:flow:' .. ARGV[4], ARGV[7], id)
if ARGV[5] ~= '' then redis.call('ZADD', p .. 'dls:step:' .. ARGV[5], ARGV[7], id) end
redis.call('ZADD', p .. 'dls:status:' .. ARGV[6], ARGV[7], id)
return 1
"""

# KEYS[1] lock; ARGV owner, ttl ms. The owner may renew its own lease.
ACQUIRE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

BATCH = 200


class RedisStore:
    def __init__(self, url: str, prefix: str = "flowrun:", *,
                 client: redis.Redis | None = None):
        self.url = url
        self.prefix = prefix
        self.redis: redis.Redis = client or redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30,
            health_check_interval=30)
        self._save_runs = self.redis.register_script(SAVE_RUNS)
        self._create_run = self.redis.register_script(CREATE_RUN)
        self._save_dl = self.redis.register_script(SAVE_DEAD_LETTER)
        self._acquire = self.redis.register_script(ACQUIRE_LOCK)
        self._release = self.redis.register_script(RELEASE_LOCK)

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(f"the Redis state store {_safe(self.url)} cannot be used: "
                             f"{exc}") from None

    def _do(self, fn: Callable[[], T]) -> T:
        with self._errors():
            return fn()

    def close(self) -> None:
        self.redis.close()

    @staticmethod
    def _run_fields(run: RunState) -> list[Any]:
        return [run.run_id, json.dumps(run.to_dict()), run.flow_id, run.status, run.key or "",
                run.correlation_id or "", repr(float(run.created_at))]

    # -- runs ----------------------------------------------------------------------------------
    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None:
        args: list[Any] = [self.prefix]
        for run in [state, *(children or [])]:
            args.extend(self._run_fields(run))
        with self._errors():
            if dead_letter is None:
                self._save_runs(args=args)
                return
            # MULTI/EXEC: the run, its children and its dead letter land together or not at all
            pipe = self.redis.pipeline(transaction=True)
            self._save_runs(args=args, client=pipe)
            self._save_dl(args=self._dl_args(dead_letter, only_if_exists=False), client=pipe)
            pipe.execute()

    def create_run(self, state: RunState, idempotency: tuple[str, str, float] | None = None,
                   ) -> str | None:
        key, ttl_ms = "", 0
        if idempotency is not None:
            scope, value, ttl = idempotency
            key = f"{self.prefix}idem:{scope}:{value}"
            ttl_ms = max(1, int(ttl * 1000))
        holder = self._do(lambda: self._create_run(
            args=[self.prefix, key, ttl_ms, *self._run_fields(state)]))
        return str(holder) if holder else None

    def get_run(self, run_id: str) -> RunState | None:
        data = self._do(lambda: self.redis.hget(f"{self.prefix}run:{run_id}", "data"))
        return RunState.from_dict(json.loads(data)) if data else None

    def _records(self, hash_prefix: str, ids: list[str]) -> list[str | None]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for record_id in ids:
            pipe.hget(f"{hash_prefix}{record_id}", "data")
        return list(pipe.execute())

    def _scan(self, index: str, since: float | None, until: float | None, limit: int,
              hash_prefix: str, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Newest first from one sorted-set index, filtered by *keep*, up to *limit* records."""
        low = "-inf" if since is None else repr(float(since))
        high = "+inf" if until is None else f"({float(until)!r}"
        out: list[dict[str, Any]] = []
        offset = 0
        with self._errors():
            while len(out) < limit:
                ids = self.redis.zrevrangebyscore(index, high, low, start=offset, num=BATCH)
                if not ids:
                    break
                offset += len(ids)
                for data in self._records(hash_prefix, [str(i) for i in ids]):
                    if data is None:
                        continue
                    record = json.loads(data)
                    if keep(record):
                        out.append(record)
                        if len(out) >= limit:
                            break
        return out

    def list_runs(self, query: RunFilter) -> list[RunState]:
        p = self.prefix
        # the most selective index drives the scan; the other conditions filter its records
        if query.key is not None:
            index = f"{p}runs:key:{query.key}"
        elif query.correlation_id is not None:
            index = f"{p}runs:corr:{query.correlation_id}"
        elif query.flow is not None:
            index = f"{p}runs:flow:{query.flow}"
        elif query.status is not None:
            index = f"{p}runs:status:{query.status}"
        else:
            index = f"{p}runs:all"
        wanted = {"flow_id": query.flow, "status": query.status, "key": query.key,
                  "correlation_id": query.correlation_id}

        def keep(record: dict[str, Any]) -> bool:
            return all(v is None or record.get(k) == v for k, v in wanted.items())

        records = self._scan(index, query.since, query.until, query.limit, f"{p}run:", keep)
        return [RunState.from_dict(r) for r in records]

    def active_runs(self) -> list[RunState]:
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            for status in ACTIVE:
                pipe.zrange(f"{self.prefix}runs:status:{status}", 0, -1, withscores=True)
            scored = sorted((score, run_id) for rows in pipe.execute() for run_id, score in rows)
            records = self._records(f"{self.prefix}run:", [run_id for _, run_id in scored])
        return [RunState.from_dict(json.loads(r)) for r in records if r is not None]

    def count_runs(self, flow: str | None = None) -> dict[str, int]:
        name = f"{self.prefix}runs:count" + (f":{flow}" if flow else "")
        counts = self._do(lambda: self.redis.hgetall(name))
        return {str(status): int(n) for status, n in counts.items() if int(n) > 0}

    # -- flow versions -------------------------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None:
        self._do(lambda: self.redis.hsetnx(f"{self.prefix}flow_versions:{flow_id}", version, text))

    def get_flow_version(self, flow_id: str, version: str) -> str | None:
        text = self._do(lambda: self.redis.hget(f"{self.prefix}flow_versions:{flow_id}", version))
        return None if text is None else str(text)

    # -- dead letters --------------------------------------------------------------------------
    def _dl_args(self, entry: DeadLetter, *, only_if_exists: bool) -> list[Any]:
        return [self.prefix, entry.id, json.dumps(entry.to_dict()), entry.flow_id,
                entry.step or "", entry.status, repr(float(entry.created_at)),
                "1" if only_if_exists else "0"]

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        data = self._do(lambda: self.redis.hget(f"{self.prefix}dl:{entry_id}", "data"))
        return DeadLetter(**json.loads(data)) if data else None

    def list_dead_letters(self, query: DeadLetterFilter) -> list[DeadLetter]:
        p = self.prefix
        if query.step is not None:
            index = f"{p}dls:step:{query.step}"
        elif query.flow is not None:
            index = f"{p}dls:flow:{query.flow}"
        elif query.status is not None:
            index = f"{p}dls:status:{query.status}"
        else:
            index = f"{p}dls:all"
        needle = query.error.lower() if query.error else None

        def keep(record: dict[str, Any]) -> bool:
            if query.flow is not None and record.get("flow_id") != query.flow:
                return False
            if query.step is not None and record.get("step") != query.step:
                return False
            if query.status is not None and record.get("status") != query.status:
                return False
            # like SQLite's LIKE: a case-insensitive substring of the reason's message
            message = str((record.get("reason") or {}).get("message", ""))
            return needle is None or needle in message.lower()

        records = self._scan(index, query.since, query.until, query.limit, f"{p}dl:", keep)
        return [DeadLetter(**r) for r in records]

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        counts = self._do(lambda: self.redis.hgetall(f"{self.prefix}dls:count:{status}"))
        return {str(flow): int(n) for flow, n in counts.items() if int(n) > 0}

    def update_dead_letter(self, entry: DeadLetter) -> None:
        self._do(lambda: self._save_dl(args=self._dl_args(entry, only_if_exists=True)))

    # -- cursors and locks ---------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        value = self._do(lambda: self.redis.get(f"{self.prefix}cursor:{name}"))
        return None if value is None else str(value)

    def set_cursor(self, name: str, value: str) -> None:
        self._do(lambda: self.redis.set(f"{self.prefix}cursor:{name}", value))

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        return bool(self._do(lambda: self._acquire(keys=[f"{self.prefix}lock:{name}"],
                                                   args=[owner, ttl_ms])))

    def release_lock(self, name: str, owner: str) -> None:
        self._do(lambda: self._release(keys=[f"{self.prefix}lock:{name}"], args=[owner]))

    def lock_owner(self, name: str) -> str | None:
        """Who holds the lock now (operators and tests: which worker is running a run)."""
        value = self._do(lambda: self.redis.get(f"{self.prefix}lock:{name}"))
        return None if value is None else str(value)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest

