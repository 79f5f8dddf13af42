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
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from engine import redis_url
from engine.records import (
    ACTIVE,
    Breach,
    DeadLetter,
    RunState,
    decode_breach,
    decode_dead_letter,
    decode_run,
    encode_breach,
    encode_dead_letter,
    encode_run,
    settles_sla,
)
from engine.store import activity as act
from engine.store import pruning
from engine.store.base import (
    JOBS_KEPT,
    BulkJob,
    DeadLetterFilter,
    Idempotency,
    PruneReport,
    RetentionPolicy,
    RunFilter,
    StoreError,
)

T = TypeVar("T")
R = TypeVar("R")

# Activity counters (engine/store/activity), bounded: per flow, per minute in one hash per hour
# and per hour in one hash per day; fields '<minute or hour>:<what>' where what is l<slot> (runs
# finished in that latency bucket: their sum is the runs finished), e (failed) or d (dead-letter
# entries filed). Written by the script that finishes the run or files the entry: two HINCRBYs
# (three for a failure). A hash expires its time to live after the last field it gained; all
# flows are the sum of the flows, at read time.
MINUTES_KEPT = 26 * 3600  # the 24-hour window, in minutes
HOURS_KEPT = 8 * 86400  # the 7-day window, in hours
_ACTIVITY = f"""
local finishing = {{{", ".join(f"['{s}'] = true" for s in act.FINISHED)}}}
local function bump(p, flow, t, what)
  t = math.floor(tonumber(t))
  local hour, day = t - t % 3600, t - t % 86400
  local m, h = (t - hour - t % 60) / 60 .. ':', (hour - day) / 3600 .. ':'
  for _, k in ipairs({{{{p .. 'act:m:' .. flow .. ':' .. hour, m, {MINUTES_KEPT}}},
                      {{p .. 'act:h:' .. flow .. ':' .. day, h, {HOURS_KEPT}}}}}) do
    for _, field in ipairs(what) do
      if redis.call('HINCRBY', k[1], k[2] .. field, 1) == 1 then
        redis.call('EXPIRE', k[1], k[3])
      end
    end
  end
end
-- fin: '' (not finished) or '<finished at, whole seconds>:<latency slot>:<1 failed, 0 not>'
local function finish(p, flow, fin)
  if fin == '' then return end
  local t, slot, bad = string.match(fin, '^(%d+):(%d+):(%d)$')
  if bad == '1' then bump(p, flow, t, {{'l' .. slot, 'e'}})
  else bump(p, flow, t, {{'l' .. slot}}) end
end
"""

# Shared by the scripts below. A new run: its hash and indexes, counted once under its status.
# A saved run whose status changed moves from one status index (and count) to the other; its
# other indexes are scored by creation and never change. Counts are per flow (`count_runs`
# adds them up), so a status change costs two HINCRBYs, not four.
_SAVE_RUN = _ACTIVITY + """
local function new_run(p, id, data, flow, status, key, corr, created, fin, known)
  redis.call('HSET', p .. 'run:' .. id, 'data', data, 'status', status, 'flow', flow)
  redis.call('ZADD', p .. 'runs:status:' .. status, created, id)
  redis.call('HINCRBY', p .. 'runs:count:' .. flow, status, 1)
  if known ~= '1' then redis.call('SADD', p .. 'flows', flow) end
  redis.call('ZADD', p .. 'runs:all', created, id)
  redis.call('ZADD', p .. 'runs:flow:' .. flow, created, id)
  if key ~= '' then redis.call('ZADD', p .. 'runs:key:' .. key, created, id) end
  if corr ~= '' then redis.call('ZADD', p .. 'runs:corr:' .. corr, created, id) end
  finish(p, flow, fin)
end

local function save_run(p, id, data, flow, status, key, corr, created, fin, ended)
  local rk = p .. 'run:' .. id
  local old = redis.call('HGET', rk, 'status')
  if not old then return new_run(p, id, data, flow, status, key, corr, created, fin, '0') end
  if ended then  -- the delivery that saves it ends: its count of deliveries goes back to 0
    redis.call('HSET', rk, 'data', data, 'status', status, 'deliveries', 0)
  else
    redis.call('HSET', rk, 'data', data, 'status', status)
  end
  if old == status then return end
  if not finishing[old] then finish(p, flow, fin) end  -- a run finishes once
  redis.call('ZREM', p .. 'runs:status:' .. old, id)
  redis.call('ZADD', p .. 'runs:status:' .. status, created, id)
  redis.call('HINCRBY', p .. 'runs:count:' .. flow, old, -1)
  redis.call('HINCRBY', p .. 'runs:count:' .. flow, status, 1)
end
"""

# The end of a delivery (a worker's lease on the run, its entry in flight): in the same script
# as the run's last save, so finishing a run is one round trip. Deliveries that started and did
# not end are counted in the run's hash (a poison run is one whose deliveries keep dying).
_END_DELIVERY = """
local function end_delivery(p, id, owner, counted)
  local lock = p .. 'lock:run:' .. id
  if redis.call('GET', lock) == owner then redis.call('DEL', lock) end
  if not counted then redis.call('HDEL', p .. 'run:' .. id, 'deliveries') end
  redis.call('ZREM', p .. 'inflight', id)
end
"""

