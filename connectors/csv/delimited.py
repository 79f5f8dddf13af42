"""Delimited (CSV, semicolon, tab) file parsing and rendering with typed columns.

Row numbers in errors count physical records the way a spreadsheet shows them:
the header is row 1, the first data record row 2, blank records included. A
quoted value spanning several lines is one record.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .columns import ColumnSpec, format_untyped, format_value, parse_value
from .errors import MAX_ERRORS, ErrorCollector
from .text import decode_text


def parse_csv(
    text: str | bytes,
    *,
    delimiter: str = ",",
    quotechar: str = '"',
    header: bool = True,
    columns: Sequence[ColumnSpec] | None = None,
    encoding: str = "utf-8",
    skip_blank_lines: bool = True,
    max_errors: int = MAX_ERRORS,
) -> list[dict[str, Any]]:
    """Parse delimited text into one dict per data record.

    * ``header=True, columns=None``: keys from the header, values are the raw
      strings of the file (``""`` stays ``""``).
    * ``header=True, columns=[...]``: header columns are matched by name, in any
      order; undeclared header columns are ignored; a declared column missing
      from the header is an error if required, else null in every record.
      Values are converted by type and blank cells become ``None``.
    * ``header=False``: ``columns`` is mandatory and matched by position.

    Records whose fields are all blank are skipped when ``skip_blank_lines``.
    Every problem is collected (up to ``max_errors``) and raised together as
    :class:`FlatFileErrors`; nothing is returned for a file with errors.
    """
    _check_dialect(delimiter, quotechar)
    if not header and columns is None:
        raise ValueError("columns are required when the file has no header")
    if columns is not None:
        _check_unique([spec.name for spec in columns])

    collector = ErrorCollector(max_errors)
    records = _records(decode_text(text, encoding), delimiter, quotechar, collector)
    rows: list[dict[str, Any]] = []

    positions: list[int | None] | None = None  # index in the record for each declared column
    names: list[str] | None = None  # header names when no columns are declared
    expected_fields = len(columns) if columns is not None and not header else None

    for row_number, fields in records:
        if _is_blank(fields):
            if skip_blank_lines or (header and expected_fields is None):
                continue  # a blank line before the header never is the header
            fields = [""] * (expected_fields or 0)
        if header and expected_fields is None:
            names = _read_header(fields, row_number, collector)
            if columns is not None:
                positions = _match_columns(columns, names, row_number, collector)
            expected_fields = len(names)
            if collector.errors:
                break  # a broken header makes every following error noise
            continue
        if not _check_width(fields, expected_fields or 0, row_number, collector):
            continue
        if columns is None:
            assert names is not None
            rows.append(dict(zip(names, fields, strict=False)))
        else:
            rows.append(_convert(fields, columns, positions, row_number, collector))
        if collector.truncated:
            break

    collector.raise_if_any()
    return rows


def render_csv(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str | ColumnSpec],
    delimiter: str = ",",
    quotechar: str = '"',
    header: bool = True,
    line_terminator: str = "\r\n",
    trailing_delimiter: bool = False,
    max_errors: int = MAX_ERRORS,
) -> str:
    """Render records as delimited text.

    ``columns`` fixes the order and the header. A plain name writes the value
    in its natural text form (``None`` -> empty, ``True`` -> ``true``, Decimal in
    plain notation); a :class:`ColumnSpec` also checks type and ``required`` and
    applies its format. Keys not listed in ``columns`` are not written. Fields
    are quoted only when they contain the delimiter, quote character or a line
    break. ``line_terminator`` defaults to CRLF as RFC 4180 specifies.
    ``trailing_delimiter`` ends every line, the header's too, with the delimiter, as some
    ERP and WMS imports require.
    """
    _check_dialect(delimiter, quotechar)
    if not columns:
        raise ValueError("at least one column is required")
    specs = [c if isinstance(c, ColumnSpec) else None for c in columns]
    names = [c.name if isinstance(c, ColumnSpec) else c for c in columns]
    _check_unique(names)

    collector = ErrorCollector(max_errors)
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        quotechar=quotechar,
        lineterminator=line_terminator,
        quoting=csv.QUOTE_MINIMAL,
        doublequote=True,
    )
    end = [""] if trailing_delimiter else []  # an empty last cell writes just the delimiter
    if header:
        writer.writerow([*names, *end])
    first_row = 2 if header else 1
    for index, row in enumerate(rows):
        row_number = first_row + index
        if not isinstance(row, Mapping):
            collector.add(f"record is a {type(row).__name__}, not a mapping", row_number)
            continue
        cells = []
        for name, spec in zip(names, specs, strict=True):
            value = row.get(name)
            try:
                if spec is None:
                    cells.append(format_untyped(value))
                else:
                    if value is None and spec.required:
                        raise ValueError("required value is missing")
                    cells.append(format_value(spec.type, spec.format, value))
            except ValueError as exc:
                collector.add(str(exc), row_number, name)
        writer.writerow([*cells, *end])
        if collector.truncated:
            break
    collector.raise_if_any()
    return buffer.getvalue()


def _check_dialect(delimiter: str, quotechar: str) -> None:
    if len(delimiter) != 1 or len(quotechar) != 1:
        raise ValueError("delimiter and quotechar must be single characters")
    if delimiter == quotechar:
        raise ValueError("delimiter and quotechar must differ")
    if delimiter in "\r\n" or quotechar in "\r\n":
        raise ValueError("delimiter and quotechar cannot be line breaks")


def _check_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    duplicates: set[str] = set()
    for name in names:
        (duplicates if name in seen else seen).add(name)
    if duplicates:
        raise ValueError(f"duplicate column names: {', '.join(sorted(duplicates))}")


def _records(
    text: str, delimiter: str, quotechar: str, collector: ErrorCollector
) -> Iterator[tuple[int, list[str]]]:
    """Yield (row number, fields); a quoting error ends the file with an error."""
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=delimiter,
        quotechar=quotechar,
        doublequote=True,
        # strict: '"abc"def' and an unterminated quote are errors, not silently
        # glued into one value.
        strict=True,
    )
    row_number = 0
    while True:
        row_number += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot resynchronise after broken quoting, so stop here.
            collector.add(f"malformed record: {exc}", row_number)
            return
        yield row_number, fields


def _is_blank(fields: list[str]) -> bool:
    return all(field.strip() == "" for field in fields)


def _read_header(fields: list[str], row_number: int, collector: ErrorCollector) -> list[str]:
    names = [field.strip() for field in fields]
    while len(names) > 1 and not names[-1]:
        # A delimiter ending the header line (as on every line of such exports) names no
        # column; the data lines' empty last cells are then dropped by _check_width. A
        # nameless column in the middle stays an error: its data would have no key.
        names.pop()
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            collector.add(f"header column {position} has no name", row_number)
        elif name in seen:
            collector.add("duplicate column name in header", row_number, name)
        seen.add(name)
    return names


def _match_columns(
    columns: Sequence[ColumnSpec], names: list[str], row_number: int, collector: ErrorCollector
) -> list[int | None]:
    positions: list[int | None] = []
    for spec in columns:
        if spec.name in names:
            positions.append(names.index(spec.name))
        else:
            if spec.required:
                collector.add("required column is missing from the header", row_number, spec.name)
            positions.append(None)
    return positions


def _check_width(
    fields: list[str], expected: int, row_number: int, collector: ErrorCollector
) -> bool:
    if len(fields) > expected and _is_blank(fields[expected:]):
        # Spreadsheet exports often end lines with stray delimiters; empty extra
        # cells carry no data, so they are dropped rather than rejected.
        del fields[expected:]
    if len(fields) != expected:
        collector.add(f"expected {expected} fields, found {len(fields)}", row_number)
        return False
    return True


def _convert(
    fields: list[str],
    columns: Sequence[ColumnSpec],
    positions: list[int | None] | None,
    row_number: int,
    collector: ErrorCollector,
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for index, spec in enumerate(columns):
        position = index if positions is None else positions[index]
        raw = "" if position is None else fields[position]
        try:
            value = parse_value(spec.type, spec.format, raw)
            if value is None and spec.required:
                raise ValueError("required value is missing")
        except ValueError as exc:
            collector.add(str(exc), row_number, spec.name)
            value = None
        record[spec.name] = value
    return record
