"""Header structures shared by several transaction sets, read and written one way.

REF, DTM, PER, CUR, ITD, TD5, the N1 party loop (parties keyed by entity
code), qualifier/id pairs, PO1/IT1 line items with PID descriptions and the
CTT totals recur across 850/855/856/810; keeping them here means an analyst
sees the same field names in every set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from .errors import ErrorSink
from .fields import Field, Item, read, segment, text, total, write, write_list
from .tokenize import Segment

REF = (Field("qualifier", 1, "ID"), Field("value", 2), Field("description", 3))
DTM = (Field("qualifier", 1, "ID"), Field("date", 2, "DT"), Field("time", 3, "TM"))
CUR = (Field("entity", 1, "ID"), Field("currency", 2, "ID"))
N1 = (Field("name", 2), Field("id_qualifier", 3, "ID"), Field("id", 4))
N4 = (
    Field("city", 1),
    Field("state", 2, "ID"),
    Field("postal_code", 3, "ID"),
    Field("country", 4, "ID"),
)
ITD = (
    Field("type", 1, "ID"),
    Field("basis_date", 2, "ID"),
    Field("discount_percent", 3, "R"),
    Field("discount_due_date", 4, "DT"),
    Field("discount_days", 5, "N0"),
    Field("net_due_date", 6, "DT"),
    Field("net_days", 7, "N0"),
    Field("discount_amount", 8, "N2"),
    Field("description", 12),
)
TD5 = (
    Field("routing_sequence", 1, "ID"),
    Field("id_qualifier", 2, "ID"),
    Field("carrier_code", 3),
    Field("transport_method", 4, "ID"),
    Field("routing", 5),
)
#: PO1/IT1 share their first five elements; product ids follow in pairs.
LINE = (
    Field("line_number", 1),
    Field("qty", 2, "R"),
    Field("uom", 3, "ID"),
    Field("unit_price", 4, "R"),
    Field("price_basis", 5, "ID"),
)
PARTY_SEGMENTS = frozenset({"N2", "N3", "N4", "REF", "PER"})


def read_ids(seg: Segment, start: int) -> dict[str, str]:
    """Qualifier/id pairs (PO106/PO107, LIN02/LIN03, …) keyed by qualifier."""
    ids: dict[str, str] = {}
    for pos in range(start, len(seg) - 1, 2):
        qualifier, value = text(seg, pos), text(seg, pos + 1)
        if qualifier:
            ids[qualifier] = value
    return ids


def write_ids(ids: Mapping[str, Any] | None) -> list[Any]:
    flat: list[Any] = []
    for qualifier, value in (ids or {}).items():
        flat.extend([qualifier, value])
    return flat


def read_per(item: Item) -> dict[str, Any]:
    seg = item[1]
    contact: dict[str, Any] = {"function": text(seg, 1)}
    if text(seg, 2):
        contact["name"] = text(seg, 2)
    comm = read_ids(seg, 3)
    if comm:
        contact["comm"] = comm
    return contact


def write_per(contact: Mapping[str, Any]) -> Segment:
    return segment(
        "PER", contact.get("function", ""), contact.get("name", ""), *write_ids(contact.get("comm"))
    )


def unique_key(target: Mapping[str, Any], key: str) -> str:
    """``ST``, then ``ST_2``, ``ST_3``: keeps repeated qualifiers without losing data."""
    if key not in target:
        return key
    n = 2
    while f"{key}_{n}" in target:
        n += 1
    return f"{key}_{n}"


class Header:
    """Accumulates the header structures common to 850/855/810/856 HL levels.

    ``take`` returns ``False`` for segments it does not handle so that the
    set-specific walker can deal with them; the N1 loop stays open while
    N2/N3/N4/REF/PER follow, which is how the standard nests them.
    """

    def __init__(self, target: dict[str, Any], sink: ErrorSink) -> None:
        self.target = target
        self.sink = sink
        self.party: dict[str, Any] | None = None

    def take(self, item: Item) -> bool:
        seg_id = item[1][0]
        if self.party is not None and seg_id in PARTY_SEGMENTS:
            self._party_segment(item)
            return True
        self.party = None
        if seg_id == "N1":
            code = text(item[1], 1)
            parties = self.target.setdefault("n1", {})
            self.party = read(item, N1, self.sink)
            parties[unique_key(parties, code)] = self.party
        elif seg_id == "REF":
            self.target.setdefault("refs", []).append(read(item, REF, self.sink))
        elif seg_id == "DTM":
            self.target.setdefault("dates", []).append(read(item, DTM, self.sink))
        elif seg_id == "PER":
            self.target.setdefault("contacts", []).append(read_per(item))
        elif seg_id == "CUR":
            self.target["currency"] = read(item, CUR, self.sink)
        elif seg_id == "ITD":
            self.target.setdefault("terms", []).append(read(item, ITD, self.sink))
        elif seg_id == "TD5":
            self.target.setdefault("td5", []).append(read(item, TD5, self.sink))
        else:
            return False
        return True

    def _party_segment(self, item: Item) -> None:
        party = self.party
        assert party is not None
        seg_id, seg = item[1][0], item[1]
        if seg_id == "N2":
            party["name2"] = text(seg, 1)
        elif seg_id == "N3":
            party.setdefault("address", []).extend(t for t in (text(seg, 1), text(seg, 2)) if t)
        elif seg_id == "N4":
            party.update(read(item, N4, self.sink))
        elif seg_id == "REF":
            party.setdefault("refs", []).append(read(item, REF, self.sink))
        else:
            party.setdefault("contacts", []).append(read_per(item))


def write_parties(parties: Mapping[str, Any] | None) -> list[Segment]:
    out: list[Segment] = []
    for key, party in (parties or {}).items():
        code = key.split("_", 1)[0]
        # N101 is the dict key (minus any _2 suffix), the rest comes from the fields.
        out.append(segment("N1", code, *write("N1", party, N1)[2:]))
        if party.get("name2"):
            out.append(segment("N2", party["name2"]))
        address = list(party.get("address") or [])
        for i in range(0, len(address), 2):
            out.append(segment("N3", *address[i : i + 2]))
        if any(f.name in party for f in N4):
            out.append(write("N4", party, N4))
        out.extend(write("REF", r, REF) for r in party.get("refs") or [])
        out.extend(write_per(c) for c in party.get("contacts") or [])
    return out


def write_line(seg_id: str, line: Mapping[str, Any]) -> Segment:
    base = write(seg_id, line, LINE)[1:]
    base += [""] * (5 - len(base))
    return segment(seg_id, *base, *write_ids(line.get("product_ids")))


def write_pid(description: Any) -> list[Segment]:
    return [segment("PID", "F", "", "", "", description)] if description else []


def read_pid(item: Item) -> str | None:
    """Free-form description (PID01 = F) from PID05; coded PIDs are ignored."""
    seg = item[1]
    return (text(seg, 5) or None) if text(seg, 1) == "F" else None


_COMMON_WRITERS: dict[str, Callable[[Any], list[Segment]]] = {
    "currency": lambda v: [write("CUR", v, CUR)] if v else [],
    "refs": lambda v: write_list("REF", v, REF),
    "contacts": lambda v: [write_per(c) for c in v or []],
    "terms": lambda v: write_list("ITD", v, ITD),
    "dates": lambda v: write_list("DTM", v, DTM),
    "td5": lambda v: write_list("TD5", v, TD5),
    "n1": write_parties,
}
#: Standard order of these structures in the 850/855 header and PO1 loop.
COMMON_ORDER = ("currency", "refs", "contacts", "terms", "dates", "td5", "n1")


def write_common(view: Mapping[str, Any], keys: Iterable[str] = COMMON_ORDER) -> list[Segment]:
    out: list[Segment] = []
    for key in keys:
        out.extend(_COMMON_WRITERS[key](view.get(key)))
    return out


def header_reader(out: dict[str, Any], sink: ErrorSink,
                  segments: Mapping[str, tuple[Field, ...]]) -> Callable[[Item], bool]:
    """The `walk_lines` header callback of a set whose heading and summary segments are each
    read once into ``out[<segment id, lower case>]`` by their fields."""
    def on_header(item: Item) -> bool:
        seg_id = item[1][0]
        fields = segments.get(seg_id)
        if fields is None:
            return False
        out[seg_id.lower()] = read(item, fields, sink)
        return True

    return on_header


def walk_lines(
    items: list[Item],
    sink: ErrorSink,
    out: dict[str, Any],
    line_id: str,
    on_header: Callable[[Item], bool],
    on_line: Callable[[Item, dict[str, Any]], bool] = lambda item, line: False,
    summary: frozenset[str] = frozenset({"CTT"}),
    read_line: Callable[[Item], dict[str, Any]] | None = None,
) -> None:
    """Shared walker for header / line-item / summary sets (850, 855, 810, 860).

    ``on_header`` and ``on_line`` handle set-specific segments and return
    ``False`` to fall back to the common structures.  Segments a view does not
    model are simply not in the typed view; they remain in ``segments``.
    ``read_line`` reads a line segment shaped unlike PO1/IT1 (the 860's POC).
    """
    header = Header(out, sink)
    line: dict[str, Any] | None = None
    line_header: Header | None = None
    for item in items:
        seg_id = item[1][0]
        if seg_id == line_id:
            line = read_line(item) if read_line else _read_line(item, sink)
            out.setdefault("lines", []).append(line)
            line_header = Header(line, sink)
        elif seg_id in summary:
            line = line_header = None
            on_header(item)
        elif line is not None and line_header is not None:
            if seg_id == "PID":
                line_header.party = None
                description = read_pid(item)
                if description and "description" not in line:
                    line["description"] = description
            elif not line_header.take(item):
                on_line(item, line)
        elif not header.take(item):
            # take() runs first so that it closes an open N1 loop on any
            # segment that cannot belong to it.
            on_header(item)


def _read_line(item: Item, sink: ErrorSink) -> dict[str, Any]:
    line = read(item, LINE, sink)
    ids = read_ids(item[1], 6)
    if ids:
        line["product_ids"] = ids
    return line


def write_ctt(tx: Mapping[str, Any], line_count: int, hash_total: Decimal | int) -> list[Segment]:
    """CTT with recomputed values, so an edited view never carries stale totals.

    No ``ctt`` key: both totals are sent.  A ``ctt`` object: its keys say
    which totals the partner wants (many 810s carry no hash total), the values
    are recomputed anyway.  ``"ctt": null``/``false``: no CTT segment.
    """
    if "ctt" in tx and not tx["ctt"]:
        return []
    given = tx.get("ctt")
    if isinstance(given, Mapping) and "hash_total" not in given:
        return [segment("CTT", line_count)]
    return [segment("CTT", line_count, total(hash_total))]
