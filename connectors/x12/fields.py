"""Typed-field primitives for the per-transaction-set views (ts850 … ts997).

A typed view maps named fields to element positions with small tables
(``Field("po_number", 3, "AN")``); :func:`read` turns a segment into a dict of
the present fields with numbers and dates checked, :func:`write` turns such a
dict back into a segment.  Money and measured quantities are decimal strings
(the project's canonical convention), counts are ints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from .errors import ErrorSink, X12Error
from .tokenize import Segment, format_number

Item = tuple[int, Segment]  # (1-based position in the interchange, segment)
Kind = Literal["AN", "ID", "DT", "TM", "N0", "N2", "R"]

_DECIMAL = re.compile(r"-?(\d+\.?\d*|\.\d+)")
_INTEGER = re.compile(r"-?\d+")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Field:
    name: str
    position: int
    kind: Kind = "AN"


@dataclass(frozen=True)
class SetSpec:
    """What the envelope parser and builder need to know about one set."""

    set_id: str
    functional_id: str  # GS01 for groups carrying this set
    segments: frozenset[str]  # dictionary for the unknown-segment check
    view: Callable[[list[Item], ErrorSink], dict[str, Any]]
    build: Callable[[Mapping[str, Any]], list[Segment]] | None
    #: (GS08 version, segments the standard added to this set in that version)
    added: tuple[tuple[str, frozenset[str]], ...] = ()

    def allowed(self, version: str) -> frozenset[str]:
        """The segment dictionary for a group of this GS08 version (``004030``,
        ``005010VICS``…); a version we cannot read gets the newest dictionary."""
        release = version[:6]
        if not release.isdigit():
            release = "999999"
        out = self.segments
        for since, segments in self.added:
            if release >= since:
                out = out | segments
        return out


def text(seg: Segment, position: int) -> str:
    """Element as plain text; a composite yields its first component."""
    if position >= len(seg):
        return ""
    value = seg[position]
    if isinstance(value, dict):
        reps = value.get("repeat") or [""]
        value = reps[0]
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def convert(item: Item, position: int, kind: Kind, sink: ErrorSink) -> Any:
    """Checked conversion of one element; empty elements give ``None``."""
    index, seg = item
    # Senders that fill fixed-width fields pad values with spaces ("EA ", "  12"); the
    # padding is no data (the standard suppresses trailing spaces), the generic segment
    # keeps it.
    raw = text(seg, position)
    raw = raw.rstrip(" ") if kind in ("AN", "ID") else raw.strip(" ")
    if raw == "":
        return None
    if kind in ("AN", "ID"):
        return raw
    found = type_problem(raw, kind)
    if found:
        problem, code = found
        sink.report(
            X12Error(
                f"{problem}, found {raw!r}",
                index,
                str(seg[0]),
                position,
                level="element",
                code=code,
                value=raw,
            )
        )
        return raw  # lenient mode keeps the text so nothing is lost
    if kind == "N0":
        return int(raw)
    if kind == "N2":
        # Money with two implied decimals: "151548" is "1515.48".
        return str(Decimal(int(raw)).scaleb(-2))
    # R keeps the sender's text ("3.150" stays "3.150"), the project's
    # decimal-string convention for money and measured quantities.
    return raw


def type_problem(raw: str, kind: Kind) -> tuple[str, str] | None:
    """What is wrong with a non-empty value of a numeric, date or time type, and its AK403
    code; ``None`` when it is fine (AN and ID take any text)."""
    if kind == "DT" and not (raw.isdigit() and len(raw) in (6, 8)):
        return "expected a date CCYYMMDD or YYMMDD", "8"
    if kind == "TM" and not (raw.isdigit() and 4 <= len(raw) <= 8):
        return "expected a time HHMM[SS[dd]]", "9"
    if kind in ("N0", "N2") and not _INTEGER.fullmatch(raw):
        return "expected a whole number" + (" (2 implied decimals)" if kind == "N2" else ""), "6"
    if kind == "R" and not _DECIMAL.fullmatch(raw):
        return "expected a decimal number", "6"  # AK403 6: invalid character in data element
    return None


def read(item: Item, fields: Iterable[Field], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        value = convert(item, f.position, f.kind, sink)
        if value is not None:
            out[f.name] = value
    return out


def encode(value: Any, kind: Kind) -> Any:
    """Typed value → element value; N2 amounts become whole cents."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value  # refused with a located error by the renderer
    if kind == "N2" and (isinstance(value, int | float | Decimal) or _is_decimal(value)):
        cents = decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP).scaleb(2)
        return str(int(cents))
    if isinstance(value, Decimal):
        return _plain_text(value)
    if isinstance(value, int | float):
        return format_number(value)
    return value


def _is_decimal(value: Any) -> bool:
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


def decimal(value: Any) -> Decimal:
    """Loose Decimal for computed totals; non-numbers count as zero."""
    if isinstance(value, bool):
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text, not the binary expansion
    if _is_decimal(value):
        return Decimal(value)
    return Decimal(0)


def _plain_text(value: Decimal) -> str:
    """Decimal as plain text without exponent: Decimal("1E+2") → "100"."""
    return format(value, "f")


def total(value: Decimal | int) -> str:
    """A computed sum as a decimal string, trailing zeros of the inputs kept."""
    return _plain_text(Decimal(value))


def segment(seg_id: str, *elements: Any) -> Segment:
    """Build a segment, dropping trailing empty elements as X12 requires."""
    values = ["" if e is None else e for e in elements]
    while values and values[-1] == "":
        values.pop()
    return [seg_id, *values]


def write(seg_id: str, data: Mapping[str, Any], fields: Iterable[Field]) -> Segment:
    fields = list(fields)
    width = max((f.position for f in fields), default=0)
    values: list[Any] = [""] * width
    for f in fields:
        if f.name in data:
            values[f.position - 1] = encode(data[f.name], f.kind)
    return segment(seg_id, *values)


def write_list(
    seg_id: str, rows: Iterable[Mapping[str, Any]] | None, spec: Iterable[Field]
) -> list[Segment]:
    spec = list(spec)
    return [write(seg_id, row, spec) for row in rows or []]


def dictionary(ids: str) -> frozenset[str]:
    """A per-set segment dictionary written as a space-separated list of ids."""
    return frozenset(ids.split())
