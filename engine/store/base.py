"""The store interface every backend implements, and the records it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engine.records import Breach, DeadLetter, RunState

#: (scope, key, seconds it holds): a new run is recorded only while no other run holds the key
Idempotency = tuple[str, str, float]


class StoreError(Exception):
    """The store cannot be used right now (locked, unreachable); callers answer 503 or exit 1."""


@dataclass
class RunFilter:
    flow: str | None = None
    status: str | None = None
    key: str | None = None
    correlation_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


@dataclass
class DeadLetterFilter:
    flow: str | None = None
    step: str | None = None
    error: str | None = None
    since: float | None = None
    until: float | None = None
    status: str | None = "open"
    limit: int = 100


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

    # poll cursors and locks -------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...

    def close(self) -> None: ...
