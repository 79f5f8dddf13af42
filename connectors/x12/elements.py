"""The element dictionary: what each element of a segment must be (M/O/X, type, length).

Strict parsing checks every segment of a typed set (850, 855, 856, 810, 846, 860, 940, 945,
997) whose id is in the table below: a mandatory element that is empty, an element shorter or
longer than the standard allows, a value that is not of its type (DT, TM, N0, N2, R), or more
elements than the segment has.  Problems become AK4 errors in the 997 (AK403 1, 3, 4, 5, 6, 8,
9); in strict mode the first one fails the parse.

The table is the X12 004010 dictionary for the segments the typed views read; 004030 uses it
as it is, 005010 with the changes in :data:`CHANGED` (longer reference ids and phone numbers,
a few new trailing elements).  Groups of older versions (003xxx, whose dates are YYMMDD) are
not checked.  ``X`` (conditional) elements are checked by the segment's syntax notes in
:data:`_SYNTAX_004010` — P paired, R required, E exclusion, C conditional, L list conditional —
each broken note one AK4 (AK403 2, or 10 for an exclusion); a composite (``C``) is checked for
presence only.  A segment not in the table is not checked element by element (its id is still
checked against the set's segment list).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, cast

from .errors import ErrorSink, X12Error
from .fields import Item, Kind, text, type_problem

Requirement = Literal["M", "O", "X"]


@dataclass(frozen=True)
class Element:
    requirement: Requirement
    kind: Kind | Literal["C"]
    min_length: int = 0
    max_length: int = 0


#: segment id, then its elements in order as "requirement type min max" separated by "|"; a
#: line starting with "|" continues the segment above.
_TABLE_004010 = """
BEG M ID 2 2 | M ID 2 2 | M AN 1 22 | O AN 1 30 | M DT 8 8 | O AN 1 30 | O ID 2 2 | O ID 3 3
    | O ID 2 2 | O ID 2 2 | O ID 2 2 | O ID 2 2
BAK M ID 2 2 | M ID 2 2 | M AN 1 22 | M DT 8 8 | O AN 1 30 | O AN 1 45 | O AN 1 30
    | O AN 1 30 | O DT 8 8 | O ID 2 2
ACK M ID 2 2 | O R 1 15 | O ID 2 2 | O ID 3 3 | O DT 8 8 | O AN 1 45 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 15 | O AN 1 30
BSN M ID 2 2 | M AN 2 30 | M DT 8 8 | M TM 4 8 | O ID 4 4 | O ID 2 2 | O ID 3 3
HL  M AN 1 12 | O AN 1 12 | M ID 1 2 | O ID 1 1
LIN O AN 1 20 | M ID 2 2 | M AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48
SN1 O AN 1 20 | M R 1 10 | M ID 2 2 | O R 1 15 | O R 1 15 | O ID 2 2 | O ID 1 2 | O ID 2 2
PRF M AN 1 22 | O AN 1 30 | O AN 1 8 | O DT 8 8 | O AN 1 20 | O AN 1 30 | O ID 2 2
PO4 O N0 1 6 | O R 1 8 | O ID 2 2 | O AN 3 5 | O ID 1 2 | O R 1 9 | O ID 2 2 | O R 1 9
    | O ID 2 2 | O R 1 8 | O R 1 8 | O R 1 8 | O ID 2 2 | O N0 1 6 | O ID 2 2 | O AN 1 20
    | O AN 1 20 | O N0 1 9
TD1 O AN 3 5 | O N0 1 7 | O ID 1 1 | O AN 1 30 | O AN 1 50 | O ID 1 2 | O R 1 10 | O ID 2 2
    | O R 1 8 | O ID 2 2
TD3 O ID 2 2 | O AN 1 4 | O AN 1 10 | O ID 1 2 | O R 1 10 | O ID 2 2 | O ID 1 1 | O ID 2 2
    | O AN 2 15 | O ID 4 4
