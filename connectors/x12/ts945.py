"""Typed view of the 945 Warehouse Shipping Advice (warehouse / 3PL → depositor).

``w06`` holds the advice header (reporting_code F final / P partial, order_number = the
depositor's order number from the 940, date shipped, shipment_id, agent_shipment_id,
po_number, master_reference); ``n1`` the parties keyed by entity code; ``refs`` (N9: BM
bill of lading, CN pro / tracking number …), ``dates`` (G62 11 = shipped); ``w27`` the
carrier that took the goods (transport_method, scac, routing, payment_method, equipment);
``lx`` the detail loops — one per package or line as the warehouse reports it — each
with its ``man`` marks (GM = SSCC-18, CP = carrier package id) and ``items`` from W12
(status CC complete / CP partial / …, qty_ordered, qty shipped, qty_difference, uom,
upc_case_code, product_ids keyed by qualifier, lot_number, weight, the G69
``description``, refs); ``w03`` the totals (qty, weight, volume, lading_qty).
"""

from __future__ import annotations

from typing import Any

from .common import header_reader
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, dictionary, read
from .warehouse import product_ids, walk

W06 = (
    Field("reporting_code", 1, "ID"),
    Field("order_number", 2),
    Field("date", 3, "DT"),
    Field("shipment_id", 4),
    Field("agent_shipment_id", 5),
    Field("po_number", 6),
    Field("master_reference", 7),
    Field("link_sequence", 8, "N0"),
    Field("type", 11, "ID"),
    Field("action", 12, "ID"),
)
W27 = (
    Field("transport_method", 1, "ID"),
    Field("scac", 2, "ID"),
    Field("routing", 3),
    Field("payment_method", 4, "ID"),
    Field("equipment_code", 5, "ID"),
    Field("equipment_initial", 6),
    Field("equipment_number", 7),
    Field("status", 8, "ID"),
)
W12 = (
    Field("status", 1, "ID"),
    Field("qty_ordered", 2, "R"),
    Field("qty", 3, "R"),
    Field("qty_difference", 4, "R"),
    Field("uom", 5, "ID"),
    Field("upc_case_code", 6),
    Field("lot_number", 9),
    Field("weight", 10, "R"),
    Field("weight_qualifier", 11, "ID"),
    Field("weight_uom", 12, "ID"),
    Field("change_reason", 19, "ID"),
)
#: W12 product id pairs: (07, 08), (17, 18) and (21, 22)
W12_IDS = ((7, 8), (17, 18), (21, 22))
W03 = (
    Field("qty", 1, "R"),
    Field("weight", 2, "R"),
    Field("weight_uom", 3, "ID"),
    Field("volume", 4, "R"),
    Field("volume_uom", 5, "ID"),
    Field("lading_qty", 6, "N0"),
    Field("lading_uom", 7, "ID"),
)

#: 945 segments of the 004010 standard.
SEGMENTS = dictionary(
    "ST W06 N1 N2 N3 N4 PER N9 G61 G62 NTE W27 W6 W28 W10 G72 LM LQ LX MAN PAL W12 G69 QTY "
    "MEA AMT R4 LS LE FA1 FA2 W03 SE"
)
#: 005010 added TD1 (carrier details: quantity and weight) to the heading.
ADDED = (("005010", dictionary("TD1")),)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"W06": W06, "W27": W27, "W03": W03})

    def read_item(item: Item) -> dict[str, Any]:
        entry = read(item, W12, sink)
        ids = product_ids(item[1], W12_IDS)
        if ids:
            entry["product_ids"] = ids
        return entry

    walk(items, sink, out, "W12", read_item, on_header)
    return out


SPEC = SetSpec("945", "SW", SEGMENTS, view, None, ADDED)
