"""The flows page's health over a window, as plain data: the charts, their table and
``/api/activity`` all read this one answer, so what is drawn is what is listed.

A window ends with the bucket now under way and reaches back its length: the last hour in
minutes, the last day in half hours, the last week in hours (docs/operations.md).
"""

from __future__ import annotations

import difflib
import math
import time
from typing import Any

from engine.app import App
from engine.console.views import BadQuery
from engine.store.activity import Bucket, total

#: window key → (label, length in seconds, bucket in seconds)
WINDOWS: dict[str, tuple[str, int, int]] = {
    "1h": ("last hour", 3600, 60),
    "24h": ("last 24 hours", 86400, 1800),
    "7d": ("last 7 days", 7 * 86400, 3600),
}
DEFAULT_WINDOW = "24h"


def window_of(params: dict[str, str]) -> str:
    window = params.get("window") or DEFAULT_WINDOW
    if window not in WINDOWS:
        raise BadQuery(f"window: '{window}' is not a window; choose one of "
                       f"{', '.join(WINDOWS)}")
    return window


def flow_of(app: App, params: dict[str, str]) -> str | None:
    flow = params.get("flow") or None
    if flow is not None and flow not in app.flows.flows:
        close = difflib.get_close_matches(flow, list(app.flows.flows), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise BadQuery(f"flow: no flow '{flow}' is loaded{hint}")
    return flow


def numbers(bucket: Bucket) -> dict[str, Any]:
    rate = bucket.error_rate
    return {"start": bucket.start, "finished": bucket.finished, "failed": bucket.failed,
            "error_rate": None if rate is None else round(100 * rate, 2),
            "p95_seconds": bucket.p95, "dead_letters": bucket.dead_letters}


def activity(app: App, params: dict[str, str], now: float | None = None) -> dict[str, Any]:
    """The chosen window (``window``: 1h, 24h, 7d) of one flow (``flow``) or of all."""
    window, flow = window_of(params), flow_of(app, params)
    label, length, width = WINDOWS[window]
    until = math.ceil((time.time() if now is None else now) / width) * width
    buckets = app.store.activity(flow, until - length, until, width)
    return {"window": window, "label": label, "flow": flow, "bucket_seconds": width,
            "since": until - length, "until": until,
            "buckets": [numbers(b) for b in buckets], "total": numbers(total(buckets)),
            "windows": [{"window": key, "label": text} for key, (text, _, _) in WINDOWS.items()]}
