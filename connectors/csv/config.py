"""Step configuration models for the ``csv`` connector.

These are the validated forms of the YAML under ``csv: {parse: {...}}`` and
``csv: {render: {...}}`` (and the fixed-width variants). Unknown keys are
rejected (``extra="forbid"``) so a misspelt option fails when the flow is
loaded, not silently at 3 a.m. Each model exposes ``parse``/``render`` so the
step implementation is a one-liner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from .columns import ColumnSpec
from .delimited import parse_csv, render_csv
from .errors import MAX_ERRORS
from .fixed_width import (
    FixedField,
    check_layout,
    check_layouts,
    parse_fixed_width,
    render_fixed_width,
)
from .text import check_encoding, encode_text

# YAML authors write "tab" more reliably than an escaped "\t".
_DELIMITER_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_TERMINATOR_ALIASES = {"crlf": "\r\n", "lf": "\n", "\\r\\n": "\r\n", "\\n": "\n"}

LineTerminator = Literal["\r\n", "\n"]


def _delimiter(value: Any) -> Any:
    return _DELIMITER_ALIASES.get(value, value) if isinstance(value, str) else value


def _terminator(value: Any) -> Any:
    return _TERMINATOR_ALIASES.get(value.lower(), value) if isinstance(value, str) else value


def _encoding(value: str) -> str:
    check_encoding(value)
    return value


class _Dialect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: Annotated[str, WithJsonSchema({"anyOf": [  # an alias is longer than one
        {"type": "string", "minLength": 1, "maxLength": 1},
        {"enum": sorted(_DELIMITER_ALIASES)}]})] = Field(
        default=",",
        min_length=1,
        max_length=1,
        description="Field separator: one character, or an alias tab, comma, semicolon, pipe.",
    )
    quotechar: str = Field(
        default='"',
        min_length=1,
        max_length=1,
        description="Character that quotes fields containing the delimiter or line breaks; "
        "doubled inside a quoted field.",
    )
    header: bool = Field(
        default=True, description="Whether the first record is a header of column names."
    )

    @field_validator("delimiter", mode="before")
    @classmethod
    def _alias_delimiter(cls, value: Any) -> Any:
        return _delimiter(value)

    @model_validator(mode="after")
    def _check_dialect(self) -> _Dialect:
        if self.delimiter == self.quotechar:
            raise ValueError("delimiter and quotechar must differ")
        if self.delimiter in "\r\n" or self.quotechar in "\r\n":
            raise ValueError("delimiter and quotechar cannot be line breaks")
        return self


def _unique_names(names: Sequence[str]) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate column names: {', '.join(duplicates)}")


class CsvParseConfig(_Dialect):
    """``csv: {parse: {...}}``: turn delimited text into a list of records."""

    columns: list[ColumnSpec] | None = Field(
        default=None,
        description="Declared columns with types. With a header they are matched by name "
        "(other header columns are ignored); without a header by position. Omit to get every "
        "header column as raw strings.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Encoding of byte input: utf-8, utf-8-sig, latin-1, cp1252 or any Python "
        "codec. A UTF-8 byte-order mark is always honoured.",
    )
    skip_blank_lines: bool = Field(
        default=True, description="Skip records whose fields are all empty or whitespace."
    )
    max_errors: int = Field(
        default=MAX_ERRORS,
        ge=1,
        le=10_000,
        description="Stop collecting after this many errors; the file is rejected either way.",
    )

    _check_encoding = field_validator("encoding")(_encoding)

    @model_validator(mode="after")
    def _check_columns(self) -> CsvParseConfig:
        if not self.header and not self.columns:
            raise ValueError("columns are required when header is false")
        if self.columns:
            _unique_names([column.name for column in self.columns])
        return self

    def parse(self, text: str | bytes) -> list[dict[str, Any]]:
        """Parse ``text`` with this configuration; raises FlatFileErrors."""
        return parse_csv(
            text,
            delimiter=self.delimiter,
            quotechar=self.quotechar,
            header=self.header,
            columns=self.columns,
            encoding=self.encoding,
            skip_blank_lines=self.skip_blank_lines,
            max_errors=self.max_errors,
        )


class CsvRenderConfig(_Dialect):
    """``csv: {render: {...}}``: turn a list of records into delimited text."""

    columns: list[str | ColumnSpec] = Field(
        min_length=1,
        description="Output columns in order: plain names, or column specs that also check "
        "type/required and apply a format (e.g. a date pattern or ',' decimal separator).",
    )
    line_terminator: LineTerminator = Field(
        default="\r\n",
        description="Record terminator: CRLF (RFC 4180, default) or LF; aliases crlf, lf.",
    )
    trailing_delimiter: bool = Field(
        default=False,
        description="End every line, the header included, with the delimiter (A;1;), as some "
        "imports require. Parsing needs no option: such a last empty field is dropped.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Encoding used by render_bytes (e.g. cp1252 for legacy ERP imports, "
        "utf-8-sig to add a BOM for Excel).",
    )

    _check_encoding = field_validator("encoding")(_encoding)

    @field_validator("line_terminator", mode="before")
    @classmethod
    def _alias_terminator(cls, value: Any) -> Any:
        return _terminator(value)

    @model_validator(mode="after")
    def _check_columns(self) -> CsvRenderConfig:
        _unique_names([c.name if isinstance(c, ColumnSpec) else c for c in self.columns])
        return self

    def render(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """Render ``rows`` with this configuration; raises FlatFileErrors."""
        return render_csv(
            rows,
            columns=self.columns,
            delimiter=self.delimiter,
            quotechar=self.quotechar,
            header=self.header,
            line_terminator=self.line_terminator,
            trailing_delimiter=self.trailing_delimiter,
        )

    def render_bytes(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        """Render and encode; a character the encoding cannot represent is an error."""
        return encode_text(self.render(rows), self.encoding)


class FixedWidthConfig(BaseModel):
    """Fixed-width step: one layout (``fields``) or one layout per record type (``layouts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: list[FixedField] | None = Field(
        default=None, description="Layout of every line when the file has a single record type."
    )
    layouts: dict[str, list[FixedField]] | None = Field(
        default=None,
        description="Layouts per record type code, e.g. {'H': [...], 'D': [...], 'T': [...]}. "
        "All codes have the same length N; the first N characters of a line select the layout.",
    )
    record_type_key: str = Field(
        default="record_type",
        min_length=1,
        description="Record key that carries the record type code when layouts are used.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Encoding of byte input and of render_bytes output, e.g. utf-8, cp1252.",
    )
    line_terminator: LineTerminator = Field(
        default="\r\n",
        description="Line terminator when rendering: CRLF (default) or LF; aliases crlf, lf.",
    )
    skip_blank_lines: bool = Field(default=True, description="Skip blank lines when parsing.")
    max_errors: int = Field(
        default=MAX_ERRORS,
        ge=1,
        le=10_000,
        description="Stop collecting after this many errors; the file is rejected either way.",
    )

    _check_encoding = field_validator("encoding")(_encoding)

    @field_validator("line_terminator", mode="before")
    @classmethod
    def _alias_terminator(cls, value: Any) -> Any:
        return _terminator(value)

    @model_validator(mode="after")
    def _check_layouts(self) -> FixedWidthConfig:
        if (self.fields is None) == (self.layouts is None):
            raise ValueError("set exactly one of fields or layouts")
        if self.fields is not None:
            check_layout(self.fields)
        if self.layouts is not None:
            check_layouts(self.layouts)
            for fields in self.layouts.values():
                if any(field.name == self.record_type_key for field in fields):
                    raise ValueError(
                        f"field name {self.record_type_key!r} collides with record_type_key"
                    )
        return self

    def parse(self, text: str | bytes) -> list[dict[str, Any]]:
        """Parse ``text`` with this layout; raises FlatFileErrors."""
        return parse_fixed_width(
            text,
            self.fields,
            layouts=self.layouts,
            record_type_key=self.record_type_key,
            encoding=self.encoding,
            skip_blank_lines=self.skip_blank_lines,
            max_errors=self.max_errors,
        )

    def render(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """Render ``rows`` with this layout; raises FlatFileErrors."""
        return render_fixed_width(
            rows,
            self.fields,
            layouts=self.layouts,
            record_type_key=self.record_type_key,
            line_terminator=self.line_terminator,
            max_errors=self.max_errors,
        )

    def render_bytes(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        """Render and encode with ``encoding``."""
        return encode_text(self.render(rows), self.encoding)
