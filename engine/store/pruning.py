"""The pruning pass of every store: what retention no longer keeps, found and removed in batches.

A store lends a few primitives (`Prunable`): the flows it holds records of, a page of a flow's
oldest runs or dead-letter entries, and one transaction that removes or compacts a page. This
module decides what goes, so every backend prunes by the same rules:

* a finished run (any end but ``dead_lettered``) goes when it finished longer ago than
  ``runs``; before that, once it finished longer ago than ``bodies``, its message is dropped
  and its summary kept (`engine.records.compact`). A replay run that ended dead-lettered goes
  like a finished run too: the entry it replayed holds its message and its failure;
* a dead-letter entry goes when it was resolved (replayed or discarded) longer ago than
  ``dead_letters`` — with its dead-lettered run, in the same transaction; open entries and
  entries with a replay in flight stay;
* runs still queued, running or retrying are never touched.

Pages are read outside any write lock, ``batch`` records at a time, and each page is removed in
one short transaction, with a pause before the next so intake and workers take their turns.
Compaction keeps a cursor per flow (runs created before it are all compacted or kept whole for a
reason), so a pass does not read the compacted runs again.
"""

from __future__ import annotations

import time
from typing import Protocol

from engine.records import TERMINAL, DeadLetter, RunState, compact, encode_run
from engine.store.base import PruneReport, RetentionPolicy

#: a dead-lettered run goes with its entry, never on its own
FINISHED = TERMINAL - {"dead_lettered"}
RESOLVED = ("replayed", "discarded")
#: between two transactions: time for the intake writer and the workers to take the lock
PAUSE = 0.005


class Prunable(Protocol):
    """What a store lends the pruning pass."""

    def prune_flows(self) -> set[str]:
        """Every flow the store holds runs or dead-letter entries of."""

    def oldest_runs(self, flow: str, since: float | None, before: float, offset: int,
                    limit: int) -> list[tuple[RunState, int]]:
        """Runs of *flow* created in [since, before), ordered by creation then id, skipping
        *offset*; each with the size of its stored record in bytes."""

    def oldest_entries(self, flow: str, since: float | None, before: float, offset: int,
                       limit: int) -> list[tuple[DeadLetter, int]]:
        """Dead-letter entries of *flow* created in [since, before), ordered by creation then
        id, skipping *offset*; each with the size of its stored record."""

    def remove(self, runs: list[RunState], entries: list[DeadLetter]) -> set[str]:
        """In one transaction: each run and entry, with its indexes and counts, if its status
        is still the one given; an entry's run with it if that run is ``dead_lettered``.
        Returns the ids of the runs and entries removed."""

    def replace_runs(self, runs: list[tuple[RunState, bytes]]) -> set[str]:
        """In one transaction: the records of finished runs replaced by the encoded ones given,
        if their status is still the same. Returns the ids replaced."""

    def expired_keys(self, now: float, limit: int, dry_run: bool) -> int:
        """Remove up to *limit* idempotency keys that expired before *now*; how many. A dry run
        counts them all and removes none. Stores whose keys expire by themselves return 0."""

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...


def prune(store: Prunable, policy: RetentionPolicy, now: float, *, batch: int = 500,
          flow: str | None = None, dry_run: bool = False) -> PruneReport:
    report = PruneReport()
    for name in [flow] if flow else sorted(store.prune_flows()):
        keep = policy.of(name)
        if keep.dead_letters is not None:
            _entries(store, name, now - keep.dead_letters, batch, dry_run, report)
        if keep.runs is not None:
            _runs(store, name, now - keep.runs, batch, dry_run, report)
        if keep.bodies is not None and (keep.runs is None or keep.bodies < keep.runs):
            removed = None if keep.runs is None else now - keep.runs
            _bodies(store, name, now - keep.bodies, removed, now, batch, dry_run, report)
    if flow is None:
        while n := store.expired_keys(now, batch, dry_run):
            report.add("", "idempotency", n)
            if dry_run or n < batch:
                break
            time.sleep(PAUSE)
    return report