TD5 O ID 1 2 | X ID 1 2 | X AN 2 80 | X ID 1 2 | X AN 1 35 | O ID 2 2 | O ID 1 2 | O AN 1 30
    | O ID 2 2 | O ID 2 2 | O R 1 4 | O ID 2 2 | O ID 2 2 | O ID 2 2 | O ID 2 3
MAN M ID 1 2 | M AN 1 48 | O AN 1 48 | O ID 1 2 | O AN 1 48 | O AN 1 48
BIG M DT 8 8 | M AN 1 22 | O DT 8 8 | O AN 1 22 | O AN 1 30 | O AN 1 8 | O ID 2 2 | O ID 2 2
    | O ID 1 2 | O AN 1 22
IT1 O AN 1 20 | O R 1 10 | O ID 2 2 | O R 1 17 | O ID 2 2 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48
TDS M N2 1 15 | O N2 1 15 | O N2 1 15 | O N2 1 15
SAC M ID 1 1 | X ID 4 4 | X ID 2 2 | O AN 1 10 | O N2 1 15 | O ID 1 1 | O R 1 6 | O R 1 9
    | O ID 2 2 | O R 1 15 | O R 1 15 | O ID 1 2 | O AN 1 30 | O AN 1 20 | O AN 1 80
    | O ID 2 3
TXI M ID 2 2 | O R 1 18 | O R 1 10 | O ID 2 2 | O AN 1 10 | O ID 1 1 | O ID 1 1 | O R 1 9
    | O AN 1 20 | O AN 1 20
ISS O R 1 10 | O ID 2 2 | O R 1 10 | O ID 2 2 | O R 1 8 | O ID 2 2 | O R 1 15 | O R 1 10
ITD O ID 2 2 | O ID 1 2 | O R 1 6 | O DT 8 8 | O N0 1 3 | O DT 8 8 | O N0 1 3 | O N2 1 10
    | O DT 8 8 | O N2 1 10 | O R 1 5 | O AN 1 80 | O N0 1 2 | O ID 1 2 | O R 1 10
CUR M ID 2 3 | M ID 3 3 | O R 4 10 | O ID 2 3 | O ID 3 3 | O ID 3 3 | O ID 3 3 | O DT 8 8
    | O TM 4 8 | O ID 3 3 | O DT 8 8 | O TM 4 8 | O ID 3 3 | O DT 8 8 | O TM 4 8 | O ID 3 3
    | O DT 8 8 | O TM 4 8 | O ID 3 3 | O DT 8 8 | O TM 4 8
REF M ID 2 3 | X AN 1 30 | X AN 1 80 | O C
DTM M ID 3 3 | X DT 8 8 | X TM 4 8 | O ID 2 2 | O ID 2 3 | O AN 1 35
N1  M ID 2 3 | X AN 1 60 | X ID 1 2 | X AN 2 80 | O ID 2 2 | O ID 2 3
N2  M AN 1 60 | O AN 1 60
N3  M AN 1 55 | O AN 1 55
N4  O AN 2 30 | O ID 2 2 | O ID 3 15 | O ID 2 3 | O ID 1 2 | O AN 1 30
PER M ID 2 2 | O AN 1 60 | X ID 2 2 | X AN 1 80 | X ID 2 2 | X AN 1 80 | O ID 2 2
    | O AN 1 80 | O AN 1 20
PID M ID 1 1 | X ID 2 3 | X ID 2 2 | X AN 1 12 | X AN 1 80 | O ID 2 2 | O AN 1 15 | O ID 1 1
    | O ID 2 3
