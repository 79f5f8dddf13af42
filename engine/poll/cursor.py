"""High-watermark cursors of HTTP polls, and the poll status record kept beside them.

A cursor is text as the partner writes it: an ISO 8601 timestamp (``2026-01-01T00:00:00Z``) or
a number (epoch seconds, or an id when no lookback is set). It only moves forward, and the
lookback window is subtracted when a request is built, never from the stored value, so a record
written late just behind the watermark is read again by the next poll (and deduplicated by its
idempotency key) instead of being lost.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.store.base import Store


def _as_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _key(text: str) -> tuple[int, Any]:
    """Sort key: timestamps by instant, numbers by value, anything else as text."""
    when = _as_datetime(text)
    if when is not None:
        return (0, when)
    number = _as_number(text)
    if number is not None:
        return (1, number)
    return (2, text)


def later(a: str | None, b: str | None) -> str | None:
    """The higher watermark of *a* and *b* (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    ka, kb = _key(a), _key(b)
    if ka[0] != kb[0]:  # mixed kinds: the partner changed format; trust the newest value
        return b
    return b if kb[1] > ka[1] else a


def minus(text: str, seconds: float) -> str:
    """*text* moved back by *seconds*, written the way it came (``Z`` or offset, int or float)."""
    if not seconds:
        return text
    when = _as_datetime(text)
    if when is not None:
        moved = (when - timedelta(seconds=seconds)).isoformat()
        if text.endswith(("Z", "z")):
            moved = moved.replace("+00:00", "Z")
        elif "+" not in text[10:] and "-" not in text[10:]:
            moved = moved.rsplit("+", 1)[0]  # the partner wrote a naive timestamp
        return moved
    number = _as_number(text)
    if number is not None:
        moved_number = number - seconds
        return str(int(moved_number)) if moved_number.is_integer() and "." not in text \
            else repr(moved_number)
    return text  # an opaque cursor cannot be moved back; the lookback does not apply


def value_text(value: Any) -> str | None:
    """A record's cursor field as cursor text (None when the record lacks it)."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def field_value(record: Any, path: str) -> Any:
    """``updated_at`` or a dotted path such as ``meta.updated_at`` inside *record*."""
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


def lag_seconds(cursor: str | None, now: float) -> float | None:
    """now − cursor for a timestamp cursor (how far behind the partner's data we are)."""
    if cursor is None:
        return None
    when = _as_datetime(cursor)
    return None if when is None else round(now - when.timestamp(), 3)


# -- store records ---------------------------------------------------------------------------
def cursor_name(flow_id: str) -> str:
    return f"poll:{flow_id}"


def status_name(flow_id: str) -> str:
    return f"poll:{flow_id}:status"


def read_status(store: Store, flow_id: str) -> dict[str, Any]:
    """The poll status of *flow_id* (for the console and metrics): last_poll_at, records,
    pages, cursor, lag, last_error, attempt, last_slot, ...; empty before the first poll."""
    text = store.get_cursor(status_name(flow_id))
    return json.loads(text) if text else {}


def write_status(store: Store, flow_id: str, **changes: Any) -> dict[str, Any]:
    status = read_status(store, flow_id)
    status.update(changes, updated_at=time.time())
    store.set_cursor(status_name(flow_id), json.dumps(status, default=str))
    return status
