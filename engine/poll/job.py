"""One poll of one flow: lease, read from the cursor, take records in, then commit the cursor.

The order is what makes a poll safe to cut off anywhere: records are recorded as runs
(`App.accept` returned) before the cursor moves, and the cursor moves only while this process
still holds the flow's poll lease — a scheduler that was paused and lost the lease commits
nothing; a later poll reads those records again and intake deduplicates them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.poll import cursor as cursors
from engine.poll.lease import Lease
from engine.poll.schedule import slot_text
from engine.poll.source import PollOutcome, PollRun
from engine.store.base import StoreError
from engine.types import StepError

if TYPE_CHECKING:
    from engine.app import Accepted, App
    from engine.compiled import CompiledFlow

log = logging.getLogger("flowrunner.scheduler")


class LeaseLost(Exception):
    """Another scheduler took this flow's poll over while we worked (we were paused)."""


@dataclass
class Result:
    outcome: PollOutcome | None = None
    error: StepError | None = None
    #: the poll did not start: another process is still polling this flow
    busy: bool = False


class PollJob:
    def __init__(self, app: App, flow: CompiledFlow, owner: str, lease_ttl: float,
                 clock: Callable[[], float] = time.time):
        self.app, self.flow, self.owner = app, flow, owner
        self.lease_ttl = lease_ttl
        self.clock = clock
        self.poll = flow.poll

    def run(self, slot: float, attempt: int = 1, *, start_from: str | None = None) -> Result:
        """One poll. *start_from* reads from that cursor instead of the stored one (a backfill:
        records already taken in are deduplicated, and the stored cursor only moves forward)."""
        store = self.app.store
        lease = Lease(store, f"poll:{self.flow.id}", self.owner, self.lease_ttl)
        try:
            if not lease.acquire():
                return Result(busy=True)
        except StoreError as exc:
            return self._failed(StepError(f"the poll lease cannot be taken: {exc}",
                                          kind="connection", retryable=True), slot, attempt)
        with lease:
            try:
                name = cursors.cursor_name(self.flow.id)
                stored = store.get_cursor(name)
                trigger = self.poll.trigger
                start = trigger.cursor.start if trigger.cursor else None
                committed = stored

                def commit(value: str | None) -> None:
                    nonlocal committed
                    newer = cursors.later(committed, value)
                    if newer is not None and newer != committed:
                        _keep(lease)  # only the holder of the lease may move the cursor
                        store.set_cursor(name, newer)
                        committed = newer

                run = PollRun(flow_id=self.flow.id, cursor=start_from or stored or start,
                              first=stored is None or start_from is not None, slot=slot,
                              now=self.clock, secrets=self.app.secrets, take=self._take,
                              keep_lease=lambda: _keep(lease), commit_cursor=commit)
                outcome = self.poll.source.poll(run)
                commit(outcome.cursor)
                new_cursor = committed
            except StepError as exc:
                return self._failed(exc, slot, attempt)
            except (StoreError, LeaseLost) as exc:
                return self._failed(StepError(str(exc), kind="connection", retryable=True),
                                    slot, attempt)
        now = self.clock()
        shown = new_cursor or start
        self._status(last_poll_at=now, last_slot=slot_text(slot), records=outcome.records,
                     duplicates=outcome.duplicates, pages=outcome.pages, cursor=shown,
                     lag=cursors.lag_seconds(shown, now), attempt=attempt, last_error=None,
                     state="ok", total_records=self._total() + outcome.records)
        return Result(outcome=outcome)

    def _take(self, body: Any, headers: dict[str, Any]) -> Accepted:
        try:
            return self.app.accept(self.flow, body, headers, trigger="poll")
        except StoreError as exc:
            # the store is where "durably taken in" happens: without it the poll fails, and
            # the records are read again from the unchanged cursor on the retry
            raise StepError(f"intake failed: {exc}", kind="connection", retryable=True) from None

    def _failed(self, error: StepError, slot: float, attempt: int) -> Result:
        log.warning("poll of %s (slot %s, attempt %d) failed: %s", self.flow.id,
                    slot_text(slot), attempt, error.message)
        self._status(last_attempt_at=self.clock(), last_slot=slot_text(slot), attempt=attempt,
                     last_error={**error.as_dict(), "at": self.clock()}, state="failed")
        return Result(error=error)

    def _total(self) -> int:
        try:
            return int(cursors.read_status(self.app.store, self.flow.id).get("total_records", 0))
        except (StoreError, ValueError):
            return 0

    def _status(self, **changes: Any) -> None:
        try:
            cursors.write_status(self.app.store, self.flow.id, **changes)
        except StoreError:  # observability must not fail the poll; the next one writes again
            log.warning("poll status of %s not saved", self.flow.id, exc_info=True)


def _keep(lease: Lease) -> None:
    if not lease.held():
        raise LeaseLost(f"the poll lease {lease.name} passed to another scheduler; the cursor "
                        "is not committed")