# ARGV: prefix, owner of a delivery to end ('' = none), then 8 fields per run, repeated.
SAVE_RUNS = _SAVE_RUN + _END_DELIVERY + """
local p = ARGV[1]
local ends = ARGV[2] ~= ''
for i = 3, #ARGV, 8 do
  save_run(p, ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6],
           ARGV[i+7], ends and i == 3)
end
if ends then end_delivery(p, ARGV[3], ARGV[2], true) end
return 1
"""

# A group of new runs (their ids are new: nothing to read first). ARGV: prefix, then per run:
# idempotency key name ('' = none), ttl ms, the 8 run fields, '1' when this process has already
# listed the flow in `flows`, and the list and message that queue the run for a worker ('' =
# none; the executor queues it itself). Returns, per run, the id already holding its key
# (nothing recorded, nothing queued) or ''. SET NX GET claims a key and reads its holder in one
# command; a key claimed by an earlier run of the same group is held like any other.
CREATE_RUNS = _SAVE_RUN + """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV, 13 do
  local holder = false
  if ARGV[i] ~= '' then
    holder = redis.call('SET', ARGV[i], ARGV[i+2], 'NX', 'GET', 'PX', ARGV[i+1])
  end
  if holder then
    out[#out + 1] = holder
  else
    new_run(p, ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6], ARGV[i+7], ARGV[i+8],
            ARGV[i+9], ARGV[i+10])
    if ARGV[i+11] ~= '' then redis.call('LPUSH', ARGV[i+11], ARGV[i+12]) end
    out[#out + 1] = ''
  end
end
return out
"""

# A breach of a run's SLA, claimed once: KEYS: breaches hash, due-set, late index, the flow's
# late index; ARGV: run id, record, detected at. Returns 1 when this call claimed it.
CLAIM_BREACH = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
"""

# ARGV: prefix, id, data, flow, step, status, created, only_if_exists ('1'/'0').
# Counts never go below zero, whatever a store written without them holds (they are rebuilt
# from the records once, COUNT_DEAD_LETTERS, before this process writes an entry).
SAVE_DEAD_LETTER = _ACTIVITY + """
local p, id = ARGV[1], ARGV[2]
local dk = p .. 'dl:' .. id
local old = redis.call('HGET', dk, 'status')
if not old and ARGV[8] == '1' then return 0 end
if not old then bump(p, ARGV[4], ARGV[7], {'d'}) end  -- filed now: the inflow counts it
if old then redis.call('ZREM', p .. 'dls:status:' .. old, id) end
if old ~= ARGV[6] then  -- per status, entries by flow: read by metrics and the console
  if old and tonumber(redis.call('HGET', p .. 'dls:count:' .. old, ARGV[4]) or '0') > 0 then
    redis.call('HINCRBY', p .. 'dls:count:' .. old, ARGV[4], -1)
  end
  redis.call('HINCRBY', p .. 'dls:count:' .. ARGV[6], ARGV[4], 1)
end
redis.call('HSET', dk, 'data', ARGV[3], 'status', ARGV[6], 'flow', ARGV[4])
redis.call('ZADD', p .. 'dls:all', ARGV[7], id)
redis.call('ZADD', p .. 'dls:flow:' .. ARGV[4], ARGV[7], id)
if ARGV[5] ~= '' then redis.call('ZADD', p .. 'dls:step:' .. ARGV[5], ARGV[7], id) end
redis.call('ZADD', p .. 'dls:status:' .. ARGV[6], ARGV[7], id)
return 1
"""

# ARGV: prefix, the entry statuses. Once per store (marked by `dls:counted`): the dead-letter
# counts rebuilt from the entries themselves. A store written by a version that kept no counts
# (or kept them partly) has entries but wrong counts; without this the console, the metric and
# a replay's decrement would start from nothing. An entry's flow is in its hash since counts
# are kept; for older entries it is found in the per-flow indexes (decoding the record, which
# costs more, only for an entry in none of them).
COUNT_DEAD_LETTERS = """
local p = ARGV[1]
local mark = p .. 'dls:counted'
if redis.call('EXISTS', mark) == 1 then return 0 end
local indexed = {}
for _, name in ipairs(redis.call('SMEMBERS', p .. 'flows')) do
  for _, id in ipairs(redis.call('ZRANGE', p .. 'dls:flow:' .. name, 0, -1)) do
    indexed[id] = name
  end
end
local counts = {}
for _, id in ipairs(redis.call('ZRANGE', p .. 'dls:all', 0, -1)) do
  local row = redis.call('HMGET', p .. 'dl:' .. id, 'status', 'flow')
  local status, flow = row[1], row[2] or indexed[id]
  if status and not flow then
    local ok, record = pcall(cjson.decode, redis.call('HGET', p .. 'dl:' .. id, 'data') or '')
    if ok and type(record) == 'table' and type(record.flow_id) == 'string' then
      flow = record.flow_id
      redis.call('HSET', p .. 'dl:' .. id, 'flow', flow)
    end
  end
  if status and flow then
    counts[status] = counts[status] or {}
    counts[status][flow] = (counts[status][flow] or 0) + 1
  end
end
for i = 2, #ARGV do redis.call('DEL', p .. 'dls:count:' .. ARGV[i]) end
for status, flows in pairs(counts) do
  redis.call('DEL', p .. 'dls:count:' .. status)
  for flow, n in pairs(flows) do redis.call('HSET', p .. 'dls:count:' .. status, flow, n) end
