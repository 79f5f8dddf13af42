"""A flow's activity over a time window, in buckets: what every store's `activity` returns.

Each bucket counts the runs that finished in it (by their last save's ``updated_at``), those of
them that failed (``dead_lettered`` or ``failed``), the dead-letter entries filed in it, and the
finished runs per latency bucket (received → finished, ``updated_at - created_at``). Latency is
counted in fixed buckets, the same on every backend, so the 95th percentile is read from a
histogram: `Bucket.p95` is the upper edge of the latency bucket that holds it. The true value
lies between that bucket's lower edge and the figure shown (edges go 1, 2.5, 5, 10: the figure is
never below the true value and at most 2.5 times it; anything under 10 ms shows as 10 ms).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from engine.records import TERMINAL

#: upper edges (seconds) of the latency buckets; one more bucket holds everything above the last
LATENCY_EDGES: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
    1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0, 100000.0)
SLOTS = len(LATENCY_EDGES) + 1
FAILED = ("dead_lettered", "failed")
#: the statuses a run finishes in (a dry run is a rehearsal, not traffic: not counted)
FINISHED = tuple(sorted(TERMINAL - {"dry_run"}))
MAX_BUCKETS = 5000  # one answer's size: a year of hours, a week of 2-minute buckets


@dataclass
class Bucket:
    start: float  # Unix seconds: the bucket is [start, start + its width)
    finished: int = 0
    failed: int = 0
    dead_letters: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * SLOTS)

    @property
    def error_rate(self) -> float | None:
        """Failed runs per finished run, 0..1; None when none finished."""
        return self.failed / self.finished if self.finished else None

    @property
    def p95(self) -> float | None:
        return percentile(self.latency, 0.95)


def latency_slot(seconds: float) -> int:
    """The latency bucket of a run that took *seconds* (the first edge not below it)."""
    return bisect_left(LATENCY_EDGES, seconds)


def sql_slot(expression: str) -> str:
    """`latency_slot` as a SQL CASE over *expression* (a column expression of this module's
    callers, never user input): SQLite and PostgreSQL count in the same buckets."""
    whens = " ".join(f"WHEN {expression} <= {edge!r} THEN {i}"
                     for i, edge in enumerate(LATENCY_EDGES))
    return f"CASE {whens} ELSE {len(LATENCY_EDGES)} END"


def percentile(latency: list[int], q: float) -> float | None:
    """The upper edge of the bucket holding the *q* quantile; above the last edge, that edge
    (shown as "at least")."""
    total = sum(latency)
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for i, n in enumerate(latency):
        seen += n
        if seen >= rank:
            return LATENCY_EDGES[min(i, len(LATENCY_EDGES) - 1)]
    return LATENCY_EDGES[-1]


def frame(since: float, until: float, width: float) -> tuple[float, int]:
    """The first bucket's start and the number of buckets covering [since, until): buckets are
    aligned to multiples of *width* seconds since the epoch (whole minutes, hours, ...)."""
    if width <= 0 or width % 60:
        raise ValueError(f"bucket: {width:g} s is not a whole number of minutes")
    if until <= since:
        raise ValueError("until must be after since")
    start = math.floor(since / width) * width
    count = math.ceil((until - start) / width)
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} buckets of {width:g} s: at most {MAX_BUCKETS} in one answer")
    return start, count


def empty(start: float, count: int, width: float) -> list[Bucket]:
    return [Bucket(start + i * width) for i in range(count)]


def total(buckets: list[Bucket]) -> Bucket:
    """All of *buckets* as one (its start the first's)."""
    whole = Bucket(buckets[0].start if buckets else 0.0)
    for b in buckets:
        whole.finished += b.finished
        whole.failed += b.failed
        whole.dead_letters += b.dead_letters
        whole.latency = [x + y for x, y in zip(whole.latency, b.latency, strict=True)]
    return whole


def fill(start: float, count: int, width: float, runs: list[tuple[int, int, int, int]],
         entries: list[tuple[int, int]]) -> list[Bucket]:
    """Buckets from grouped rows: runs as (bucket index, failed 0/1, latency slot, count),
    dead-letter entries as (bucket index, count); rows outside the frame are ignored."""
    buckets = empty(start, count, width)
    for index, failed, slot, n in runs:
        if 0 <= index < count:
            b = buckets[int(index)]
            b.finished += int(n)
            b.failed += int(n) if failed else 0
            b.latency[min(max(int(slot), 0), SLOTS - 1)] += int(n)
    for index, n in entries:
        if 0 <= index < count:
            buckets[int(index)].dead_letters += int(n)
    return buckets
