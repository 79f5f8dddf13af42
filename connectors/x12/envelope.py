"""Interchange parsing: ISA/GS/ST…SE/GE/IEA into the analyst-facing JSON document.

A file is first cut into its interchanges (:mod:`.scan`); each is walked here.

The document keeps two layers: the raw generic segments (``interchange.isa``,
``group.gs``, ``transaction.segments`` …) which render back byte for byte,
and named read-only fields plus, for the sets in :data:`TYPED`, a typed view
spread into the transaction object.  Envelope consistency (counts and control
numbers) and the per-set segment dictionary are checked here; with
``strict=False`` problems are collected into ``doc["errors"]`` instead of
raised, which is what 997 generation feeds on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import elements, ts810, ts846, ts850, ts855, ts856, ts860, ts940, ts945, ts997
from .errors import ErrorSink, X12Error
from .fields import Item, SetSpec
from .fields import text as _el
from .scan import Cut, cut_interchanges
from .tokenize import Delimiters, Segment, split_segment, unrepeat

TYPED: dict[str, SetSpec] = {
    module.SPEC.set_id: module.SPEC
    for module in (ts850, ts855, ts856, ts810, ts846, ts860, ts940, ts945, ts997)
}
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")


def parse(
    text: str,
    *,
    strict: bool = True,
    extra_segments: Mapping[str, Iterable[str]] | None = None,
    check_segments: bool = True,
    unwrap: bool = False,
    check_elements: bool = True,
) -> dict[str, Any]:
    """Parse every interchange of ``text``.

    One interchange gives ``{"interchange", "groups", "errors", "warnings"}``;
    several (``ISA…IEA ISA…IEA``) give ``{"interchanges": [one such document
    per interchange], "errors", "warnings"}`` with the errors of all of them.
    ``strict`` raises the first :class:`X12Error`; otherwise every problem
    that still lets the structure be read is collected in ``errors`` (always
    present, empty for a clean interchange).  An unreadable ISA, a missing IEA
    or an unterminated segment raises even then: nothing reliable can be read.
    ``extra_segments`` widens the per-set dictionary for a partner that uses
    segments we do not list (``{"850": ["PKG"]}``, ``"*"`` for every set);
    ``check_segments=False`` turns the unknown-segment check off altogether.
    ``unwrap`` joins lines a VAN wrapped at a fixed width (see :mod:`.unwrap`).
    ``check_elements`` checks each element of the typed sets against the standard's element
    dictionary (requirement, type, length: see :mod:`.elements`).
    """
    allowed = {k: frozenset(v) for k, v in (extra_segments or {}).items()}
    docs = [
        _parse_one(cut, strict, allowed, check_segments, check_elements)
        for cut in cut_interchanges(text, unwrap=unwrap)
    ]
    if not docs:
        raise X12Error("no interchange: the text is empty", 1, "ISA", level="interchange")
    if len(docs) == 1:
        return docs[0]
    return {
        "interchanges": docs,
        "errors": [e for d in docs for e in d["errors"]],
        "warnings": [w for d in docs for w in d["warnings"]],
    }


def interchanges(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The single-interchange documents of a parsed file, whichever shape it has."""
    if "interchanges" in doc:
        return list(doc["interchanges"])
    return [doc]


def _parse_one(
    cut: Cut,
    strict: bool,
    allowed: Mapping[str, frozenset[str]],
    check_segments: bool,
    check_elements: bool = True,
) -> dict[str, Any]:
    sink = ErrorSink(strict, cut.name)
    segments = [split_segment(r, cut.delims) for r in cut.raws]
    interchange = _interchange(cut.isa, cut.delims.to_dict(), cut.trailing, sink)
    doc: dict[str, Any] = {"interchange": interchange, "groups": []}
    walker = _Walker(segments, sink, allowed, check_segments, cut.delims)
    walker.check_elements = check_elements
    walker.broken = cut.broken
    doc["groups"] = walker.groups()
    interchange["iea"] = walker.iea
    if walker.ta1:
        interchange["ta1"] = walker.ta1
    # Always present so mappings can test them; strict parses raise instead.
    doc["errors"] = [e.to_dict() for e in sink.errors]
    doc["warnings"] = [w.to_dict() for w in sink.warnings]
    return doc