end
redis.call('SET', mark, '1')
return 1
"""

# Retention (engine/store/pruning): a page of runs and entries removed with every index entry
# and count they hold, each only if its status is still the one read; an entry takes its
# dead-lettered run with it. ARGV: prefix, number of runs, then per run: id, flow, status, key,
# correlation id; then per entry: id, flow, step, status, run id, key, correlation id.
# Returns the ids removed. Counts count what is kept: a count reaching 0 is deleted.
PRUNE = """
local p = ARGV[1]
local function count_down(h, field)
  if redis.call('HINCRBY', h, field, -1) <= 0 then redis.call('HDEL', h, field) end
end
local function drop_run(id, flow, status, key, corr)
  local rk = p .. 'run:' .. id
  if redis.call('HGET', rk, 'status') ~= status then return false end
  redis.call('DEL', rk)
  redis.call('ZREM', p .. 'runs:status:' .. status, id)
  redis.call('ZREM', p .. 'runs:all', id)
  redis.call('ZREM', p .. 'runs:flow:' .. flow, id)
  if key ~= '' then redis.call('ZREM', p .. 'runs:key:' .. key, id) end
  if corr ~= '' then redis.call('ZREM', p .. 'runs:corr:' .. corr, id) end
  count_down(p .. 'runs:count:' .. flow, status)
  redis.call('ZREM', p .. 'sla:due', id)  -- its SLA rows go with it (engine/sla)
  if redis.call('HDEL', p .. 'sla:breaches', id) == 1 then
    redis.call('ZREM', p .. 'sla:late', id)
    redis.call('ZREM', p .. 'sla:late:' .. flow, id)
  end
  return true
