"""The store interface every backend implements, and the records it keeps."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.records import Breach, DeadLetter, RunState
from engine.store.activity import Bucket

#: (scope, key, seconds it holds): a new run is recorded only while no other run holds the key
Idempotency = tuple[str, str, float]


class StoreError(Exception):
    """The store cannot be used right now (locked, unreachable); callers answer 503 or exit 1."""


#: runs a payload search reads on a store without a payload index (the latest ones that match
#: the other conditions): SQLite and Redis. PostgreSQL searches all runs through its GIN index.
PAYLOAD_WINDOW = 10_000
PAYLOAD_PATH = re.compile(r"^[A-Za-z0-9_@$-]+(\.[A-Za-z0-9_@$-]+)*$")


class BadPayloadQuery(ValueError):
    """A payload condition that cannot be searched; the message says what fits."""


@dataclass(frozen=True)
class PayloadQuery:
    """A field of the original message's body equal to a value: ``customer.email = a@b.c``.

    The path names object keys, dot-separated. The value matches as written (text) and, when
    it reads as a JSON number, boolean or null, as that too — ``42`` finds 42 and "42"."""

    path: tuple[str, ...]
    value: str

    @classmethod
    def parse(cls, text: str) -> PayloadQuery:
        """``PATH = VALUE``, the path optionally starting with ``payload.`` or ``body.``."""
        path, eq, value = text.partition("=")
        path, value = path.strip(), value.strip()
        for prefix in ("payload.", "body."):
            if path.startswith(prefix):
                path = path[len(prefix):]
        if not eq or not _path_ok(path):
            raise BadPayloadQuery(f"payload: '{text}' is not a condition; write a dotted path "
                                  "of the body, '=', and a value: customer.email = a@example.com")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return cls(tuple(path.split(".")), value[1:-1])
        return cls(tuple(path.split(".")), value)

    def values(self) -> list[Any]:
        """The values that match: the text, and its JSON reading when that is a scalar."""
        out: list[Any] = [self.value]
        try:
            typed = json.loads(self.value)
        except ValueError:
            return out
        # a number no store can hold (past 64 bits, infinite, not a number) is looked for as
        # text only: jsonb and orjson would refuse it or write it as null, SQLite overflow
        if typed is None or isinstance(typed, bool) or (
                isinstance(typed, int) and -2**63 <= typed < 2**63) or (
                isinstance(typed, float) and math.isfinite(typed)):
            out.append(typed)
        return out

    def matches(self, body: Any) -> bool:
        for name in self.path:
            if not isinstance(body, dict) or name not in body:
                return False
            body = body[name]
        return any(_same(body, v) for v in self.values())


def _same(found: Any, wanted: Any) -> bool:
    """JSON equality: text equals text only, true is not 1, 42 equals 42.0."""
    if isinstance(found, bool) or isinstance(wanted, bool) or found is None or wanted is None:
        return found is wanted
    if isinstance(found, int | float) and isinstance(wanted, int | float):
        return found == wanted
    return type(found) is type(wanted) and found == wanted


def _path_ok(path: str) -> bool:
    return bool(PAYLOAD_PATH.match(path)) and path.count(".") < 32


@dataclass
class RunFilter:
    flow: str | None = None
    status: str | None = None
    key: str | None = None
    correlation_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    #: a field of the original body (`PayloadQuery`), searched among the latest *window* runs
    #: that match the rest where the store has no payload index
    payload: PayloadQuery | None = None
    window: int = PAYLOAD_WINDOW


@dataclass
class DeadLetterFilter:
    flow: str | None = None
    step: str | None = None
    error: str | None = None
    since: float | None = None
    until: float | None = None
    status: str | None = "open"
    limit: int = 100
    #: the failure's classification (`StepError.kind`: http, timeout, validation, ...)
    kind: str | None = None
    #: the HTTP status of the partner's answer, for ``kind: http`` failures
    http_status: int | None = None

    def matches_reason(self, reason: dict[str, Any]) -> bool:
        """Whether an entry's reason fits *kind* and *http_status* (stores that filter in
        Python; the SQL stores say the same in their queries)."""
        if self.kind is not None and reason.get("kind") != self.kind:
            return False
        return self.http_status is None or reason.get("status") == self.http_status


def payload_indexed(store: object) -> bool:
    """Whether *store* searches payloads through an index (all runs), not a bounded window."""
    return bool(getattr(store, "payload_indexed", False))


@dataclass(frozen=True)
class Keep:
    """How long one flow's records stay, in seconds (None: forever)."""

    runs: float | None = 14 * 86400.0  # a finished run, after it finished
    bodies: float | None = None  # a finished run's message, after it finished
    dead_letters: float | None = 30 * 86400.0  # a resolved entry, after it was resolved


