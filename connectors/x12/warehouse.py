"""Structures of the warehouse sets (940, 945), read and written one way.

The 94x sets carry references in N9 (not REF), dates in G62 (not DTM), notes in NTE and
their detail in LX loops: one LX per line (940) or per package (945), each holding the
line items (W01 in the 940, W12 in the 945) with their G69 description and N9 references.
Keys follow the other sets so an analyst sees the same names: ``refs`` (qualifier, value,
description, date), ``dates`` (qualifier, date, time_qualifier, time), ``notes`` (code,
text), ``n1`` parties, ``lx`` loops of ``items`` with ``product_ids`` keyed by qualifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .common import Header
from .errors import ErrorSink, X12Error
from .fields import Field, Item, read, segment, text, write_list
from .tokenize import Segment

N9 = (
    Field("qualifier", 1, "ID"),
    Field("value", 2),
    Field("description", 3),
    Field("date", 4, "DT"),
    Field("time", 5, "TM"),
)
G62 = (
    Field("qualifier", 1, "ID"),
    Field("date", 2, "DT"),
    Field("time_qualifier", 3, "ID"),
    Field("time", 4, "TM"),
)
NTE = (Field("code", 1, "ID"), Field("text", 2))
MAN = (Field("qualifier", 1, "ID"), Field("number", 2))
LX = (Field("number", 1, "N0"),)

#: the totals segments that close the detail
TRAILER = frozenset({"W76", "W03"})
#: segment id → (list key, fields) of the structures both sets repeat at every level
_LISTS: dict[str, tuple[str, tuple[Field, ...]]] = {
    "N9": ("refs", N9),
    "G62": ("dates", G62),
    "NTE": ("notes", NTE),
    "MAN": ("man", MAN),
}


def product_ids(seg: Segment, pairs: Iterable[tuple[int, int]]) -> dict[str, str]:
    """Qualifier/id pairs at fixed positions (W0104/W0105, W0106/W0107, W0115/W0116)."""
    return {text(seg, q): text(seg, v) for q, v in pairs if text(seg, q)}


def write_product_ids(
    base: Segment, ids: Mapping[str, Any] | None, pairs: Iterable[tuple[int, int]]
) -> Segment:
    """``base`` with the ids put at the pair positions, in order; more ids than pairs is
    refused (the segment has no room for them, and dropping one would lose data)."""
    out = list(base)
    slots = list(pairs)
    items = list((ids or {}).items())
    if len(items) > len(slots):
        raise X12Error(f"{base[0]}: at most {len(slots)} product ids, got {len(items)}",
                       level="set")
    for (q, v), (qualifier, value) in zip(slots, items, strict=False):
        width = max(q, v) + 1
        out += [""] * (width - len(out))
        out[q], out[v] = qualifier, value
    return segment(*out)


def walk(
    items: list[Item],
    sink: ErrorSink,
    out: dict[str, Any],
    item_id: str,
    read_item: Callable[[Item], dict[str, Any]],
    on_header: Callable[[Item], bool],
) -> None:
    """Header, LX loops with their items, and the trailer (W76/W03) of a 94x set.

    ``on_header`` takes the set's own segments (W05, W66, W76 …) wherever they come.
    An item before any LX (some 3PLs leave LX out) opens an LX loop of its own, so no
    line is lost.  What no view models stays in ``segments``.
    """
    header = Header(out, sink)
    loop: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    for entry in items:
        seg_id = entry[1][0]
        if seg_id == "LX":
            loop = {**read(entry, LX, sink), "items": []}
            out.setdefault("lx", []).append(loop)
            item = None
        elif seg_id == item_id:
            if loop is None:
                loop = {"items": []}
                out.setdefault("lx", []).append(loop)
            item = read_item(entry)
            loop["items"].append(item)
        elif on_header(entry):
            header.party = None
            if seg_id in TRAILER:
                loop = item = None
        elif item is not None and seg_id == "G69":
            item.setdefault("description", text(entry[1], 1))
        elif seg_id in _LISTS:
            key, spec = _LISTS[seg_id]
            target = loop if seg_id == "MAN" or item is None else item
            if target is None:  # a header N9/G62/NTE also ends an open N1 loop
                header.party = None
                target = out
            target.setdefault(key, []).append(read(entry, spec, sink))
        elif loop is None:
            header.take(entry)


def write_header_lists(view: Mapping[str, Any]) -> list[Segment]:
    """N9, G62 and NTE of the header, in the order of the 940/945 heading."""
    out = write_list("N9", view.get("refs"), N9)
    out += write_list("G62", view.get("dates"), G62)
    out += write_list("NTE", view.get("notes"), NTE)
    return out


def write_loops(
    view: Mapping[str, Any], write_item: Callable[[Mapping[str, Any]], list[Segment]]
) -> list[Segment]:
    """The LX loops, numbered 1, 2, … unless a loop gives its number."""
    out: list[Segment] = []
    for n, loop in enumerate(view.get("lx") or [], start=1):
        out.append(segment("LX", loop.get("number", n)))
        out.extend(write_list("MAN", loop.get("man"), MAN))
        for entry in loop.get("items") or []:
            out.extend(write_item(entry))
    return out


def write_item_tail(entry: Mapping[str, Any]) -> list[Segment]:
    """G69 description, then N9 references, NTE notes and G62 dates of one item."""
    out: list[Segment] = []
    if entry.get("description"):
        out.append(segment("G69", entry["description"]))
    out += write_list("N9", entry.get("refs"), N9)
    out += write_list("NTE", entry.get("notes"), NTE)
    out += write_list("G62", entry.get("dates"), G62)
    return out

