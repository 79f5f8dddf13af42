"""Column specifications and the typed value conversions shared by CSV and fixed-width files.

Parsed values are JSON-friendly so they can go straight into a flow payload:
integer -> ``int``, decimal -> normalised decimal string (``"19.90"``, never a
float, see schemas/canonical/README.md), boolean -> ``bool``, date and datetime
-> ISO 8601 strings. A blank cell is ``None`` for every type.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["string", "integer", "decimal", "boolean", "date", "datetime"]

_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
# No exponent, no thousands separators: "1e3" and "1,000" in a partner file are
# far more often a broken export than an intended value.
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DEFAULT_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_DEFAULT_FALSE = frozenset({"false", "f", "no", "n", "0"})

JsonScalar = str | int | bool | None


class ColumnSpec(BaseModel):
    """One declared column of a delimited file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        description="Column name: the header text to match when the file has a header, "
        "and the key in the parsed record.",
    )
    type: ColumnType = Field(
        default="string",
        description="Value type: string, integer (-> int), decimal (-> normalised decimal "
        "string), boolean (-> true/false), date (-> YYYY-MM-DD), datetime (-> ISO 8601).",
    )
    required: bool = Field(
        default=False,
        description="When true a blank value is an error; otherwise a blank value becomes null.",
    )
    format: str | None = Field(
        default=None,
        description="Type-specific format. date/datetime: a strptime/strftime pattern such as "
        "'%d.%m.%Y' (default ISO 8601). decimal: the decimal separator, '.' (default) or ','. "
        "boolean: 'TRUE/FALSE' tokens such as 'Y/N' (default accepts true/false, yes/no, "
        "y/n, t/f, 1/0 and renders true/false). Not used for string and integer.",
    )

    @model_validator(mode="after")
    def _check_format(self) -> ColumnSpec:
        check_format(self.type, self.format)
        return self


def check_format(type_: ColumnType, fmt: str | None) -> None:
    """Reject formats that cannot work for the type, at configuration time."""
    if fmt is None:
        return
    if type_ in ("string", "integer"):
        raise ValueError(f"format is not supported for type {type_}")
    if type_ == "decimal" and fmt not in (".", ","):
        raise ValueError("decimal format must be the decimal separator '.' or ','")
    if type_ == "boolean":
        true_token, sep, false_token = fmt.partition("/")
        if not sep or not true_token or not false_token or true_token == false_token:
            raise ValueError("boolean format must be 'TRUE/FALSE' tokens, e.g. 'Y/N'")
    if type_ in ("date", "datetime") and "%" not in fmt:
        raise ValueError(f"{type_} format must be a strptime pattern such as '%d.%m.%Y'")


def parse_value(type_: ColumnType, fmt: str | None, raw: str) -> JsonScalar:
    """Convert the text of one cell; blank text gives ``None``.

    Raises ``ValueError`` with a message meant for the person fixing the file.
    """
    if raw.strip() == "":
        return None
    if type_ == "string":
        # Strings are returned verbatim: leading zeros and spaces can be significant
        # (item numbers, fixed codes).
        return raw
    text = raw.strip()
    if type_ == "integer":
        if not _INTEGER_RE.fullmatch(text):
            raise ValueError(f"not an integer: {raw!r}")
        return int(text)
    if type_ == "decimal":
        return _normalise_decimal(_parse_decimal(text, fmt or ".", raw))
    if type_ == "boolean":
        return _parse_boolean(text, fmt, raw)
    if type_ == "date":
        return _parse_date(text, fmt, raw).isoformat()
    return _parse_datetime(text, fmt, raw).isoformat()