def _interchange(
    isa: list[str], delimiters: dict[str, Any], trailing: str, sink: ErrorSink
) -> dict[str, Any]:
    for number in (9, 10, 13):
        if not isa[number - 1].isdigit():
            sink.report(
                X12Error(
                    f"must be numeric, found {isa[number - 1]!r}",
                    1,
                    "ISA",
                    number,
                    level="interchange",
                    value=isa[number - 1],
                )
            )
    return {
        "auth_qualifier": isa[0],
        "auth_info": isa[1].rstrip(),
        "security_qualifier": isa[2],
        "security_info": isa[3].rstrip(),
        "sender_qualifier": isa[4],
        "sender_id": isa[5].rstrip(),
        "receiver_qualifier": isa[6],
        "receiver_id": isa[7].rstrip(),
        "date": isa[8],
        "time": isa[9],
        "standards_id": isa[10],
        "version": isa[11],
        "control_number": isa[12],
        "ack_requested": isa[13] == "1",
        "usage_indicator": isa[14],
        "delimiters": delimiters,
        "isa": ["ISA", *isa],
        "iea": None,
        # Exactly what followed the IEA terminator ("", "\n", "\r\n"), so a
        # file's final line break survives the round trip.
        "trailing": trailing,
    }


#: The composite elements a typed view reads as such (AK401: position, component).
_COMPOSITES = frozenset({("AK4", 1)})