@dataclass(frozen=True)
class RetentionPolicy:
    """What pruning keeps: a default, and flows of their own (engine/retention builds it)."""

    default: Keep = Keep()
    flows: dict[str, Keep] = field(default_factory=dict)

    def of(self, flow: str) -> Keep:
        return self.flows.get(flow, self.default)


@dataclass
class PruneReport:
    """What a prune removed (or would remove, in a dry run): counts per (flow, kind), where
    kind is ``runs``, ``bodies`` (runs compacted), ``dead_letters`` or ``idempotency``; and the
    bytes of the records removed or shortened."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    bytes_freed: int = 0

    def add(self, flow: str, kind: str, n: int = 1, freed: int = 0) -> None:
        if n:
            self.counts[(flow, kind)] = self.counts.get((flow, kind), 0) + n
        self.bytes_freed += freed

    @property
    def total(self) -> int:
        return sum(self.counts.values())


#: finished console bulk jobs a store keeps; starting one forgets the oldest beyond these
JOBS_KEPT = 100


@dataclass
class BulkJob:
    """A console bulk replay or discard (engine/console/jobs): what it acts on and how, and
    what it did to each entry so far. Kept in the store, so every server process answers for
    any job, and a job whose process died is seen as stopped and can be resumed."""

    id: str
    who: str
    entry_ids: list[str]
    action: str = "replay"  # or "discard"
    start_from: str = "failed-step"
    version: str = "original"
    patch: str | None = None  # the patch expression's text
    reason: str = ""
    owner: str = ""  # host:pid of the process running it
    created_at: float = 0.0
    updated_at: float = 0.0  # the last entry handled (or start, or end)
    #: running, done, failed; or interrupted: its process stopped and a resume took it over
    state: str = "running"
    error: str | None = None
    finished_at: float | None = None
    resumed_from: str | None = None
    resumed_as: str | None = None
    #: entry id → (outcome, detail): started (run id), refused (why), patch_failed (error),
    #: discarded
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def header(self) -> str:
        """Everything but the outcomes, as JSON (the stores keep the outcomes apart)."""
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "outcomes"})

    @classmethod
    def from_header(cls, data: str | bytes,
                    outcomes: dict[str, tuple[str, str]]) -> BulkJob:
        return cls(**json.loads(data), outcomes=outcomes)


class Store(Protocol):
    # runs -------------------------------------------------------------------------------------
    def save_run(self, state: RunState, *, dead_letter: DeadLetter | None = None,
                 children: list[RunState] | None = None) -> None:
        """Save *state*; with a dead letter and child runs in the same transaction."""

    def create_run(self, state: RunState, idempotency: Idempotency | None = None) -> str | None:
        """Record a new run; with (scope, key, ttl), atomically only if the key is free.
        Returns the run id already holding the key (and records nothing), or None."""

    def create_runs(self, runs: list[tuple[RunState, Idempotency | None]],
                    messages: list[tuple[str, str]] | None = None) -> list[str | None]:
        """`create_run` for a group, in one write: for each run, the id holding its key or None.
        A key claimed by an earlier run of the same group counts as held. *messages* (one per
        run: a broker list and the message queueing the run) are written with the runs that
        are recorded, by a store that shares the broker's server; other stores are never given
        any (`Executor.queue_messages` returns None for them)."""

    def get_run(self, run_id: str) -> RunState | None: ...

    def list_runs(self, query: RunFilter) -> list[RunState]: ...

    def active_runs(self) -> list[RunState]:
        """Runs that are queued, running or waiting for a retry: resumed when a process starts."""

    def count_runs(self, flow: str | None = None) -> dict[str, int]: ...

    def count_dead_letters(self, status: str = "open") -> dict[str, int]:
        """Dead-letter entries in *status*, by flow (flows with none left out); O(flows)."""

    def activity(self, flow: str | None, since: float, until: float,
                 bucket: float) -> list[Bucket]:
        """Runs finished, failed and by latency, and dead-letter entries filed, of *flow* (all
        flows: None) in buckets of *bucket* seconds covering [since, until), oldest first,
        empty buckets included (engine/store/activity). Read from an index or from counters:
        never from the records one by one."""

    # flow versions ----------------------------------------------------------------------------
    def save_flow_version(self, flow_id: str, version: str, text: str) -> None: ...

    def get_flow_version(self, flow_id: str, version: str) -> str | None: ...

    # dead letters -----------------------------------------------------------------------------
    def get_dead_letter(self, entry_id: str) -> DeadLetter | None: ...

    def list_dead_letters(self, query: DeadLetterFilter) -> list[DeadLetter]: ...

    def update_dead_letter(self, entry: DeadLetter) -> None: ...

    # retention (docs/retention.md) -------------------------------------------------------------
    def prune(self, policy: RetentionPolicy, now: float, *, batch: int = 500,
              flow: str | None = None, dry_run: bool = False) -> PruneReport:
        """Remove what *policy* no longer keeps at *now* (of *flow* only, if given), *batch*
        records per transaction, pausing between transactions so intake is never held up:
        finished runs, their messages (compacted: the summary stays), resolved dead-letter
        entries with their dead-lettered run, expired idempotency keys. A record and its
        indexes (an entry and its run) go in one transaction; counts stay exact (they count
        what is kept). A dry run removes nothing and reports what would go."""

    # business SLAs (engine/sla) ---------------------------------------------------------------
    # A new run with a deadline (`create_runs`, and the children of `save_run`) enters the
    # due-set in the write that records it; a run saved as succeeded by its deadline leaves it.
    def sla_due(self, now: float, limit: int) -> list[tuple[str, float]]:
        """(run id, deadline) of the runs in the due-set whose deadline is at or before *now*,
        earliest first, at most *limit*."""

    def settle_sla(self, run_ids: list[str]) -> None:
        """Take these runs out of the due-set (in time after all, or gone)."""

    def claim_breach(self, breach: Breach) -> bool:
        """Record *breach* unless its run has one already, and take the run out of the
        due-set, atomically; whether this call recorded it (claims are made once)."""

    def get_breach(self, run_id: str) -> Breach | None: ...

    def list_breaches(self, flow: str | None = None, limit: int = 100) -> list[Breach]:
        """Breaches, latest detected first (of *flow* only, if given)."""

    # console bulk jobs (engine/console/jobs) -------------------------------------------------
    def put_job(self, job: BulkJob) -> None:
        """Write *job* (all but its outcomes), unless the stored job is ``interrupted`` (a
        resume took it over: its process, still alive, must not undo that). A job not kept
        yet makes the store forget the oldest finished jobs beyond `JOBS_KEPT`, with their
        outcomes."""

    def add_job_outcome(self, job_id: str, entry_id: str, outcome: str, detail: str,
                        at: float) -> bool:
        """Record what the job did to an entry, and that it was alive at *at*; only while it
        is running: False (nothing recorded) once it ended or a resume took it over."""

    def get_job(self, job_id: str) -> BulkJob | None: ...

    # poll cursors and locks -------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...

    def close(self) -> None: ...
