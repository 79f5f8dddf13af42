"""Typed view of the 856 Ship Notice/Manifest with its HL hierarchy nested.

The flat HL segments (HL01 id, HL02 parent id, HL03 level code) become
nested objects: ``shipment`` (level S) holds ``orders`` (O), an order holds
``packs`` (P) or ``tares`` (T), a pack holds ``items`` (I); any other level
code lands in ``children``.  This covers the common SOPI, SOTPI and SOI
structures without special-casing them.  Each HL node carries what its
segments say: ``td1``/``td5``/``td3``, ``refs``, ``dates``, ``n1`` parties,
``prf`` (po_number…), ``man`` marks (``qualifier`` GM = SSCC-18), ``lin``
(line_number, product_ids), ``sn1`` (qty shipped…), ``po4``, ``description``.
:func:`build` renumbers the HLs, sets parent ids and child codes itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import Header, read_ids, read_pid, write_common, write_ctt, write_ids, write_pid
from .errors import ErrorSink, X12Error
from .fields import (
    Field,
    Item,
    SetSpec,
    decimal,
    dictionary,
    read,
    segment,
    text,
    write,
    write_list,
)
from .tokenize import Segment

BSN = (
    Field("purpose", 1, "ID"),
    Field("shipment_id", 2),
    Field("date", 3, "DT"),
    Field("time", 4, "TM"),
    Field("structure_code", 5, "ID"),
)
TD1 = (
    Field("packaging_code", 1),
    Field("lading_qty", 2, "N0"),
    Field("weight_qualifier", 6, "ID"),
    Field("weight", 7, "R"),
    Field("weight_uom", 8, "ID"),
    Field("volume", 9, "R"),
    Field("volume_uom", 10, "ID"),
)
TD3 = (
    Field("equipment_code", 1, "ID"),
    Field("equipment_initial", 2),
    Field("equipment_number", 3),
    Field("seal_number", 9),
)
PRF = (
    Field("po_number", 1),
    Field("release_number", 2),
    Field("change_sequence", 3),
    Field("po_date", 4, "DT"),
)
MAN = (Field("qualifier", 1, "ID"), Field("number", 2))
SN1 = (
    Field("line_number", 1),
    Field("qty", 2, "R"),
    Field("uom", 3, "ID"),
    Field("qty_shipped_to_date", 4, "R"),
    Field("qty_ordered", 5, "R"),
    Field("ordered_uom", 6, "ID"),
    Field("status", 8, "ID"),
)
PO4 = (
    Field("pack", 1, "N0"),
    Field("size", 2, "R"),
    Field("size_uom", 3, "ID"),
    Field("packaging_code", 4),
    Field("weight_qualifier", 5, "ID"),
    Field("gross_weight", 6, "R"),
    Field("weight_uom", 7, "ID"),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

#: HL03 level code → list key in the parent node, in the order children are built.
LEVEL_KEYS = {"O": "orders", "T": "tares", "P": "packs", "I": "items", "S": "shipments"}
KEY_LEVELS = {key: level for level, key in LEVEL_KEYS.items()}
CHILD_ORDER = ("shipments", "orders", "tares", "packs", "items", "children")

SEGMENTS = dictionary(
    "ST BSN DTM HL LIN SN1 SLN PRF PO4 PID MEA PWK PKG TD1 TD5 TD3 TD4 TSD REF PER LH1 LH2 "
    "LH3 LFH LEP UNA LH4 LHT LHR CLD MAN DTM FOB PAL N1 N2 N3 N4 SDQ ETD CUR SAC GF YNQ CTT "
    "SE LHE DTP LM LQ V1 R4"
)
#: 005010 added AT9 (trailer or container dimensions) under TD3.
ADDED = (("005010", dictionary("AT9")),)

_NODE_FIELDS: dict[str, tuple[str, tuple[Field, ...]]] = {
    "PRF": ("prf", PRF),
    "SN1": ("sn1", SN1),
    "PO4": ("po4", PO4),
}
_NODE_LISTS: dict[str, tuple[str, tuple[Field, ...]]] = {
    "TD1": ("td1", TD1),
    "TD3": ("td3", TD3),
    "MAN": ("man", MAN),
}


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    header = Header(out, sink)
    nodes: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    node: dict[str, Any] | None = None
    node_header: Header | None = None
    for item in items:
        seg_id, seg = item[1][0], item[1]
        if seg_id == "BSN":
            out["bsn"] = read(item, BSN, sink)
        elif seg_id == "HL":
            node = {"hl": text(seg, 1), "level": text(seg, 3)}
            node_header = Header(node, sink)
            _attach(item, node, nodes, roots, sink)
        elif seg_id == "CTT":
            out["ctt"] = read(item, CTT, sink)
            node = node_header = None
        elif node is None or node_header is None:
            header.take(item)
        elif node_header.take(item):
            # Common structures first: take() also closes an open N1 loop when
            # a segment that cannot belong to it arrives.
            continue
        elif seg_id == "LIN":
            lin: dict[str, Any] = {"product_ids": read_ids(seg, 2)}
            if text(seg, 1):
                lin = {"line_number": text(seg, 1), **lin}
            node["lin"] = lin
        elif seg_id == "PID":
            description = read_pid(item)
            if description and "description" not in node:
                node["description"] = description
        elif seg_id in _NODE_FIELDS:
            key, spec = _NODE_FIELDS[seg_id]
            node[key] = read(item, spec, sink)
        elif seg_id in _NODE_LISTS:
            key, spec = _NODE_LISTS[seg_id]
            node.setdefault(key, []).append(read(item, spec, sink))
    if roots:
        out["shipment"] = roots[0]
    if len(roots) > 1:
        out["shipments"] = roots
    if "ctt" in out:
        out["ctt"] = out.pop("ctt")  # keep the document order: hierarchy, then totals
    return out


def _attach(
    item: Item,
    node: dict[str, Any],
    nodes: dict[str, dict[str, Any]],
    roots: list[dict[str, Any]],
    sink: ErrorSink,
) -> None:
    index, seg = item
    hl_id, parent_id = text(seg, 1), text(seg, 2)
    if hl_id in nodes:
        sink.report(
            X12Error(
                f"HL id {hl_id!r} is used twice",
                index,
                "HL",
                1,
                level="element",
                code="7",
                value=hl_id,
            )
        )
    nodes[hl_id] = node
    if not parent_id:
        roots.append(node)
        return
    parent = nodes.get(parent_id)
    if parent is None:
        sink.report(
            X12Error(
                f"parent HL {parent_id!r} does not precede this HL",
                index,
                "HL",
                2,
                level="element",
                code="7",
                value=parent_id,
            )
        )
        roots.append(node)
        return
    parent.setdefault(LEVEL_KEYS.get(node["level"], "children"), []).append(node)


def build(tx: Mapping[str, Any]) -> list[Segment]:
    body: list[Segment] = [write("BSN", tx.get("bsn") or {}, BSN)]
    body.extend(write_common(tx, ("refs", "dates")))
    roots = tx.get("shipments") or ([tx["shipment"]] if tx.get("shipment") else [])
    counter = 0
    quantities: list[Any] = []

    def emit(node: Mapping[str, Any], parent: int | None, level: str) -> None:
        nonlocal counter
        counter += 1
        own = counter
        children = [(key, child) for key in CHILD_ORDER for child in node.get(key) or []]
        level = node.get("level") or level
        body.append(segment("HL", own, parent or "", level, "1" if children else "0"))
        body.extend(_node_segments(node))
        if node.get("sn1"):
            quantities.append(node["sn1"].get("qty"))
        for key, child in children:
            emit(child, own, KEY_LEVELS.get(key, ""))

    for root in roots:
        emit(root, None, "S")
    # CTT01 counts HL segments, the usual 856 convention; CTT02 sums SN102.
    body.extend(write_ctt(tx, counter, sum(decimal(q) for q in quantities)))
    return body


def _node_segments(node: Mapping[str, Any]) -> list[Segment]:
    """HL loop order of the 004010 856: LIN SN1 PRF PO4 PID TD1 TD5 TD3 REF PER MAN DTM N1."""
    out: list[Segment] = []
    lin = node.get("lin")
    if lin:
        out.append(segment("LIN", lin.get("line_number", ""), *write_ids(lin.get("product_ids"))))
    for key, spec, seg_id in (("sn1", SN1, "SN1"), ("prf", PRF, "PRF"), ("po4", PO4, "PO4")):
        if node.get(key):
            out.append(write(seg_id, node[key], spec))
    out.extend(write_pid(node.get("description")))
    out.extend(write_list("TD1", node.get("td1"), TD1))
    out.extend(write_common(node, ("td5",)))
    out.extend(write_list("TD3", node.get("td3"), TD3))
    out.extend(write_common(node, ("refs", "contacts")))
    out.extend(write_list("MAN", node.get("man"), MAN))
    out.extend(write_common(node, ("dates", "n1")))
    return out


SPEC = SetSpec("856", "SH", SEGMENTS, view, build, ADDED)
