"""Interchange parsing: ISA/GS/ST…SE/GE/IEA into the analyst-facing JSON document.

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

from . import ts810, ts850, ts855, ts856, ts997
from .errors import ErrorSink, X12Error
from .fields import Item, SetSpec
from .fields import text as _el
from .tokenize import Segment, read_isa, split_segment, split_segments

TYPED: dict[str, SetSpec] = {
    spec.set_id: spec for spec in (ts850.SPEC, ts855.SPEC, ts856.SPEC, ts810.SPEC, ts997.SPEC)
}
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")


def parse(
    text: str,
    *,
    strict: bool = True,
    extra_segments: Mapping[str, Iterable[str]] | None = None,
    check_segments: bool = True,
) -> dict[str, Any]:
    """Parse one interchange.

    ``strict`` raises the first :class:`X12Error`; otherwise every problem
    that still lets the structure be read is collected in ``doc["errors"]``
    (always present, empty for a clean interchange).  A missing ISA/IEA or an
    unterminated segment raises even then: nothing reliable can be read.
    ``extra_segments`` widens the per-set dictionary for a partner that uses
    segments we do not list (``{"850": ["PKG"]}``); ``check_segments=False``
    turns the unknown-segment check off altogether.
    """
    sink = ErrorSink(strict)
    delims, isa = read_isa(text)
    raws, trailing = split_segments(text, delims)
    if trailing.strip("\r\n"):
        unterminated = trailing.lstrip("\r\n")
        raise X12Error(
            f"segment is not terminated by {delims.segment!r} (interchange truncated)",
            len(raws) + 1,
            unterminated.split(delims.element, 1)[0][:3],
            level="interchange",
        )
    segments = [split_segment(r, delims) for r in raws]
    interchange = _interchange(isa, delims.to_dict(), trailing, sink)
    doc: dict[str, Any] = {"interchange": interchange, "groups": []}
    allowed = {k: frozenset(v) for k, v in (extra_segments or {}).items()}
    walker = _Walker(segments, sink, allowed, check_segments)
    doc["groups"] = walker.groups()
    interchange["iea"] = walker.iea
    # Always present so mappings can test it; strict parses raise instead.
    doc["errors"] = [e.to_dict() for e in sink.errors]
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


class _Walker:
    """Walks the segment list once, building groups and checking envelopes."""

    def __init__(
        self,
        segments: list[Segment],
        sink: ErrorSink,
        extra: Mapping[str, frozenset[str]],
        check_segments: bool,
    ) -> None:
        self.segments = segments
        self.sink = sink
        self.extra = extra
        self.check_segments = check_segments
        self.pos = 1  # 0-based cursor; segment 0 is the ISA
        self.iea: Segment | None = None

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
            )
        return groups

    def _iea(self, isa: Segment, group_count: int) -> None:
        index = self.pos + 1
        iea = self.segments[self.pos]
        self.iea = iea
        if _el(iea, 1) != str(group_count):
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
        if _el(iea, 2) != isa[13]:
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
        group: dict[str, Any] = {
            "functional_id": _el(gs, 1),
            "sender": _el(gs, 2),
            "receiver": _el(gs, 3),
            "date": _el(gs, 4),
            "time": _el(gs, 5),
            "control_number": _el(gs, 6),
            "agency": _el(gs, 7),
            "version": _el(gs, 8),
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
        ge = self.segments[self.pos]
        group["ge"] = ge
        count = len(group["transactions"])
        if _el(ge, 1) != str(count):
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
        if _el(ge, 2) != _el(gs, 6):
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
        st = self.segments[start]
        self.sink.set_start = start + 1
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
        items: list[Item] = [(i + 1, self.segments[i]) for i in range(start + 1, self.pos)]
        self._check_ids(items, spec)
        if seg_id == "SE":
            se = self.segments[self.pos]
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
        if spec is not None:
            # Envelope-level names win: a typed view never overwrites them.
            for key, value in spec.view(items, self.sink).items():
                tx.setdefault(key, value)
        return tx

    def _check_se(self, se: Segment, control: str, count: int) -> None:
        index = self.pos
        if _el(se, 1) != str(count):
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
        if _el(se, 2) != control:
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
        allowed = spec.segments | self.extra.get(spec.set_id, frozenset()) if spec else None
        for index, seg in items:
            seg_id = str(seg[0])
            if not _SEGMENT_ID.fullmatch(seg_id):
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
