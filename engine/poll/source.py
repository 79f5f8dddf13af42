"""The calling convention of poll sources: ``source.poll(run) -> PollOutcome``.

A source reads its partner and hands every record (or file) to ``run.take``, which returns only
once the record is durably taken in (`App.accept` returned). It raises `StepError` when the poll
failed (kind and status classify it for the trigger's retry policy); it never retries or sleeps.
Committing the cursor is the caller's business, after ``poll`` returned — or, when the trigger
says ``cursor.commit: page``, also after each page through ``run.commit_cursor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class PollRun:
    """What one poll of one flow may use."""

    flow_id: str
    #: the stored high-watermark (or the trigger's cursor start), None without a cursor
    cursor: str | None
    #: no cursor stored yet: the first poll reads from the start value as written
    first: bool
    #: the scheduled time this poll belongs to (epoch seconds)
    slot: float
    now: Callable[[], float]
    secrets: Callable[[str], str]
    #: take one record in: body and record metadata → returns once the run is recorded
    take: Callable[[Any, dict[str, Any]], Any]
    #: renew the poll's lease; raises when another scheduler took the poll over
    keep_lease: Callable[[], None]
    #: move the stored cursor to this high-watermark now (every record before it is taken in)
    commit_cursor: Callable[[str | None], None] = lambda value: None


@dataclass
class PollOutcome:
    records: int = 0
    pages: int = 0
    duplicates: int = 0
    #: the new high-watermark seen in the records taken (None: no cursor, or none seen)
    cursor: str | None = None
    #: when a file still settling should be looked at again (sooner than the next slot)
    again_at: float | None = None


class Source(Protocol):
    def poll(self, run: PollRun) -> PollOutcome: ...
