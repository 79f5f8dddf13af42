"""Fixed-width (positional) flat files: parsing, rendering and record-type dispatch.

Partner files (bank statements, older EDI-like supplier feeds, WMS interfaces)
often mix record layouts in one file: a header record, detail records and a
trailer, told apart by the first characters of each line. ``layouts`` maps
each record-type code to its fields; every code has the same length N and the
first N characters of a line select the layout.

Positions are 1-based (``start=1`` is the first character) because that is
how partner specifications print them; copying "positions 4-13" from a spec
becomes ``start=4, length=10``.

Row numbers in errors are physical line numbers (1-based).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .columns import ColumnType, as_decimal, check_format, format_value, parse_value
from .errors import MAX_ERRORS, ErrorCollector
from .text import decode_text, split_lines

_NUMERIC_TYPES = ("integer", "decimal")


class FixedField(BaseModel):
    """One field of a fixed-width record layout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Key of the value in the parsed record.")
    start: int = Field(
        ge=1, description="1-based position of the first character, as in partner specs."
    )
    length: int = Field(ge=1, description="Width of the field in characters.")
    type: ColumnType = Field(
        default="string",
        description="Value type: string, integer, decimal, boolean, date or datetime "
        "(same conversions as CSV columns).",
    )
    required: bool = Field(default=False, description="When true a blank field is an error.")
    format: str | None = Field(
        default=None,
        description="Type-specific format as for CSV columns, e.g. '%Y%m%d' for a date or "
        "'J/N' for a boolean.",
    )
    align: Literal["left", "right"] | None = Field(
        default=None,
        description="Side the value is aligned to; the padding fills the other side. "
        "Default: right for integer and decimal, left otherwise.",
    )
    pad: str = Field(
        default=" ",
        min_length=1,
        max_length=1,
        description="Padding character, usually ' ' or '0' for zero-filled numbers.",
    )
    implied_decimals: int = Field(
        default=0,
        ge=0,
        le=12,
        description="Decimal type only: number of implied decimal places, so '0001999' with "
        "2 reads as 19.99 and 19.99 renders as digits without a separator.",
    )

    @model_validator(mode="after")
    def _check(self) -> FixedField:
        check_format(self.type, self.format)
        if self.implied_decimals and self.type != "decimal":
            raise ValueError("implied_decimals applies to decimal fields only")
        if self.implied_decimals and self.format:
            raise ValueError("implied_decimals and a decimal separator format exclude each other")
        return self

    @property
    def end(self) -> int:
        """0-based exclusive end index in the line."""
        return self.start - 1 + self.length

    @property
    def alignment(self) -> Literal["left", "right"]:
        if self.align is not None:
            return self.align
        return "right" if self.type in _NUMERIC_TYPES else "left"


