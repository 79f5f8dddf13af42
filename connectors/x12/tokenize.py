"""Delimiter discovery and segment tokenizing for X12 interchanges.

An X12 interchange declares its own delimiters in the fixed-width ISA
segment: the element separator is character 4 (index 3), the component
separator is ISA16 and the segment terminator is the character right after
ISA16.  Many senders put a line break after every terminator; we remember
which one so rendering can reproduce the file byte for byte.

Generic segments are JSON lists: ``["BEG", "00", "SA", "PO123", "", "20240115"]``
with the segment id at index 0 so that ``seg[3]`` is BEG03.  An element is a
plain string, a list of strings when it has components (``["EA", "12"]``) or
``{"repeat": [...]}`` when it uses the repetition separator; each repetition
is itself a string or a component list.  ISA elements are never split since
ISA11 and ISA16 *are* the separator characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from .errors import X12Error

Element: TypeAlias = str | list[str] | dict[str, Any]
Segment: TypeAlias = list[Any]

ISA_LENGTH = 106  # including the segment terminator
#: Fixed widths of ISA01..ISA16; ISA is the only fixed-width segment in X12.
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)


@dataclass(frozen=True)
class Delimiters:
    """The separator characters of one interchange.

    ``suffix`` is what follows every segment terminator ("", "\\n" or
    "\\r\\n"); ``repetition`` is ``None`` for versions before 00402, where
    ISA11 is the standards identifier "U" rather than a separator.
    """

    element: str = "*"
    component: str = ">"
    repetition: str | None = "^"
    segment: str = "~"
    suffix: str = "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "component": self.component,
            "repetition": self.repetition,
            "segment": self.segment,
            "suffix": self.suffix,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Delimiters:
        if not data:
            return cls()
        default = cls()
        return cls(
            element=data.get("element", default.element),
            component=data.get("component", default.component),
            repetition=data.get("repetition", default.repetition),
            segment=data.get("segment", default.segment),
            suffix=data.get("suffix", default.suffix),
        )

    def check_distinct(self) -> None:
        chars = [self.element, self.component, self.segment]
        if self.repetition is not None:
            chars.append(self.repetition)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise X12Error(
                f"delimiters must be single distinct characters, got {chars!r}",
                1,
                "ISA",
                16,
                level="interchange",
            )


@dataclass
class RawSegment:
    """A segment as cut out of the text, before element splitting."""

    index: int  # 1-based position in the interchange
    text: str  # without terminator and without the line-break suffix


#: Whitespace tolerated between segments: line breaks after terminators are common,
#: leading spaces and tabs happen (hand-edited files, some VAN mailboxes).
BETWEEN = " \t\r\n"
#: What may follow the last IEA: whitespace, and the NUL/Ctrl-Z padding of old transfers.
AFTER_END = BETWEEN + "\x00\x1a"


def read_isa(text: str, start: int = 0) -> tuple[Delimiters, list[str]]:
    """Validate the fixed-width ISA at ``start``; return its delimiters and 16 elements."""
    if not text.startswith("ISA", start):
        raise X12Error(
            f"interchange must start with ISA, found {text[start : start + 3]!r}",
            1,
            "ISA",
            level="interchange",
        )
    _no_line_break(text, start)
    if len(text) - start < ISA_LENGTH:
        raise X12Error(
            f"ISA is {len(text) - start} characters, expected {ISA_LENGTH} (interchange truncated)",
            1,
            "ISA",
            level="interchange",
        )
    sep = text[start + 3]
    if sep.isalnum() or sep == " ":
        raise X12Error(f"invalid element separator {sep!r}", 1, "ISA", level="interchange")
    elements: list[str] = []
    pos = start + 4
    for number, width in enumerate(ISA_WIDTHS, start=1):
        if number == 16:
            # ISA16 is the component separator itself and may legitimately be
            # any character, so it is taken by position, not by splitting.
            elements.append(text[pos])
            pos += 1
            break
        end = text.find(sep, pos)
        if end == -1 or end - pos != width:
            found = "missing" if end == -1 else f"{end - pos} characters"
            raise X12Error(
                f"ISA{number:02d} must be {width} characters, found {found}; "
                f"ISA must be {ISA_LENGTH} characters",
                1,
                "ISA",
                number,
                level="interchange",
            )
        elements.append(text[pos:end])
        pos = end + 1
    terminator = text[pos]
    if (terminator.isalnum() or terminator == " ") and not elements[15].isalnum():
        # ``…*P*~GS*…``: the terminator sits where ISA16 belongs.
        raise X12Error(
            f"ISA16 (component separator) is missing: found {elements[15]!r} where ISA16 "
            f"belongs and {terminator!r} where the segment terminator belongs; the ISA is "
            f"{ISA_LENGTH - 1} characters, ISA must be {ISA_LENGTH} characters",
            1,
            "ISA",
            16,
            level="interchange",
        )
    if terminator.isalnum() or terminator == " " or elements[15].isalnum():
        # A letter or digit here means ISA16 is missing or ISA is too long:
        # guessing on would cut every following segment at the wrong place.
        raise X12Error(
            f"no segment terminator after ISA16 (found {terminator!r}); "
            f"ISA must be {ISA_LENGTH} characters",
            1,
            "ISA",
            16,
            level="interchange",
        )
    _isa16_present(text, pos, elements[15], terminator, sep)
    rest = text[pos + 1 : pos + 3]
    suffix = "\r\n" if rest.startswith("\r\n") else "\n" if rest.startswith("\n") else ""
    if terminator in "\r\n":
        suffix = "\n" if terminator == "\r" and rest.startswith("\n") else ""
    version = elements[11]
    isa11 = elements[10]
    repetition = isa11 if version >= "00402" and not isa11.isalnum() else None
    delims = Delimiters(
        element=sep,
        component=elements[15],
        repetition=repetition,
        segment=terminator,
        suffix=suffix,
    )
    delims.check_distinct()
    return delims, elements


def _no_line_break(text: str, start: int) -> None:
    """A line break inside the 105 characters up to ISA16 is never data: say what it is."""
    head = text[start : start + ISA_LENGTH - 1]
    cut = min((i for i in (head.find("\r"), head.find("\n")) if i != -1), default=-1)
    if cut == -1:
        return
    if cut == ISA_LENGTH - 2:
        # The break sits where ISA16 belongs: ISA16 is missing and the break ends the ISA.
        message = (
            f"ISA16 (component separator) is missing: the ISA ends with a line break after "
            f"{cut} characters; ISA must be {ISA_LENGTH} characters"
        )
        raise X12Error(message, 1, "ISA", 16, level="interchange")
    raise X12Error(
        f"ISA is broken by a line break after {cut} characters (wrapped at {cut} columns?); "
        f"ISA must be {ISA_LENGTH} characters on one line: set unwrap: true on the x12 step "
        "to join wrapped lines",
        1,
        "ISA",
        level="interchange",
    )


def _isa16_present(text: str, pos: int, isa16: str, terminator: str, sep: str) -> None:
    """Refuse an ISA whose ISA16 is really its terminator (``…*P*~`` + line break).

    Then the line break looks like the terminator and ``~`` like ISA16; the giveaway
    is the next segment, which ends with that same ``~`` — a trailing component
    separator no real segment has.
    """
    if terminator not in "\r\n":
        return
    following = text[pos + 1 : pos + 400].lstrip(BETWEEN)
    end = following.find("\n")
    nxt = (following[:end] if end != -1 else following).rstrip("\r")
    if sep in nxt and nxt.endswith(isa16):
        raise X12Error(
            f"ISA16 (component separator) is missing: found {isa16!r}, which also ends the "
            f"next segment, then a line break; the ISA is {ISA_LENGTH - 1} characters, "
            f"ISA must be {ISA_LENGTH} characters",
            1,
            "ISA",
            16,
            level="interchange",
        )


def control_number_guess(text: str, start: int) -> str | None:
    """ISA13 read loosely from an ISA too broken for :func:`read_isa`, to name it in errors."""
    if not text.startswith("ISA", start) or len(text) <= start + 3:
        return None
    parts = text[start : start + 140].split(text[start + 3])
    candidate = parts[13].strip() if len(parts) > 13 else ""
    return candidate if candidate.isdigit() and len(candidate) == 9 else None


def split_element(value: str, delims: Delimiters) -> Element:
    """Turn one element's text into str / component list / repeat dict."""
    if delims.repetition is not None and delims.repetition in value:
        return {"repeat": [_split_components(r, delims) for r in value.split(delims.repetition)]}
    return _split_components(value, delims)


