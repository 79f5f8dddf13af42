"""Cutting a file into its interchanges, and each interchange into raw segments.

VANs and drop folders deliver several interchanges in one file (``ISA…IEA
ISA…IEA``), each with its own delimiters, so every interchange is cut with the
delimiters its own ISA declares and the next one starts at the next segment
that begins with ``ISA``.  Whitespace between segments (a line break after every
terminator, a leading space) is not data and is dropped; what follows the last
terminator of an interchange is kept as its ``trailing`` text so rendering
reproduces the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import X12Error
from .tokenize import (
    AFTER_END,
    BETWEEN,
    Delimiters,
    RawSegment,
    control_number_guess,
    read_isa,
)
from .unwrap import join_fixed_width, join_isa


@dataclass
class Cut:
    """One interchange as cut out of the file, before element splitting."""

    number: int  # 1-based position of the interchange in the file
    delims: Delimiters
    isa: list[str]
    raws: list[RawSegment]  # ISA first; anything after the IEA is kept for the walker
    trailing: str  # what followed the last terminator, up to the next ISA or the end
    #: numbers of the segments with a line break inside (a file wrapped at a fixed width)
    broken: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        """How errors name the interchange: its ISA13, or ``#n`` when ISA13 is empty."""
        return self.isa[12].strip() or f"#{self.number}"


def cut_interchanges(text: str, *, unwrap: bool = False) -> Iterator[Cut]:
    """Yield every interchange of ``text`` in order; raise where nothing can be read."""
    if unwrap:
        text = join_fixed_width(text)
    pos = len(text) - len(text.lstrip(BETWEEN + "\ufeff"))
    number = 0
    while pos < len(text):
        number += 1
        if unwrap:
            text = join_isa(text, pos)
        try:
            delims, isa = read_isa(text, pos)
        except X12Error as exc:
            exc.interchange = control_number_guess(text, pos) or f"#{number}"
            raise
        cut = Cut(number, delims, isa, [], "")
        pos = _segments(text, pos, cut)
        yield cut


def _segments(text: str, pos: int, cut: Cut) -> int:
    """Fill ``cut`` with the segments from ``pos``; return where the next interchange starts."""
    terminator, element = cut.delims.segment, cut.delims.element
    cursor = after_last = pos  # after_last: just past the last segment's terminator
    while True:
        end = text.find(terminator, cursor)
        piece = text[cursor:] if end == -1 else text[cursor:end]
        lead = len(piece) - len(piece.lstrip(BETWEEN)) if cursor != pos else 0
        body = piece[lead:]
        if terminator == "\n":
            body = body.rstrip("\r")  # CRLF lines in a file whose ISA ends with a bare LF
        if cut.raws and _starts_interchange(body):
            # The next interchange begins here (its IEA-less predecessor is reported by
            # the walker); the whitespace before it belongs to this one.
            cut.trailing = text[after_last : cursor + lead]
            return cursor + lead
        if end == -1:
            if body.strip(AFTER_END):
                raise X12Error(
                    f"segment is not terminated by {terminator!r} (interchange truncated)",
                    len(cut.raws) + 1,
                    body.split(element, 1)[0][:3],
                    level="interchange",
                    interchange=cut.name,
                )
            cut.trailing = text[after_last:]
            return len(text)
        if body:  # a blank line or a doubled terminator is no segment
            cut.raws.append(RawSegment(len(cut.raws) + 1, body))
            if "\n" in body or "\r" in body:
                cut.broken.add(len(cut.raws))
            after_last = end + 1
        cursor = end + 1


def _starts_interchange(body: str) -> bool:
    return body.startswith("ISA") and len(body) > 3 and not body[3].isalnum()