def check_layout(fields: Sequence[FixedField]) -> None:
    """Reject overlapping fields and duplicate names (configuration errors)."""
    if not fields:
        raise ValueError("a layout needs at least one field")
    names = [field.name for field in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate field names in layout: {names}")
    ordered = sorted(fields, key=lambda field: field.start)
    for before, after in itertools.pairwise(ordered):
        if after.start - 1 < before.end:
            raise ValueError(f"fields {before.name!r} and {after.name!r} overlap")


def check_layouts(layouts: Mapping[str, Sequence[FixedField]]) -> int:
    """Validate a record-type dispatch table; return the code length N."""
    if not layouts:
        raise ValueError("layouts must contain at least one record type")
    lengths = {len(code) for code in layouts}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("all record type codes must be non-empty and of the same length")
    for fields in layouts.values():
        check_layout(fields)
    return lengths.pop()


def parse_fixed_width(
    text: str | bytes,
    fields: Sequence[FixedField] | None = None,
    *,
    layouts: Mapping[str, Sequence[FixedField]] | None = None,
    record_type_key: str = "record_type",
    encoding: str = "utf-8",
    skip_blank_lines: bool = True,
    max_errors: int = MAX_ERRORS,
) -> list[dict[str, Any]]:
    """Parse fixed-width lines with one layout (``fields``) or per record type (``layouts``).

    With ``layouts`` each record also gets ``record_type_key`` set to its code,
    so a flow can split header, detail and trailer records. Lines shorter than
    the layout are treated as padded with spaces (trailing blanks are routinely
    trimmed in transit); longer lines with non-blank excess are errors because
    they usually mean the wrong layout. All errors are collected and raised as
    :class:`FlatFileErrors`.
    """
    code_length = _check_arguments(fields, layouts)
    collector = ErrorCollector(max_errors)
    records: list[dict[str, Any]] = []
    for row_number, line in enumerate(split_lines(decode_text(text, encoding)), start=1):
        if skip_blank_lines and line.strip() == "":
            continue
        record: dict[str, Any] = {}
        if layouts is not None:
            code = line[:code_length]
            if code not in layouts:
                collector.add(f"unknown record type {code!r}", row_number)
                continue
            record[record_type_key] = code
            layout = layouts[code]
        else:
            assert fields is not None
            layout = fields
        width = max(field.end for field in layout)
        if len(line) > width and line[width:].strip():
            collector.add(
                f"line has {len(line)} characters, the layout ends at {width}", row_number
            )
            continue
        for field in layout:
            try:
                record[field.name] = _parse_field(field, line[field.start - 1 : field.end])
            except ValueError as exc:
                collector.add(str(exc), row_number, field.name)
        records.append(record)
        if collector.truncated:
            break
    collector.raise_if_any()
    return records


def render_fixed_width(
    rows: Sequence[Mapping[str, Any]],
    fields: Sequence[FixedField] | None = None,
    *,
    layouts: Mapping[str, Sequence[FixedField]] | None = None,
    record_type_key: str = "record_type",
    line_terminator: str = "\r\n",
    max_errors: int = MAX_ERRORS,
) -> str:
    """Render records as fixed-width lines padded to the full layout width.

    A value longer than its field is an error (never silently cut: a truncated
    amount or item number is worse than a rejected file). With ``layouts`` each
    row's ``record_type_key`` selects the layout and the code is written at
    positions 1..N; a field covering those positions must hold the code.
    Gaps between fields are filled with spaces. Every line ends with
    ``line_terminator``.
    """
    code_length = _check_arguments(fields, layouts)
    collector = ErrorCollector(max_errors)
    lines: list[str] = []
    for row_number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            collector.add(f"record is a {type(row).__name__}, not a mapping", row_number)
            continue
        code = ""
        if layouts is not None:
            code = str(row.get(record_type_key, ""))
            if code not in layouts:
                collector.add(f"unknown record type {code!r}", row_number, record_type_key)
                continue
            layout = layouts[code]
        else:
            assert fields is not None
            layout = fields
        chars = [" "] * max(field.end for field in layout)
        for field in layout:
            value = row.get(field.name)
            if value is None and code and field.end <= code_length:
                value = code[field.start - 1 : field.end]  # record type field defaults to the code
            try:
                chars[field.start - 1 : field.end] = _render_field(field, value)
            except ValueError as exc:
                collector.add(str(exc), row_number, field.name)
        if code:
            line_code = "".join(chars[:code_length])
            if line_code.strip() == "":
                chars[:code_length] = code
            elif line_code != code:
                collector.add(
                    f"record type positions hold {line_code!r}, expected {code!r}", row_number
                )
        lines.append("".join(chars))
        if collector.truncated:
            break
    collector.raise_if_any()
    return "".join(line + line_terminator for line in lines)


def _check_arguments(
    fields: Sequence[FixedField] | None, layouts: Mapping[str, Sequence[FixedField]] | None
) -> int:
    if (fields is None) == (layouts is None):
        raise ValueError("pass exactly one of fields or layouts")
    if layouts is not None:
        return check_layouts(layouts)
    assert fields is not None
    check_layout(fields)
    return 0


def _parse_field(field: FixedField, raw: str) -> Any:
    text = _strip_padding(field, raw)
    if field.implied_decimals and text is not None and text.strip():
        digits = text.strip()
        sign = digits[0] if digits[0] in "+-" else ""
        if not digits[len(sign) :].isdigit():
            raise ValueError(
                f"not a number with {field.implied_decimals} implied decimals: {raw!r}"
            )
        text = format(Decimal(digits).scaleb(-field.implied_decimals), "f")
    value = parse_value(field.type, field.format, text or "")
    if value is None and field.required:
        raise ValueError("required value is missing")
    return value


def _strip_padding(field: FixedField, raw: str) -> str:
    # Only the padded side is stripped: a left-aligned "  X" keeps its leading spaces.
    if field.pad == " ":
        return raw.rstrip(" ") if field.alignment == "left" else raw.lstrip(" ")
    if field.alignment == "left":
        return raw.rstrip(field.pad + " ")
    stripped = raw.strip(" ")
    sign = stripped[:1] if stripped[:1] in ("+", "-") else ""
    body = stripped[len(sign) :].lstrip(field.pad)
    if not body and stripped[len(sign) :]:
        # "0000" is zero, not a blank field.
        body = field.pad if field.type in _NUMERIC_TYPES else ""
    return sign + body


def _render_field(field: FixedField, value: Any) -> str:
    if value is None:
        if field.required:
            raise ValueError("required value is missing")
        return " " * field.length
    if field.implied_decimals:
        scaled = as_decimal(value).scaleb(field.implied_decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value!r} has more than {field.implied_decimals} decimal places")
        text = str(int(scaled))
    else:
        text = format_value(field.type, field.format, value)
    if len(text) > field.length:
        raise ValueError(
            f"value {text!r} is {len(text)} characters, the field holds {field.length}"
        )
    fill = field.pad * (field.length - len(text))
    if field.alignment == "left":
        return text + fill
    if field.pad != " " and text[:1] in ("+", "-"):
        return text[0] + fill + text[1:]  # sign before the zeros: -0012, not 00-12
    return fill + text