PO1 O AN 1 20 | O R 1 15 | O ID 2 2 | O R 1 17 | O ID 2 2 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48
CTT M N0 1 6 | O R 1 10 | O R 1 10 | O ID 2 2 | O R 1 8 | O ID 2 2 | O AN 1 80
AK1 M ID 2 2 | M N0 1 9
AK2 M ID 3 3 | M AN 4 9
AK3 M ID 2 3 | M N0 1 6 | O AN 1 6 | O ID 1 3
AK4 M C | O N0 1 4 | M ID 1 3 | O AN 1 99
AK5 M ID 1 1 | O ID 1 3 | O ID 1 3 | O ID 1 3 | O ID 1 3 | O ID 1 3
AK9 M ID 1 1 | M N0 1 6 | M N0 1 6 | M N0 1 6 | O ID 1 3 | O ID 1 3 | O ID 1 3 | O ID 1 3
    | O ID 1 3
W05 M ID 1 1 | M AN 1 22 | O AN 1 22 | O N0 6 6 | O AN 1 22 | O ID 2 2 | O ID 1 2
W66 M ID 2 2 | M ID 1 2 | O ID 1 1 | O ID 1 1 | O AN 1 35 | O ID 2 2 | O AN 1 30 | O ID 1 1
    | O N2 1 15 | O ID 2 4
W01 M R 1 15 | M ID 2 2 | O AN 12 12 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O AN 2 5 | O ID 1 3 | O ID 1 1 | O AN 1 30 | O N0 6 6 | O AN 1 12 | O ID 1 1
    | O ID 2 2 | O AN 1 48
G69 M AN 1 45
W76 M R 1 15 | O R 1 10 | O ID 2 2 | O R 1 8 | O ID 2 2 | O R 1 10
W06 M ID 1 1 | O AN 1 22 | O DT 8 8 | O AN 1 30 | O AN 1 12 | O AN 1 22 | O AN 1 22
    | O N0 6 6 | O ID 2 3 | O ID 2 2 | O ID 2 2 | O ID 1 2
W27 M ID 1 2 | O ID 2 4 | O AN 1 35 | O ID 2 2 | O ID 2 2 | O AN 1 4 | O AN 1 10 | O ID 2 2
    | O ID 2 3 | O ID 2 2
W12 M ID 2 2 | O R 1 15 | O R 1 10 | O R 1 9 | O ID 2 2 | O AN 12 12 | O ID 2 2 | O AN 1 48
    | O AN 1 12 | O R 1 10 | O ID 1 2 | O ID 1 1 | O R 1 10 | O ID 1 2 | O ID 1 1
    | O AN 12 12 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O ID 1 1 | O ID 2 2 | O AN 1 48
W03 M R 1 10 | O R 1 10 | O ID 2 2 | O R 1 8 | O ID 2 2 | O N0 1 7 | O ID 2 2
N9  M ID 2 3 | X AN 1 30 | X AN 1 45 | O DT 8 8 | X TM 4 8 | O ID 2 2 | O C
G62 X ID 2 2 | X DT 8 8 | X ID 1 1 | X TM 4 8 | O ID 2 2
NTE O ID 3 3 | M AN 1 80
LX  M N0 1 6
BIA M ID 2 2 | M ID 2 2 | M AN 1 30 | M DT 8 8 | O TM 4 8 | O ID 1 2
QTY M ID 2 2 | X R 1 15 | O C | X AN 1 30
SCH M R 1 15 | M ID 2 2 | O ID 2 3 | O AN 1 60 | M ID 3 3 | M DT 8 8 | O TM 4 8 | O ID 3 3
    | O DT 8 8 | O TM 4 8 | O AN 1 45 | O AN 1 20
BCH M ID 2 2 | M ID 2 2 | M AN 1 22 | O AN 1 30 | O AN 1 8 | M DT 8 8 | O AN 1 45
    | O AN 1 30 | O AN 1 30 | O DT 8 8 | O DT 8 8 | O ID 2 2 | O ID 2 2 | O ID 2 2
    | O ID 2 2 | O ID 2 2
POC O AN 1 20 | M ID 2 2 | O R 1 15 | O R 1 9 | M C | O R 1 17 | O ID 2 2 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
    | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2
    | O AN 1 48 | O ID 2 2 | O AN 1 48 | O ID 2 2 | O AN 1 48