def unrepeat(element: Element, delims: Delimiters) -> tuple[Element, str | None]:
    """A repeat split undone: the element as one value, and its whole text if it was split.

    For elements that do not repeat, a repetition separator inside a value is the
    sender's data (``REF*BM*999999-001`` with ISA11 ``-``); reading only the first
    repetition would silently cut it to ``999999``.
    """
    if not isinstance(element, dict) or delims.repetition is None:
        return element, None
    reps = element.get("repeat") or []
    whole = delims.repetition.join(
        delims.component.join(r) if isinstance(r, list) else str(r) for r in reps
    )
    return _split_components(whole, delims), whole


def _split_components(value: str, delims: Delimiters) -> str | list[str]:
    if delims.component in value:
        return value.split(delims.component)
    return value


def split_segment(raw: RawSegment, delims: Delimiters) -> Segment:
    parts = raw.text.split(delims.element)
    if parts[0] == "ISA":
        return parts
    return [parts[0], *(split_element(p, delims) for p in parts[1:])]


def join_element(
    element: Any, delims: Delimiters, where: tuple[int | None, str, int] | None = None
) -> str:
    """Inverse of :func:`split_element`; refuses values that contain a delimiter."""
    if isinstance(element, dict):
        reps = element.get("repeat")
        if not isinstance(reps, list):
            raise _bad_value("repeat element needs a 'repeat' list", element, where)
        if delims.repetition is None:
            raise _bad_value(
                "repetitions need a repetition separator (version 00402 or later)", element, where
            )
        return delims.repetition.join(_join_components(r, delims, where) for r in reps)
    return _join_components(element, delims, where)