end
local gone = {}
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  if drop_run(ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]) then gone[#gone+1] = ARGV[i] end
  i = i + 5
end
while i <= #ARGV do
  local id, flow, step, status = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]
  local dk = p .. 'dl:' .. id
  if redis.call('HGET', dk, 'status') == status then
    redis.call('DEL', dk)
    redis.call('ZREM', p .. 'dls:all', id)
    redis.call('ZREM', p .. 'dls:flow:' .. flow, id)
    if step ~= '' then redis.call('ZREM', p .. 'dls:step:' .. step, id) end
    redis.call('ZREM', p .. 'dls:status:' .. status, id)
    count_down(p .. 'dls:count:' .. status, flow)
    drop_run(ARGV[i+4], flow, 'dead_lettered', ARGV[i+5], ARGV[i+6])
    gone[#gone+1] = id
  end
  i = i + 7
end
return gone
"""

# Compaction: ARGV prefix, then per run: id, status, new record. Replaced only if the status is
# still the one read. Returns the ids replaced.
REPLACE_RUNS = """
local done = {}
for i = 2, #ARGV, 3 do
  local rk = ARGV[1] .. 'run:' .. ARGV[i]
  if redis.call('HGET', rk, 'status') == ARGV[i+1] then
    redis.call('HSET', rk, 'data', ARGV[i+2])
    done[#done+1] = ARGV[i]
  end
end
return done
"""

# KEYS[1] lock; ARGV owner, ttl ms. The owner may renew its own lease.
ACQUIRE_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The start of a delivery. ARGV: prefix, run id, owner, lease ms, now. Takes the run's lease
# (the owner may renew its own), counts the delivery, enters it in flight and reads the record:
# one round trip. Returns false when another delivery holds the lease, else {count, record}.
BEGIN_DELIVERY = """
local p, id = ARGV[1], ARGV[2]
local lock = p .. 'lock:run:' .. id
if not redis.call('SET', lock, ARGV[3], 'NX', 'PX', ARGV[4]) then
  if redis.call('GET', lock) ~= ARGV[3] then return false end
  redis.call('SET', lock, ARGV[3], 'PX', ARGV[4])
end
local rk = p .. 'run:' .. id
local count = redis.call('HINCRBY', rk, 'deliveries', 1)
redis.call('ZADD', p .. 'inflight', ARGV[5], id)
return {count, redis.call('HGET', rk, 'data') or ''}
"""

END_DELIVERY = _END_DELIVERY + """
end_delivery(ARGV[1], ARGV[2], ARGV[3], false)
return 1
"""

# -- retries due later, rate limits and concurrency slots (engine/celery_executor, engine/limits)
# KEYS: due, moving. ARGV: now, max ids, claim deadline. Claims whose pump died go back first.
CLAIM_DUE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], 'NX', ARGV[1], id)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[3], id)
end
return ids
"""


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


BATCH = 200
DEAD_LETTER_STATUSES = ("open", "replaying", "replayed", "discarded")


class RedisStore:
    """Owns flowrunner's keys in one Redis: every key name and script lives here; the Celery
    executor, the reaper, the due-retry pump and the limits use this store's client and key
    names rather than spelling their own. The console's sessions and login throttle keep
    theirs under ``<prefix>console:`` (engine/console/redis_state.py), on this client."""

    def __init__(self, url: str, prefix: str = "flowrun:", *,
                 client: redis.Redis | None = None, replica_wait: float = 1.0):
        self.url = url
        self.prefix = prefix
        self.redis: redis.Redis = client or redis_url.client(
            url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30,
            health_check_interval=30)
        # behind Sentinel a new run is acknowledged only once a replica has it: a failover
        # promotes a replica, and what only the old primary held would be gone (0 = no wait)
        self.replica_wait_ms = (max(1, int(replica_wait * 1000))
                                if replica_wait > 0 and redis_url.parse(url) else 0)
        self.due_key, self.inflight_key = f"{prefix}due", f"{prefix}inflight"
        self.moving_key = f"{prefix}due:moving"
        self._flows_listed: set[str] = set()  # flows this process has put in `flows`
        register = self.redis.register_script
        self._save_runs = register(SAVE_RUNS)
        self._create_runs = register(CREATE_RUNS)
        self._save_dl = register(SAVE_DEAD_LETTER)
        self._count_dls = register(COUNT_DEAD_LETTERS)
        self._dls_counted = False  # this process has made sure the counts are kept
        self._acquire = register(ACQUIRE_LOCK)
        self._release = register(RELEASE_LOCK)
        self._begin = register(BEGIN_DELIVERY)
        self._end = register(END_DELIVERY)
        self._claim_due = register(CLAIM_DUE)
        self._take_token = register(TAKE_TOKEN)
        self._acquire_slot = register(ACQUIRE_SLOT)
        self._renew_slot = register(RENEW_SLOT)
        self._release_slot = register(RELEASE_SLOT)
        self._prune = register(PRUNE)
        self._replace_runs = register(REPLACE_RUNS)
        self._claim_breach = register(CLAIM_BREACH)
        self.sla_due_key, self.breaches_key = f"{prefix}sla:due", f"{prefix}sla:breaches"

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

    def next_event_seq(self) -> int:
        """The next sequence number of an ordered event, one counter for every process
        (engine/events, engine/ordering)."""
        return int(self._do(lambda: self.redis.incr(f"{self.prefix}events:seq")))

    @staticmethod
    def _run_fields(run: RunState) -> list[Any]:
        finished = ""
        if run.status in act.FINISHED:
            finished = (f"{max(0, math.floor(run.updated_at))}:"
                        f"{act.latency_slot(run.updated_at - run.created_at)}:"
                        f"{1 if run.status in act.FAILED else 0}")
        return [run.run_id, encode_run(run), run.flow_id, run.status, run.key or "",
                run.correlation_id or "", repr(float(run.created_at)), finished]

    # -- runs ----------------------------------------------------------------------------------
    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None, delivery: str | None = None) -> None:
        """Save *state* (with its children and dead letter, atomically); with *delivery* (the
        owner of the delivery working on it), end that delivery in the same round trip."""
        args: list[Any] = [self.prefix, delivery or ""]
        for run in [state, *(children or [])]:
            args.extend(self._run_fields(run))
        entry = self._dl_args(dead_letter, only_if_exists=False) if dead_letter else None
        due = self._sla_deadlines(children or [])
        with self._errors():
            if due or settles_sla(state):
                # the due-set beside the run (engine/sla): entered before the run is, so a
                # crash in between leaves at most an entry the sweep finds without its run
                pipe = self.redis.pipeline(transaction=True)
                if due:
                    pipe.zadd(self.sla_due_key, due)
                self._save_runs(args=args, client=pipe)
                if entry is not None:
                    self._count_dead_letters_once()
                    self._save_dl(args=entry, client=pipe)
                if settles_sla(state):
                    pipe.zrem(self.sla_due_key, state.run_id)
                pipe.execute()
                return
            if entry is None:
                self._save_runs(args=args)
                return
            self._count_dead_letters_once()
            # MULTI/EXEC: the run, its children and its dead letter land together or not at all
            pipe = self.redis.pipeline(transaction=True)
            self._save_runs(args=args, client=pipe)
            self._save_dl(args=entry, client=pipe)
            pipe.execute()

    def create_run(self, state: RunState, idempotency: Idempotency | None = None) -> str | None:
        return self.create_runs([(state, idempotency)])[0]

    def create_runs(self, runs: list[tuple[RunState, Idempotency | None]],
                    messages: list[tuple[str, str]] | None = None) -> list[str | None]:
        """One script for the whole group: one round trip however many runs. With *messages*
        (a list and a message per run, from the executor), each run recorded is also queued
        for the workers in the same script: recorded and queued are one atomic write."""
        args: list[Any] = [self.prefix]
        for i, (state, idempotency) in enumerate(runs):
            key, ttl_ms = "", 0
            if idempotency is not None:
                scope, value, ttl = idempotency
                key = f"{self.prefix}idem:{scope}:{value}"
                ttl_ms = max(1, int(ttl * 1000))
            listed = "1" if state.flow_id in self._flows_listed else "0"
            queue, message = messages[i] if messages is not None else ("", "")
            args.extend((key, ttl_ms, *self._run_fields(state), listed, queue, message))
        due = self._sla_deadlines([state for state, _ in runs])
        holders = self._do(lambda: self._create(args, due))
        self._flows_listed.update(state.flow_id for state, _ in runs)
        return [str(h) if h else None for h in holders]

    def _sla_deadlines(self, runs: list[RunState]) -> dict[str, float]:
        return {run.run_id: run.deadline for run in runs if run.deadline is not None}

    def _create(self, args: list[Any], due: dict[str, float] | None = None) -> list[Any]:
        if not self.replica_wait_ms and not due:
            return list(self._create_runs(args=args))
        # WAIT counts the replicas that have this connection's writes: one pipeline, so the
        # script and the WAIT go down the same connection. New runs with an SLA deadline enter
        # the due-set first (a duplicate's entry is dropped by the sweep, which finds no run)
        pipe = self.redis.pipeline(transaction=False)
        if due:
            pipe.zadd(self.sla_due_key, due)
        self._create_runs(args=args, client=pipe)
        if not self.replica_wait_ms:
            return list(pipe.execute()[-1])
        pipe.execute_command("WAIT", 1, self.replica_wait_ms)
        *_, holders, replicas = pipe.execute()
        if int(replicas) < 1:
            raise redis.RedisError(f"no replica took the new runs within "
                                   f"{self.replica_wait_ms} ms (WAIT 1); not acknowledged")
        return list(holders)

    def get_run(self, run_id: str) -> RunState | None:
        data = self._do(lambda: self.redis.hget(f"{self.prefix}run:{run_id}", "data"))
        return decode_run(data) if data else None

    def _records(self, hash_prefix: str, ids: list[str]) -> list[str | None]:
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for record_id in ids:
            pipe.hget(f"{hash_prefix}{record_id}", "data")
        return list(pipe.execute())

    def _scan(self, index: str, since: float | None, until: float | None, limit: int,
              hash_prefix: str, decode: Callable[[str], R], keep: Callable[[R], bool],
              fields: dict[str, str] | None = None, cap: int | None = None) -> list[R]:
        """Newest first from one sorted-set index, filtered by *keep*, up to *limit* records.
        With *fields*, ids whose hash fields differ are passed over before their records are
        read (a run's hash holds its flow and status: a rare status costs no record reads).
        With *cap*, no more than that many of the index's latest ids are looked at."""
        low = "-inf" if since is None else repr(float(since))
        high = "+inf" if until is None else f"({float(until)!r}"
        out: list[R] = []
        offset = 0
        page = max(1, min(BATCH, limit))  # limit=1 (the console's last run) reads one record
        with self._errors():
            while len(out) < limit and (cap is None or offset < cap):
                if cap is not None:
                    page = min(page, cap - offset)
                ids = [str(i) for i in self.redis.zrevrangebyscore(index, high, low,
                                                                   start=offset, num=page)]
                if not ids:
                    break
                offset += len(ids)
                page = min(BATCH, page * 2)
                if fields:
                    ids = self._matching(hash_prefix, ids, fields)
                for data in self._records(hash_prefix, ids):
                    if data is None:
                        continue
                    record = decode(data)
                    if keep(record):
                        out.append(record)
                        if len(out) >= limit:
                            break
        return out

    def _matching(self, hash_prefix: str, ids: list[str], fields: dict[str, str]) -> list[str]:
        pipe = self.redis.pipeline(transaction=False)
        for record_id in ids:
            pipe.hmget(f"{hash_prefix}{record_id}", list(fields))
        wanted = list(fields.values())
        return [i for i, got in zip(ids, pipe.execute(), strict=True) if got == wanted]

    def list_runs(self, query: RunFilter) -> list[RunState]:
        p = self.prefix
        # the most selective index drives the scan; the other conditions filter its records
        if query.key is not None:
            index = f"{p}runs:key:{query.key}"
        elif query.correlation_id is not None:
            index = f"{p}runs:corr:{query.correlation_id}"
        elif query.flow is not None and query.status is not None:
            # the smaller of the two indexes: a rare status of a busy flow, or a quiet flow
            by_flow, by_status = f"{p}runs:flow:{query.flow}", f"{p}runs:status:{query.status}"
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(by_flow)
            pipe.zcard(by_status)
            sizes = self._do(pipe.execute)
            index = by_flow if sizes[0] <= sizes[1] else by_status
        elif query.flow is not None:
            index = f"{p}runs:flow:{query.flow}"
        elif query.status is not None:
            index = f"{p}runs:status:{query.status}"
        else:
            index = f"{p}runs:all"
        wanted = {"flow_id": query.flow, "status": query.status, "key": query.key,
                  "correlation_id": query.correlation_id}

        payload = query.payload

        def keep(run: RunState) -> bool:
            return all(v is None or getattr(run, k) == v for k, v in wanted.items()) and (
                payload is None or payload.matches(run.original.get("body")))

        fields = {name: value for name, value in (("flow", query.flow),
                                                  ("status", query.status)) if value is not None}
        # a payload is read from each record: the latest `window` runs of the index are searched
        return self._scan(index, query.since, query.until, query.limit, f"{p}run:",
                          decode_run, keep, fields,
                          cap=query.window if payload is not None else None)

    def active_runs(self) -> list[RunState]:
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            for status in ACTIVE:
                pipe.zrange(f"{self.prefix}runs:status:{status}", 0, -1, withscores=True)
            scored = sorted((score, run_id) for rows in pipe.execute() for run_id, score in rows)
            records = self._records(f"{self.prefix}run:", [run_id for _, run_id in scored])
        return [decode_run(r) for r in records if r is not None]

    def count_runs(self, flow: str | None = None) -> dict[str, int]:
        p = self.prefix

        def counts() -> list[dict[str, str]]:
            flows = [flow] if flow else sorted(str(f) for f in self.redis.smembers(f"{p}flows"))
            pipe = self.redis.pipeline(transaction=False)
            for name in flows:
                pipe.hgetall(f"{p}runs:count:{name}")
            return list(pipe.execute())

        total: dict[str, int] = {}
        for per_flow in self._do(counts):
            for status, n in per_flow.items():
                total[str(status)] = total.get(str(status), 0) + int(n)
        return {status: n for status, n in total.items() if n > 0}

    def activity(self, flow: str | None, since: float, until: float,
                 bucket: float) -> list[act.Bucket]:
        """From the counters (_ACTIVITY): hours when *bucket* is whole hours, else minutes.
        A 24-hour window reads 25 hashes per flow, a 7-day window 8, in one round trip."""
        start, count = act.frame(since, until, bucket)
        end = start + count * bucket
        unit, period, kind = (3600, 86400, "h") if bucket % 3600 == 0 else (60, 3600, "m")
        first = math.floor(start / period) * period
        periods = [first + i * period for i in range(math.ceil((end - first) / period))]

        def read() -> list[tuple[int, dict[str, str]]]:
            flows = [flow] if flow is not None else sorted(
                str(f) for f in self.redis.smembers(f"{self.prefix}flows"))
            pipe = self.redis.pipeline(transaction=False)
            for name in flows:
                for at in periods:
                    pipe.hgetall(f"{self.prefix}act:{kind}:{name}:{at}")
            return list(zip(periods * len(flows), pipe.execute(), strict=True))

        buckets = act.empty(start, count, bucket)
        for at, fields in self._do(read):
            for name, value in fields.items():
                slot, _, what = str(name).partition(":")
                moment = at + int(slot) * unit
                if not start <= moment < end:
                    continue
                into, n = buckets[int((moment - start) // bucket)], int(value)
                if what == "e":
                    into.failed += n
                elif what == "d":
                    into.dead_letters += n
                elif what.startswith("l"):
                    into.finished += n
                    into.latency[min(int(what[1:]), act.SLOTS - 1)] += n
        return buckets

    # -- deliveries (Celery workers) -------------------------------------------------------------
    def begin_delivery(self, run_id: str, owner: str, lease: float,
                       ) -> tuple[int, RunState | None] | None:
        """Take the run's lease for *owner*, count the delivery and read the run: None when
        another delivery holds the lease, else (deliveries before this one that died without
        returning, the run)."""
        out = self._do(lambda: self._begin(args=[self.prefix, run_id, owner,
                                                 max(1, int(lease * 1000)), repr(time.time())]))
        if not out:
            return None
        count, record = out
        return int(count) - 1, decode_run(record) if record else None

    def end_delivery(self, run_id: str, owner: str) -> None:
        """The delivery returned, whatever the outcome: release the lease, forget it."""
        self._do(lambda: self._end(args=[self.prefix, run_id, owner]))

    def deliveries_started_before(self, when: float, limit: int) -> list[str]:
        return [str(i) for i in self._do(lambda: self.redis.zrangebyscore(
            self.inflight_key, "-inf", when, start=0, num=limit))]

    def runs_queued_before(self, when: float, limit: int) -> list[str]:
        """Runs recorded ``queued`` before *when* (the status index is scored by creation)."""
        return [str(i) for i in self._do(lambda: self.redis.zrangebyscore(
            f"{self.prefix}runs:status:queued", "-inf", when, start=0, num=limit))]

    def delivery_count(self, run_id: str) -> int:
        value = self._do(lambda: self.redis.hget(f"{self.prefix}run:{run_id}", "deliveries"))
        return int(value) if value is not None else 0

    def in_flight(self, run_id: str) -> bool:
        return self._do(lambda: self.redis.zscore(self.inflight_key, run_id)) is not None

    def claim_requeue(self, run_id: str, period: float) -> bool:
        """True once per *period* per run: who may queue a stranded run again now."""
        return bool(self._do(lambda: self.redis.set(f"{self.prefix}requeued:{run_id}", "1",
                                                    nx=True, px=max(1, int(period * 1000)))))

    def touch_delivery(self, run_id: str) -> None:
        """Restart the clock of a run queued again, so the next sweep leaves it to its worker."""
        self._do(lambda: self.redis.zadd(self.inflight_key, {run_id: time.time()}, xx=True))

    # -- retries due later ------------------------------------------------------------------------
    def schedule_due(self, run_id: str, due_at: float) -> None:
        """The run is sent to the workers when *due_at* comes (engine/celery_executor)."""
        self._do(lambda: self.redis.zadd(self.due_key, {run_id: due_at}))

    def claim_due(self, now: float, batch: int, claim_until: float) -> list[str]:
        """Up to *batch* runs due by *now*, each claimed until *claim_until* (a claim whose
        pump died before sending goes back to the due set then)."""
        ids = self._do(lambda: self._claim_due(keys=[self.due_key, self.moving_key],
                                               args=[repr(now), batch, repr(claim_until)]))
        return [str(i) for i in ids]

    def sent_due(self, run_id: str) -> None:
        """A claimed run is in the queue now: its claim is done."""
        self._do(lambda: self.redis.zrem(self.moving_key, run_id))

    def first_due(self) -> float | None:
        first = self._do(lambda: self.redis.zrange(self.due_key, 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    # -- rate limits and concurrency slots (engine/limits) ---------------------------------------
    def take_token(self, name: str, per_second: float, burst: int, mode: str) -> float:
        wait = self._do(lambda: self._take_token(keys=[f"{self.prefix}rate:{name}"],
                                                 args=[repr(float(per_second)), burst, mode]))
        return float(wait)

    def _slots(self, flow_id: str) -> list[str]:
        holders = f"{self.prefix}slots:{flow_id}"
        return [holders, f"{holders}:waiting", self.due_key]

    def acquire_slot(self, flow_id: str, holder: str, limit: int, lease: float, member: str,
                     recheck_at: float) -> bool:
        return bool(self._do(lambda: self._acquire_slot(keys=self._slots(flow_id), args=[
            holder, limit, max(1, int(lease * 1000)), member, repr(recheck_at)])))

    def renew_slot(self, flow_id: str, holder: str, lease: float) -> bool:
        return bool(self._do(lambda: self._renew_slot(keys=[f"{self.prefix}slots:{flow_id}"],
                                                      args=[holder, max(1, int(lease * 1000))])))

    def release_slot(self, flow_id: str, holder: str) -> str | None:
        woken = self._do(lambda: self._release_slot(keys=self._slots(flow_id),
                                                    args=[holder, repr(time.time())]))
        return str(woken) if woken else None

    def slot_holders(self, flow_id: str) -> int:
        return int(self._do(lambda: self.redis.zcard(f"{self.prefix}slots:{flow_id}")))

    # -- flow versions -------------------------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None:
        self._do(lambda: self.redis.hsetnx(f"{self.prefix}flow_versions:{flow_id}", version, text))

    def get_flow_version(self, flow_id: str, version: str) -> str | None:
        text = self._do(lambda: self.redis.hget(f"{self.prefix}flow_versions:{flow_id}", version))
        return None if text is None else str(text)

    # -- dead letters --------------------------------------------------------------------------
    def _count_dead_letters_once(self) -> None:
        """Rebuild the dead-letter counts from the entries if this store never had them (one
        round trip per process; the rebuild itself happens once per store)."""
        if not self._dls_counted:
            self._count_dls(args=[self.prefix, *DEAD_LETTER_STATUSES])
            self._dls_counted = True

    def _dl_args(self, entry: DeadLetter, *, only_if_exists: bool) -> list[Any]:
        return [self.prefix, entry.id, encode_dead_letter(entry), entry.flow_id,
                entry.step or "", entry.status, repr(float(entry.created_at)),
                "1" if only_if_exists else "0"]

    def get_dead_letter(self, entry_id: str) -> DeadLetter | None:
        data = self._do(lambda: self.redis.hget(f"{self.prefix}dl:{entry_id}", "data"))
        return decode_dead_letter(data) if data else None

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

        def keep(entry: DeadLetter) -> bool:
            if query.flow is not None and entry.flow_id != query.flow:
                return False
            if query.step is not None and entry.step != query.step:
                return False
            if query.status is not None and entry.status != query.status:
                return False
            if not query.matches_reason(entry.reason):
                return False
            # like SQLite's LIKE: a case-insensitive substring of the reason's message
            return needle is None or needle in entry.message.lower()

        return self._scan(index, query.since, query.until, query.limit, f"{p}dl:",
                          decode_dead_letter, keep)

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        self._do(self._count_dead_letters_once)
        counts = self._do(lambda: self.redis.hgetall(f"{self.prefix}dls:count:{status}"))
        return {str(flow): int(n) for flow, n in counts.items() if int(n) > 0}

    def update_dead_letter(self, entry: DeadLetter) -> None:
        args = self._dl_args(entry, only_if_exists=True)
        self._do(self._count_dead_letters_once)
        self._do(lambda: self._save_dl(args=args))

    # -- retention (engine/store/pruning) ---------------------------------------------------------
    def prune(self, policy: RetentionPolicy, now: float, *, batch: int = 500,
              flow: str | None = None, dry_run: bool = False) -> PruneReport:
        return pruning.prune(self, policy, now, batch=batch, flow=flow, dry_run=dry_run)

    def prune_flows(self) -> set[str]:
        # every flow with a run is in `flows` (a dead-lettered run comes with each entry)
        return {str(f) for f in self._do(lambda: self.redis.smembers(f"{self.prefix}flows"))}

    def _oldest(self, index: str, hash_prefix: str, since: float | None, before: float,
                offset: int, limit: int) -> list[str]:
        low = "-inf" if since is None else repr(float(since))
        with self._errors():
            ids = self.redis.zrangebyscore(index, low, f"({float(before)!r}", start=offset,
                                           num=limit)
            return [r for r in self._records(hash_prefix, [str(i) for i in ids]) if r]

    def oldest_runs(self, flow: str, since: float | None, before: float, offset: int,
                    limit: int) -> list[tuple[RunState, int]]:
        found = self._oldest(f"{self.prefix}runs:flow:{flow}", f"{self.prefix}run:", since,
                             before, offset, limit)
        return [(decode_run(data), len(data.encode())) for data in found]

    def oldest_entries(self, flow: str, since: float | None, before: float, offset: int,
                       limit: int) -> list[tuple[DeadLetter, int]]:
        found = self._oldest(f"{self.prefix}dls:flow:{flow}", f"{self.prefix}dl:", since,
                             before, offset, limit)
        return [(decode_dead_letter(data), len(data.encode())) for data in found]

    def remove(self, runs: list[RunState], entries: list[DeadLetter]) -> set[str]:
        if not runs and not entries:
            return set()
        args: list[Any] = [self.prefix, len(runs)]
        for run in runs:
            args.extend((run.run_id, run.flow_id, run.status, run.key or "",
                         run.correlation_id or ""))
        for entry in entries:
            args.extend((entry.id, entry.flow_id, entry.step or "", entry.status, entry.run_id,
                         entry.key or "", entry.correlation_id or ""))
        return {str(i) for i in self._do(lambda: self._prune(args=args))}

    def replace_runs(self, runs: list[tuple[RunState, bytes]]) -> set[str]:
        if not runs:
            return set()
        args: list[Any] = [self.prefix]
        for run, data in runs:
            args.extend((run.run_id, run.status, data))
        return {str(i) for i in self._do(lambda: self._replace_runs(args=args))}

    def expired_keys(self, now: float, limit: int, dry_run: bool) -> int:
        return 0  # idempotency keys carry a Redis expiry (PX) and go by themselves

    # -- cursors and locks ---------------------------------------------------------------------
    # -- business SLAs (engine/sla) --------------------------------------------------------------
    def sla_due(self, now: float, limit: int) -> list[tuple[str, float]]:
        rows: Any = self._do(lambda: self.redis.zrangebyscore(
            self.sla_due_key, "-inf", now, start=0, num=limit, withscores=True))
        return [(str(run_id), float(score)) for run_id, score in rows]

    def settle_sla(self, run_ids: list[str]) -> None:
        if run_ids:
            self._do(lambda: self.redis.zrem(self.sla_due_key, *run_ids))

    def claim_breach(self, breach: Breach) -> bool:
        keys = [self.breaches_key, self.sla_due_key, f"{self.prefix}sla:late",
                f"{self.prefix}sla:late:{breach.flow_id}"]
        args: list[Any] = [breach.run_id, encode_breach(breach),
                           repr(float(breach.detected_at))]
        return bool(self._do(lambda: self._claim_breach(keys=keys, args=args)))

    def get_breach(self, run_id: str) -> Breach | None:
        data = self._do(lambda: self.redis.hget(self.breaches_key, run_id))
        return decode_breach(data) if data else None

    def list_breaches(self, flow: str | None = None, limit: int = 100) -> list[Breach]:
        index = f"{self.prefix}sla:late" + (f":{flow}" if flow else "")

        def read() -> list[Any]:
            ids: Any = self.redis.zrevrange(index, 0, limit - 1)
            return list(self.redis.hmget(self.breaches_key, ids)) if ids else []

        return [decode_breach(data) for data in self._do(read) if data]

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


    # -- console bulk jobs (engine/console/jobs) -----------------------------------------------
    # <prefix>console:job:<id> is a hash (state, updated_at, data: the rest as JSON), with
    # <id>:entries beside it (entry id → [outcome, detail]); <prefix>console:jobs orders the
    # jobs by creation, for forgetting the oldest finished ones.
    def _job_script(self, name: str, text: str) -> Any:
        found = self.__dict__.get(name)
        if found is None:
            found = self.__dict__[name] = self.redis.register_script(text)
        return found

    def put_job(self, job: BulkJob) -> None:
        key = f"{self.prefix}console:job:"
        self._do(lambda: self._job_script("_put_job", PUT_JOB)(
            keys=[key + job.id, f"{self.prefix}console:jobs"],
            args=[job.id, job.state, job.created_at, job.updated_at, job.header(), key,
                  JOBS_KEPT]))

    def add_job_outcome(self, job_id: str, entry_id: str, outcome: str, detail: str,
                        at: float) -> bool:
        key = f"{self.prefix}console:job:{job_id}"
        return bool(self._do(lambda: self._job_script("_add_job_outcome", ADD_JOB_OUTCOME)(
            keys=[key, key + ":entries"], args=[entry_id, json.dumps([outcome, detail]), at])))

    def get_job(self, job_id: str) -> BulkJob | None:
        key = f"{self.prefix}console:job:{job_id}"

        def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hmget(key, "data", "state", "updated_at")
            pipe.hgetall(key + ":entries")
            return pipe.execute()

        (data, state, updated_at), entries = self._do(read)
        if data is None:
            return None
        job = BulkJob.from_header(data, {k: tuple(json.loads(v)) for k, v in entries.items()})
        job.state, job.updated_at = state, float(updated_at)
        return job


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


# KEYS: the job's hash, the jobs by creation. ARGV: id, state, created_at, updated_at, data,
# the job keys' prefix, how many finished jobs to keep. A job a resume took over is not written
# again; a new job forgets the oldest finished jobs beyond those, with their entries.
PUT_JOB = """
local new = redis.call('EXISTS', KEYS[1]) == 0
if redis.call('HGET', KEYS[1], 'state') == 'interrupted' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[4], 'data', ARGV[5])
if new then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  local finished = 0
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[2], 0, -1)) do
    local key = ARGV[6] .. id
    if redis.call('HGET', key, 'state') ~= 'running' then
      finished = finished + 1
      if finished > tonumber(ARGV[7]) then
        redis.call('DEL', key, key .. ':entries')
        redis.call('ZREM', KEYS[2], id)
      end
    end
  end
end
return 0
"""

# KEYS: the job's hash, its entries. ARGV: entry id, [outcome, detail], now. Only while the
# job runs: 0 once it ended or a resume took it over.
ADD_JOB_OUTCOME = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])
return 1
"""