def format_value(type_: ColumnType, fmt: str | None, value: Any) -> str:
    """Render one value as cell text; ``None`` gives the empty string.

    Accepts both Python objects (``Decimal``, ``date``...) and the JSON-friendly
    values :func:`parse_value` returns, so parse -> render round-trips.
    """
    if value is None:
        return ""
    if type_ == "string":
        return format_untyped(value)
    if type_ == "integer":
        return str(_as_integer(value))
    if type_ == "decimal":
        text = _normalise_decimal(as_decimal(value))
        return text.replace(".", ",") if fmt == "," else text
    if type_ == "boolean":
        if isinstance(value, str):
            value = _parse_boolean(value.strip(), fmt, value)
        if not isinstance(value, bool):
            raise ValueError(f"not a boolean: {value!r}")
        if fmt:
            true_token, _, false_token = fmt.partition("/")
            return true_token if value else false_token
        return "true" if value else "false"
    if type_ == "date":
        day = _as_date(value)
        return day.strftime(fmt) if fmt else day.isoformat()
    moment = _as_datetime(value)
    return moment.strftime(fmt) if fmt else moment.isoformat()


def format_untyped(value: Any) -> str:
    """Text for a column declared only by name: scalars in their natural JSON-ish form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal | float):
        return _normalise_decimal(as_decimal(value))
    if isinstance(value, date):  # datetime is a subclass of date
        return value.isoformat()
    raise ValueError(f"cannot write a {type(value).__name__} into a flat-file cell")


def as_decimal(value: Any) -> Decimal:
    """Exact decimal from str/int/Decimal/float; floats go through their shortest repr."""
    if isinstance(value, bool):
        raise ValueError(f"not a decimal: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # str() gives the shortest repr (19.99 -> "19.99"), not the binary expansion
        # Decimal(19.99) would produce.
        result = Decimal(str(value))
    elif isinstance(value, str) and _DECIMAL_RE.fullmatch(value.strip()):
        result = Decimal(value.strip())
    else:
        raise ValueError(f"not a decimal: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


def _parse_decimal(text: str, separator: str, raw: str) -> Decimal:
    if separator == ",":
        if "." in text:
            raise ValueError(f"not a decimal with ',' separator: {raw!r}")
        text = text.replace(",", ".")
    if not _DECIMAL_RE.fullmatch(text):
        raise ValueError(f"not a decimal: {raw!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid input
        raise ValueError(f"not a decimal: {raw!r}") from exc


def _normalise_decimal(value: Decimal) -> str:
    # Plain notation, scale kept ("19.90" stays "19.90"); "-0" becomes "0".
    if value == 0:
        value = abs(value)
    return format(value, "f")


def _parse_boolean(text: str, fmt: str | None, raw: str) -> bool:
    lowered = text.lower()
    if fmt:
        true_token, _, false_token = fmt.partition("/")
        if lowered == true_token.lower():
            return True
        if lowered == false_token.lower():
            return False
        raise ValueError(f"not a boolean ({fmt}): {raw!r}")
    if lowered in _DEFAULT_TRUE:
        return True
    if lowered in _DEFAULT_FALSE:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _parse_date(text: str, fmt: str | None, raw: str) -> date:
    try:
        if fmt:
            return datetime.strptime(text, fmt).date()
        return date.fromisoformat(text)
    except ValueError:
        expected = fmt or "YYYY-MM-DD"
        raise ValueError(f"not a date ({expected}): {raw!r}") from None


def _parse_datetime(text: str, fmt: str | None, raw: str) -> datetime:
    try:
        if fmt:
            return datetime.strptime(text, fmt)
        return datetime.fromisoformat(text)
    except ValueError:
        expected = fmt or "ISO 8601"
        raise ValueError(f"not a datetime ({expected}): {raw!r}") from None


def _as_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, Decimal | float):
        try:
            whole = int(value)
        except (ValueError, OverflowError):  # NaN, infinity
            raise ValueError(f"not an integer: {value!r}") from None
        if value == whole:
            return whole
    raise ValueError(f"not an integer: {value!r}")


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got a datetime: {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return _parse_date(value.strip(), None, value)
    raise ValueError(f"not a date: {value!r}")


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _parse_datetime(value.strip(), None, value)
    raise ValueError(f"not a datetime: {value!r}")