class _Walker:
    """Walks the segment list once, building groups and checking envelopes."""

    def __init__(
        self,
        segments: list[Segment],
        sink: ErrorSink,
        extra: Mapping[str, frozenset[str]],
        check_segments: bool,
        delims: Delimiters,
    ) -> None:
        self.segments = segments
        self.sink = sink
        self.extra = extra
        self.check_segments = check_segments
        self.delims = delims
        self.version = ""  # GS08 of the group being walked
        self.pos = 1  # 0-based cursor; segment 0 is the ISA
        self.iea: Segment | None = None
        self.ta1: list[Segment] = []
        self.broken: set[int] = set()  # segments with a line break inside
        self.check_elements = True

    def _flat(self, index: int, seg: Segment) -> Segment:
        """``seg`` as the envelope and the typed views read it: every element they read is
        a simple one, so a repetition or component separator inside it is the sender's data
        (``MTX**ATTN: DOCK 4`` with ISA16 ``:``) and the whole text is the value.  A
        repetition split is reported; the generic segments keep both splits, so rendering
        stays exact."""
        out = list(seg)
        for number in range(1, len(seg)):
            value, whole = unrepeat(seg[number], self.delims)
            if isinstance(value, list) and (seg[0], number) not in _COMPOSITES:
                value = self.delims.component.join(value)
            out[number] = value
            if whole is None:
                continue
            self.sink.warn(
                X12Error(
                    f"{whole!r} holds the repetition separator {self.delims.repetition!r} "
                    f"(ISA11) but {seg[0]}{number:02d} does not repeat; the whole text is "
                    "kept as its value",
                    index,
                    str(seg[0]),
                    number,
                    level="element",
                    code="6",
                    value=whole,
                )
            )
        return out

    def _peek(self) -> str | None:
        return str(self.segments[self.pos][0]) if self.pos < len(self.segments) else None

    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        isa = self.segments[0]
        while self.pos < len(self.segments):
            seg_id = self._peek()
            if seg_id == "GS":
                self.sink.group_index = len(groups)
                groups.append(self._group())
                self.sink.group_index = None
            elif seg_id == "IEA":
                self._iea(isa, len(groups))
                break
            elif seg_id == "TA1" and not groups:
                # Interchange acknowledgments sit between ISA and the first GS (a VAN's
                # TA1-only interchange has no group at all); IEA01 does not count them.
                self.ta1.append(self.segments[self.pos])
                self.pos += 1
            else:
                self.sink.report(
                    X12Error(
                        "segment outside a functional group",
                        self.pos + 1,
                        seg_id,
                        level="interchange",
                    )
                )
                self.pos += 1
        else:
            raise X12Error(
                f"IEA missing: interchange truncated after segment {len(self.segments)}",
                len(self.segments) + 1,
                "IEA",
                level="interchange",
                interchange=self.sink.interchange,
            )
        return groups

    def _iea(self, isa: Segment, group_count: int) -> None:
        index = self.pos + 1
        iea = self.segments[self.pos]
        self.iea = iea
        iea = self._flat(index, iea)
        if _count(_el(iea, 1)) != group_count:
            self.sink.report(
                X12Error(
                    f"IEA01 says {_el(iea, 1)!r} groups, interchange has {group_count}",
                    index,
                    "IEA",
                    1,
                    level="interchange",
                    value=_el(iea, 1),
                )
            )
        if not _same_number(_el(iea, 2), isa[13]):
            self.sink.report(
                X12Error(
                    f"IEA02 {_el(iea, 2)!r} does not match ISA13 {isa[13]!r}",
                    index,
                    "IEA",
                    2,
                    level="interchange",
                    value=_el(iea, 2),
                )
            )
        self.pos += 1
        if self.pos < len(self.segments):
            self.sink.report(
                X12Error("segment after IEA", self.pos + 1, self._peek(), level="interchange")
            )

    def _group(self) -> dict[str, Any]:
        gs_index = self.pos + 1
        gs = self.segments[self.pos]
        self.pos += 1
        flat = self._flat(gs_index, gs)
        self.version = _el(flat, 8)
        group: dict[str, Any] = {
            "functional_id": _el(flat, 1),
            "sender": _el(flat, 2),
            "receiver": _el(flat, 3),
            "date": _el(flat, 4),
            "time": _el(flat, 5),
            "control_number": _el(flat, 6),
            "agency": _el(flat, 7),
            "version": self.version,
            "gs": gs,
            "ge": None,
            "transactions": [],
        }
        if not _el(gs, 6).isdigit():
            self.sink.report(
                X12Error(
                    f"group control number must be numeric, found {_el(gs, 6)!r}",
                    gs_index,
                    "GS",
                    6,
                    level="group",
                    code="6",
                    value=_el(gs, 6),
                )
            )
        while (seg_id := self._peek()) not in (None, "GE", "GS", "IEA"):
            if seg_id == "ST":
                self.sink.transaction_index = len(group["transactions"])
                group["transactions"].append(self._transaction())
                self.sink.transaction_index = self.sink.set_start = None
            else:
                self.sink.report(
                    X12Error(
                        "segment outside a transaction set",
                        self.pos + 1,
                        seg_id,
                        level="group",
                        code="",
                    )
                )
                self.pos += 1
        if self._peek() != "GE":
            self.sink.report(
                X12Error(
                    f"GE missing for group {_el(gs, 6)!r} that starts at segment {gs_index}",
                    self.pos + 1,
                    "GE",
                    level="group",
                    code="3",
                )
            )
            return group
        group["ge"] = self.segments[self.pos]
        ge = self._flat(self.pos + 1, group["ge"])
        count = len(group["transactions"])
        if _count(_el(ge, 1)) != count:
            self.sink.report(
                X12Error(
                    f"GE01 says {_el(ge, 1)!r} transaction sets, group has {count}",
                    self.pos + 1,
                    "GE",
                    1,
                    level="group",
                    code="5",
                    value=_el(ge, 1),
                )
            )
        if not _same_number(_el(ge, 2), _el(gs, 6)):
            self.sink.report(
                X12Error(
                    f"GE02 {_el(ge, 2)!r} does not match GS06 {_el(gs, 6)!r}",
                    self.pos + 1,
                    "GE",
                    2,
                    level="group",
                    code="4",
                    value=_el(ge, 2),
                )
            )
        self.pos += 1
        return group

    def _transaction(self) -> dict[str, Any]:
        start = self.pos
        self.sink.set_start = start + 1
        st = self._flat(start + 1, self.segments[start])
        set_id, control = _el(st, 1), _el(st, 2)
        if not (len(set_id) == 3 and set_id.isdigit()):
            self.sink.report(
                X12Error(
                    f"invalid transaction set identifier {set_id!r}",
                    start + 1,
                    "ST",
                    1,
                    level="set",
                    code="6",
                    value=set_id,
                )
            )
        if not control:
            self.sink.report(
                X12Error(
                    "transaction set control number missing",
                    start + 1,
                    "ST",
                    2,
                    level="set",
                    code="7",
                )
            )
        self.pos += 1
        while (seg_id := self._peek()) not in (None, "SE", "ST", "GE", "GS", "IEA"):
            self.pos += 1
        spec = TYPED.get(set_id)
        items: list[Item] = [
            (i + 1, self._flat(i + 1, self.segments[i]) if spec else self.segments[i])
            for i in range(start + 1, self.pos)
        ]
        self._check_ids(items, spec)
        if seg_id == "SE":
            se = self._flat(self.pos + 1, self.segments[self.pos])
            self.pos += 1
            self._check_se(se, control, self.pos - start)
        else:
            self.sink.report(
                X12Error(
                    f"SE missing for transaction set {control!r} that starts at segment "
                    f"{start + 1}",
                    self.pos + 1,
                    "SE",
                    level="set",
                    code="2",
                )
            )
        tx: dict[str, Any] = {"set": set_id, "control_number": control}
        if _el(st, 3):
            tx["implementation_reference"] = _el(st, 3)
        tx["segments"] = self.segments[start : self.pos]
        if spec is not None and self.check_elements:
            elements.check(items, self.version, self.sink)
        if spec is not None:
            # Envelope-level names win: a typed view never overwrites them.
            for key, value in spec.view(items, self.sink).items():
                tx.setdefault(key, value)
        return tx

    def _check_se(self, se: Segment, control: str, count: int) -> None:
        index = self.pos
        if _count(_el(se, 1)) != count:
            self.sink.report(
                X12Error(
                    f"SE01 says {_el(se, 1)!r} segments, transaction set has {count}",
                    index,
                    "SE",
                    1,
                    level="set",
                    code="4",
                    value=_el(se, 1),
                )
            )
        if not _same_number(_el(se, 2), control):
            self.sink.report(
                X12Error(
                    f"SE02 {_el(se, 2)!r} does not match ST02 {control!r}",
                    index,
                    "SE",
                    2,
                    level="set",
                    code="3",
                    value=_el(se, 2),
                )
            )

    def _check_ids(self, items: list[Item], spec: SetSpec | None) -> None:
        allowed = None
        if spec is not None:
            allowed = (
                spec.allowed(self.version)
                | self.extra.get(spec.set_id, frozenset())
                | self.extra.get("*", frozenset())
            )
        for index, seg in items:
            seg_id = str(seg[0])
            if index in self.broken:
                self.sink.report(
                    X12Error(
                        "a line break inside the segment (the file wrapped at a fixed width?): "
                        "set unwrap: true on the x12 step to join wrapped lines",
                        index,
                        seg_id,
                        code="8",
                    )
                )
            if not SEGMENT_ID.fullmatch(seg_id):
                self.sink.report(
                    X12Error(
                        f"unrecognized segment id {seg_id!r}", index, seg_id, code="1", value=seg_id
                    )
                )
            elif self.check_segments and allowed is not None and seg_id not in allowed:
                assert spec is not None
                self.sink.report(
                    X12Error(
                        f"segment {seg_id} is not defined for transaction set {spec.set_id}",
                        index,
                        seg_id,
                        code="6",
                        value=seg_id,
                    )
                )


def _count(value: str) -> int | None:
    """A count element (SE01, GE01, IEA01: N0) as its number; ``0000000026`` is 26."""
    value = value.strip()
    return int(value) if value.isdigit() else None


def _same_number(value: str, expected: str) -> bool:
    """Control numbers match as numbers when both are digits (GS06/GE02 and ISA13/IEA02
    are N0, and partners pad ST02/SE02 differently), else as text."""
    a, b = value.strip(), expected.strip()
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return value == expected
