"""Flat-file library for the ``csv`` connector: delimited and fixed-width files.

Public API:

* :func:`parse_csv` / :func:`render_csv` - delimited text with optional typed
  columns (:class:`ColumnSpec`).
* :func:`parse_fixed_width` / :func:`render_fixed_width` - positional records
  (:class:`FixedField`), optionally dispatched by record type.
* :class:`CsvParseConfig`, :class:`CsvRenderConfig`, :class:`FixedWidthConfig`
  - pydantic models for the YAML step configuration.
* :class:`FlatFileError` (one problem, with row and column) and
  :class:`FlatFileErrors` (every problem of a file, raised by all functions).

Parsed values are JSON-friendly: int, bool, None, and strings for decimals
(normalised, never float), dates and datetimes (ISO 8601).
"""

from .columns import ColumnSpec, ColumnType
from .config import CsvParseConfig, CsvRenderConfig, FixedWidthConfig
from .delimited import parse_csv, render_csv
from .errors import MAX_ERRORS, FlatFileError, FlatFileErrors
from .fixed_width import FixedField, parse_fixed_width, render_fixed_width
from .text import decode_text, encode_text

__all__ = [
    "MAX_ERRORS",
    "ColumnSpec",
    "ColumnType",
    "CsvParseConfig",
    "CsvRenderConfig",
    "FixedField",
    "FixedWidthConfig",
    "FlatFileError",
    "FlatFileErrors",
    "decode_text",
    "encode_text",
    "parse_csv",
    "parse_fixed_width",
    "render_csv",
    "render_fixed_width",
]