def _finished(run: RunState) -> bool:
    return run.status in FINISHED or (run.status == "dead_lettered"
                                      and bool(run.envelope.get("meta", {}).get("replay_of")))


def resolved_at(entry: DeadLetter) -> float:
    """When the entry was last acted on (replayed, discarded, a replay finished)."""
    times = [float(t) for item in entry.audit for t in (item.get("at"), item.get("finished_at"))
             if isinstance(t, int | float)]
    return max([entry.created_at, *times])


def _after(since: float | None, skip: int, page: list[tuple[float, str]],
           gone: set[str]) -> tuple[float, int]:
    """Where the next page starts, from the (created at, id) of this one: after its last
    creation time, skipping the records of that time that are still there. Pages are walked by
    creation time rather than by position, so a page costs the same at the end of a long
    history as at its start."""
    last = page[-1][0]
    kept = sum(1 for at, record_id in page if at == last and record_id not in gone)
    return last, kept + (skip if last == since else 0)


def _runs(store: Prunable, flow: str, before: float, batch: int, dry_run: bool,
          report: PruneReport) -> None:
    since, skip = None, 0
    while page := store.oldest_runs(flow, since, before, skip, batch):
        sizes = {run.run_id: size for run, size in page}
        going = [run for run, _ in page if _finished(run) and run.updated_at < before]
        gone = {r.run_id for r in going} if dry_run else store.remove(going, [])
        report.add(flow, "runs", len(gone), sum(sizes[i] for i in gone))
        if len(page) < batch:
            break
        since, skip = _after(since, skip, [(r.created_at, r.run_id) for r, _ in page],
                             set() if dry_run else gone)
        time.sleep(PAUSE)


def _entries(store: Prunable, flow: str, before: float, batch: int, dry_run: bool,
             report: PruneReport) -> None:
    since, skip = None, 0
    while page := store.oldest_entries(flow, since, before, skip, batch):
        sizes = {entry.id: size for entry, size in page}
        going = [entry for entry, _ in page
                 if entry.status in RESOLVED and resolved_at(entry) < before]
        gone = {e.id for e in going} if dry_run else store.remove([], going)
        report.add(flow, "dead_letters", len(gone), sum(sizes[i] for i in gone))
        if len(page) < batch:
            break
        since, skip = _after(since, skip, [(e.created_at, e.id) for e, _ in page],
                             set() if dry_run else gone)
        time.sleep(PAUSE)


def _bodies(store: Prunable, flow: str, before: float, removed: float | None, now: float,
            batch: int, dry_run: bool, report: PruneReport) -> None:
    cursor = f"retention:bodies:{flow}"
    saved = store.get_cursor(cursor)
    since, skip = (float(saved) if saved else None), 0
    # a run that finished too lately to compact now holds the cursor at its creation, so the
    # next pass looks at it again; a run still active is passed over (it is removed whole)
    hold: float | None = None
    while page := store.oldest_runs(flow, since, before, skip, batch):
        going: list[tuple[RunState, bytes]] = []
        sizes: dict[str, int] = {}
        for run, size in page:
            if run.status not in FINISHED or run.compacted_at is not None or (
                    removed is not None and run.updated_at < removed):
                continue  # active, done already, or removed whole (a dry run still sees it)
            if run.updated_at >= before:
                hold = run.created_at if hold is None else min(hold, run.created_at)
                continue
            data = encode_run(compact(run, now))
            going.append((run, data))
            sizes[run.run_id] = size - len(data)
        done = {r.run_id for r, _ in going} if dry_run else store.replace_runs(going)
        report.add(flow, "bodies", len(done), sum(sizes[i] for i in done))
        if len(page) < batch:
            break
        since, skip = _after(since, skip, [(r.created_at, r.run_id) for r, _ in page], set())
        time.sleep(PAUSE)
    if not dry_run:
        store.set_cursor(cursor, repr(before if hold is None else hold))