"""

#: The syntax notes of the segments above, as the standard writes them: a letter, then the
#: positions of the elements it relates, two digits each.  P: if any is present, all are.
#: R: at least one is present.  E: not more than one is present.  C: if the first is present,
#: all the others are.  L: if the first is present, at least one of the others is.  004030 and
#: 005010 keep these notes for the elements checked here.
_SYNTAX_004010 = """
REF R0203
DTM R020305 C0403 P0506
N1  R0203 P0304
N4  C0605
PER P0304 P0506 P0708
N9  R0203 C0605
G62 R0103 P0102 P0304
TD1 C0102 C0304 C0607 P0708 P0910
TD5 R0204050612 C0203 C0708 C1011 C1312 C1413
MAN P0405 C0605
PID C0403 R0405 C0703 C0804 C0905
PO1 C0302 C0504 P0607 P0809 P1011 P1213 P1415 P1617 P1819 P2021 P2223 P2425
IT1 P020304 C0504 P0607 P0809 P1011 P1213 P1415 P1617 P1819 P2021 P2223 P2425
LIN P0405 P0607 P0809 P1011 P1213 P1415 P1617 P1819 P2021 P2223 P2425 P2627 P2829 P3031
SN1 P0506
CTT P0304 P0506
SAC R0203 P0304 P0910 C1110
QTY R0204 E0204
W03 P0203 P0405
"""


@dataclass(frozen=True)
class Rule:
    """One syntax note: ``P0304`` is ``Rule("P", (3, 4))``."""

    kind: Literal["P", "R", "E", "C", "L"]
    positions: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.kind + "".join(f"{p:02d}" for p in self.positions)


def _rules(table: str) -> dict[str, tuple[Rule, ...]]:
    out: dict[str, tuple[Rule, ...]] = {}
    for line in table.strip().splitlines():
        segment, *notes = line.split()
        out[segment] = tuple(
            Rule(cast(Literal["P", "R", "E", "C", "L"], note[0]),
                 tuple(int(note[i:i + 2]) for i in range(1, len(note), 2)))
            for note in notes)
    return out


SYNTAX = _rules(_SYNTAX_004010)


#: What 005010 changed in the segments above: (segment, position) → the new definition.
CHANGED = {
    ("REF", 2): "X AN 1 50",
    ("N9", 2): "X AN 1 50",
    ("PER", 4): "X AN 1 256",
    ("PER", 6): "X AN 1 256",
    ("PER", 8): "O AN 1 256",
    ("N4", 7): "O ID 1 3",
    ("AK1", 3): "O AN 1 12",
    ("AK2", 3): "O AN 1 35",
}


def _element(cell: str) -> Element:
    parts = cell.split()
    if parts[1] == "C":
        return Element(cast(Requirement, parts[0]), "C")
    requirement, kind, low, high = parts
    return Element(cast(Requirement, requirement), cast(Kind, kind), int(low), int(high))


def _parse(table: str) -> dict[str, tuple[Element, ...]]:
    rows: dict[str, list[str]] = {}
    segment = ""
    for line in table.strip().splitlines():
        if line.startswith(" "):
            cells = line.strip().removeprefix("|")
        else:
            segment, cells = line[:4].strip(), line[4:]
            rows[segment] = []
        rows[segment].extend(c.strip() for c in cells.split("|") if c.strip())
    return {seg: tuple(_element(c) for c in cells) for seg, cells in rows.items()}


@functools.cache
def dictionary(version: str) -> dict[str, tuple[Element, ...]] | None:
    """The element dictionary for a GS08 version (``004010``, ``005010VICS`` …); ``None``
    for the versions before 004010."""
    release = version[:6]
    if not release.isdigit():
        release = "999999"  # a version we cannot read gets the newest dictionary
    if release < "004010":
        return None
    table = _parse(_TABLE_004010)
    if release >= "005010":
        for (seg, position), cell in CHANGED.items():
            elements = list(table[seg])
            elements += [Element("O", "AN", 0, 0)] * (position - len(elements))
            elements[position - 1] = _element(cell)
            table[seg] = tuple(elements)
    return table


def check(items: list[Item], version: str, sink: ErrorSink) -> None:
    """Report every element of *items* that breaks the dictionary of *version*."""
    table = dictionary(version)
    if table is None:
        return
    for item in items:
        seg = item[1]
        elements = table.get(str(seg[0]))
        if elements is None:
            continue
        if len(seg) - 1 > len(elements):
            sink.report(_error(f"{seg[0]} has {len(elements)} elements, found {len(seg) - 1}",
                               item, len(elements) + 1, "3"))
        for position, element in enumerate(elements, start=1):
            _check_element(item, position, element, sink)
        for rule in SYNTAX.get(str(seg[0]), ()):
            _check_rule(item, rule, sink)


def _check_rule(item: Item, rule: Rule, sink: ErrorSink) -> None:
    """Report *item* if it breaks *rule*, at the element that is missing or one too many."""
    seg = item[1]
    sid = str(seg[0])
    present = [_present(seg, p) for p in rule.positions]
    names = [f"{sid}{p:02d}" for p in rule.positions]
    first, *others = rule.positions
    problem: tuple[str, int, str] | None = None  # message, position, AK403 code
    if rule.kind == "P" and any(present) and not all(present):
        missing = rule.positions[present.index(False)]
        problem = (f"{_listed(names)} go together ({rule.name}): {sid}{missing:02d} is missing",
                   missing, "2")
    elif rule.kind == "R" and not any(present):
        problem = (f"at least one of {_listed(names, 'or')} is required ({rule.name})",
                   first, "2")
    elif rule.kind == "E" and sum(present) > 1:
        extra = [p for p, on in zip(rule.positions, present, strict=True) if on][1]
        problem = (f"only one of {_listed(names, 'or')} may be present ({rule.name})",
                   extra, "10")
    elif rule.kind == "C" and present[0] and not all(present[1:]):
        missing = others[present[1:].index(False)]
        problem = (f"{names[0]} is present, so {_listed(names[1:])} must be ({rule.name})",
                   missing, "2")
    elif rule.kind == "L" and present[0] and not any(present[1:]):
        problem = (f"{names[0]} is present, so one of {_listed(names[1:], 'or')} must be "
                   f"({rule.name})", others[0], "2")
    if problem is not None:
        sink.report(_error(problem[0], item, problem[1], problem[2]))


def _present(seg: list[object], position: int) -> bool:
    return position < len(seg) and seg[position] not in ("", None, [], [""])


def _listed(names: list[str], word: str = "and") -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def _check_element(item: Item, position: int, element: Element, sink: ErrorSink) -> None:
    seg = item[1]
    if not _present(seg, position):
        if element.requirement == "M":
            sink.report(_error("mandatory element missing", item, position, "1"))
        return
    if element.kind == "C":
        return
    raw = text(seg, position)
    value = raw.rstrip(" ") if element.kind in ("AN", "ID") else raw.strip(" ")
    found = type_problem(value, element.kind) if element.kind not in ("AN", "ID") else None
    if found:
        sink.report(_error(f"{found[0]}, found {value!r}", item, position, found[1], value))
        return
    size = _length(value, element.kind)
    if size < element.min_length:
        sink.report(_error(f"at least {element.min_length} characters, found {size} "
                           f"in {value!r}", item, position, "4", value))
    elif size > element.max_length:
        sink.report(_error(f"at most {element.max_length} characters, found {size} "
                           f"in {value!r}", item, position, "5", value))


def _length(value: str, kind: str) -> int:
    """Length as X12 counts it: a numeric's sign and decimal point do not count."""
    if kind in ("N0", "N2", "R"):
        return sum(c.isdigit() for c in value)
    return len(value)


def _error(message: str, item: Item, position: int, code: str,
           value: str | None = None) -> X12Error:
    index, seg = item
    return X12Error(message, index, str(seg[0]), position, level="element", code=code,
                    value=value)