def _join_components(
    value: Any, delims: Delimiters, where: tuple[int | None, str, int] | None
) -> str:
    if isinstance(value, list):
        return delims.component.join(_scalar(v, delims, where) for v in value)
    return _scalar(value, delims, where)


def _scalar(value: Any, delims: Delimiters, where: tuple[int | None, str, int] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise _bad_value("booleans are not X12 values", value, where)
    if isinstance(value, int | float):
        text = format_number(value)
    elif isinstance(value, str):
        text = value
    else:
        raise _bad_value(f"cannot render {type(value).__name__}", value, where)
    reserved = [delims.element, delims.component, delims.segment]
    if delims.repetition is not None:
        reserved.append(delims.repetition)
    for ch in reserved:
        if ch in text:
            raise _bad_value(f"value {text!r} contains the delimiter {ch!r}", value, where)
    return text


def _bad_value(message: str, value: Any, where: tuple[int | None, str, int] | None) -> X12Error:
    if where is None:
        return X12Error(message, value=str(value))
    index, seg_id, element = where
    return X12Error(message, index, seg_id, element, level="element", value=str(value))


def format_number(value: int | float) -> str:
    """Shortest X12 numeric text: no exponent, no trailing zeros, no ``.0``."""
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise X12Error(f"cannot render non-finite number {value!r}", level="element")
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def join_segment(segment: Segment, delims: Delimiters, index: int | None = None) -> str:
    """Render one segment without its terminator."""
    if not segment or not isinstance(segment[0], str):
        raise X12Error("a segment must be a non-empty list starting with its id", index)
    seg_id = segment[0]
    if seg_id == "ISA":
        # ISA11/ISA16 hold separator characters, so only the element
        # separator is forbidden inside ISA values.
        for number, value in enumerate(segment[1:], start=1):
            if not isinstance(value, str) or (number != 16 and delims.element in value):
                raise X12Error(f"bad ISA value {value!r}", index, "ISA", number)
        return delims.element.join(segment)
    parts = [seg_id]
    for number, element in enumerate(segment[1:], start=1):
        parts.append(join_element(element, delims, (index, seg_id, number)))
    return delims.element.join(parts)
