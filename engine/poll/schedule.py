"""When a poll is due: ``every:`` intervals aligned to the epoch, or ``cron:`` in a time zone.

Slot times are pure functions of the schedule, so every scheduler process computes the same
slot for the same moment — the slot is what the store's claim is keyed on. Cron arithmetic is
croniter's (time zones and daylight-saving jumps included), never a parser of our own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter


class Schedule:
    def __init__(self, *, every: float | None = None, cron: str | None = None,
                 timezone: str = "UTC"):
        if (every is None) == (cron is None):
            raise ValueError("a schedule needs exactly one of every or cron")
        if every is not None and every <= 0:
            raise ValueError("every must be longer than zero")
        self.every = every
        self.cron = cron
        self.tz = ZoneInfo(timezone)
        if cron is not None:
            croniter(cron)  # raises CroniterBadCronError (a ValueError) for a bad expression

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def next_after(self, t: float) -> float:
        """The first slot strictly after *t*."""
        if self.every is not None:
            return (math.floor(t / self.every) + 1) * self.every
        assert self.cron is not None
        return float(croniter(self.cron, self._local(t)).get_next(datetime).timestamp())

    def latest_at_or_before(self, t: float) -> float:
        """The last slot at or before *t*."""
        if self.every is not None:
            return math.floor(t / self.every) * self.every
        assert self.cron is not None
        prev = croniter(self.cron, self._local(t)).get_prev(datetime)
        # croniter's get_prev is strictly before; a slot exactly at t is the one after it
        candidate = croniter(self.cron, prev).get_next(datetime).timestamp()
        return float(candidate if candidate <= t else prev.timestamp())

    @property
    def interval_hint(self) -> float:
        """Roughly the time between two slots (for grace periods and claim lifetimes)."""
        if self.every is not None:
            return self.every
        now = datetime.now(UTC).timestamp()
        first = self.next_after(now)
        return self.next_after(first) - first


def slot_text(t: float) -> str:
    """A slot as ISO 8601 UTC text, stable to the microsecond (it names the slot's claim)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")
