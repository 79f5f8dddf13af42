"""Date/time and integer-picture functions: $now, $millis, $fromMillis,
$toMillis, $formatInteger, $parseInteger.

ISO 8601 formatting and parsing (the forms flows use) are implemented here.
Custom XPath picture strings (``[Y0001]-[M01]``, ``w`` for words, roman
numerals ...) are delegated to jsonata-python's picture engine: they are a
leaf library call with no evaluator state, and every suite case that takes
this route is counted in CONFORMANCE.md (see ``PICTURE_FALLBACK``).
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from typing import Any

from .errors import JsonataError
from .runtime import Frame
from .values import MAX_EXACT, UNDEFINED, finite_arg

_ISO_RE = re.compile(
    r"^(-?\d{4,})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$")

_utils: Any = None


def _picture_engine() -> Any:
    global _utils
    if _utils is None:
        limit = sys.getrecursionlimit()
        try:
            from jsonata import datetimeutils, jexception
        finally:
            sys.setrecursionlimit(limit)
        _utils = (datetimeutils.DateTimeUtils, jexception.JException)
    return _utils


def _delegate(fn_name: str, *args: Any) -> Any:
    engine, jexc = _picture_engine()
    try:
        result = getattr(engine, fn_name)(*args)
    except jexc as exc:
        raise JsonataError(exc.error, value=exc.current) from None
    except RuntimeError as exc:
        from .parse import runtime_error_code
        raise JsonataError(runtime_error_code(exc) or "D3137", value=str(exc)) from None
    except KeyError as exc:
        # jsonata-python looks unknown picture components up in a dict
        raise JsonataError("D3132", value=str(exc.args[0]) if exc.args else None) from None
    except (ValueError, OverflowError, IndexError) as exc:
        raise JsonataError("D3137", value=str(exc)) from None
    return UNDEFINED if result is None else result


def iso_from_millis(millis: int) -> str:
    dt = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(milliseconds=millis)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def from_millis(millis: Any, picture: Any = UNDEFINED, timezone: Any = UNDEFINED) -> Any:
    if millis is UNDEFINED:
        return UNDEFINED
    if picture is UNDEFINED and timezone is UNDEFINED:
        return iso_from_millis(int(millis))
    return _delegate("format_datetime", int(millis),
                     None if picture is UNDEFINED else picture,
                     None if timezone is UNDEFINED else timezone)


def to_millis(timestamp: Any, picture: Any = UNDEFINED) -> Any:
    if timestamp is UNDEFINED:
        return UNDEFINED
    if picture is not UNDEFINED:
        return _delegate("parse_datetime", _fraction_as_millis(timestamp, picture), picture)
    m = _ISO_RE.match(timestamp)
    if m is None:
        raise JsonataError("D3110", value=timestamp)
    year, month, day, hour, minute, sec, frac, tz = m.groups()
    try:
        dt = _dt.datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                          int(minute or 0), int(sec or 0), tzinfo=_dt.UTC)
    except ValueError:
        raise JsonataError("D3110", value=timestamp) from None
    ms = int((frac or "0")[:3].ljust(3, "0"))
    offset = 0
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:4] or 0))
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return int((dt - epoch).total_seconds()) * 1000 + ms - offset * 60000


def _fraction_as_millis(timestamp: str, picture: str) -> str:
    """``timestamp`` with the digits an ``[f]`` component matched written as
    milliseconds: jsonata-js reads them as a fraction of a second (".5" is 500 ms,
    ".01987" 19 ms); the delegated engine reads them as a count of milliseconds."""
    engine, _ = _picture_engine()
    try:
        parts = engine._generate_regex(engine._analyse_datetime_picture(picture)).parts
        index = [p.component for p in parts].index("f") + 1
        m = re.match("^" + "".join(f"({p.regex})" for p in parts) + "$", timestamp, re.I)
    except Exception:  # no [f], or a picture the delegated call reports properly
        return timestamp
    if m is None or len(m.group(index)) == 3:
        return timestamp
    millis = (m.group(index) + "00")[:3]
    return timestamp[:m.start(index)] + millis + timestamp[m.end(index):]


def now(env: Frame, picture: Any = UNDEFINED, timezone: Any = UNDEFINED) -> Any:
    return from_millis(env.state.now_ms, picture, timezone)


def millis(env: Frame) -> Any:
    return env.state.now_ms


def format_integer(value: Any, picture: Any) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    finite_arg(value, "formatInteger")
    if type(value) is float and abs(value) >= MAX_EXACT and picture.lstrip()[:1] in ("w", "W"):
        # jsonata-js spells a number beyond 2**53 with double arithmetic, which the
        # delegated engine repeats on a float: 1e46 is "ten billion trillion trillion
        # trillion", not the words of the double's exact binary value
        return _delegate("format_integer", value, picture)
    return _delegate("format_integer", int(value), picture)


def parse_integer(value: Any, picture: Any) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    return _delegate("parse_integer", value, picture)


PICTURE_FALLBACK = ("$formatInteger", "$parseInteger", "$fromMillis(<picture>)",
                    "$toMillis(<picture>)", "$now(<picture>)")
