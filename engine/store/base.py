"""The store interface every backend implements, and the records it keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.records import DeadLetter, RunState

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

    # poll cursors and locks -------------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool: ...

    def release_lock(self, name: str, owner: str) -> None: ...

    def close(self) -> None: ...
