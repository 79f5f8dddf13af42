"""Undoing line wrapping that VANs and mail gateways add (the x12 step's ``unwrap: true``).

Some VANs deliver interchanges cut into 80-column lines, which puts a line
break inside the fixed-width ISA and in the middle of other segments.  Two
shapes are recognised: a file whose lines all have one width except the last
(fixed-width wrapping: every line break goes), and an ISA broken over two lines
in an otherwise normal file (the breaks inside the ISA go).  Without the option
such a file fails at its ISA with a message that points here.
"""

from __future__ import annotations

import re

from .tokenize import ISA_LENGTH

_BREAK = re.compile(r"\r?\n")


def join_fixed_width(text: str) -> str:
    """Join a file wrapped at a fixed width; any other text comes back unchanged."""
    lines = _BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the file's final line break
    if len(lines) < 2:
        return text
    width = len(lines[0])
    wrapped = all(len(line) == width for line in lines[:-1])
    if not wrapped or not 0 < len(lines[-1]) <= width or not lines[0].startswith("ISA"):
        return text
    return "".join(lines)


def join_isa(text: str, start: int) -> str:
    """Drop the line breaks inside the ISA at ``start`` (up to and including ISA16).

    A break right after ISA16 is the segment terminator when a segment id follows
    it (``…*>`` newline ``GS*…``), and a wrap otherwise (``…*>`` newline ``~GS*…``).
    """
    head = text[start : start + ISA_LENGTH - 1]
    if "\n" not in head and "\r" not in head:
        return text
    kept: list[str] = []
    pos = start
    while len(kept) < ISA_LENGTH - 1 and pos < len(text):
        if text[pos] not in "\r\n":
            kept.append(text[pos])
        pos += 1
    after = pos
    while after < len(text) and text[after] in "\r\n":
        after += 1
    if after > pos and after < len(text) and not text[after].isalnum():
        pos = after  # the break was a wrap; the terminator comes next
    return text[:start] + "".join(kept) + text[pos:]
