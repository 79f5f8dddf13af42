"""Typed view of the 940 Warehouse Shipping Order (depositor → warehouse / 3PL).

``w05`` holds the order header (status N original, C cancel, R replace; order_number =
the depositor's order number, po_number, master_reference, type, action); ``n1`` the
parties keyed by entity code (ST ship-to, SF ship-from warehouse, DE depositor, BT …);
``refs`` (N9), ``dates`` (G62: 02 deliver by, 10 requested ship, 37 ship not before …),
``notes`` (NTE), ``w66`` the carrier instructions (payment_method PP/CC/TP,
transport_method, routing, scac); ``lx`` the detail loops, each with ``items`` from W01
(qty, uom, upc_case_code, product_ids keyed by qualifier VN/UP/BP/SK …, lot_number, the
G69 ``description``, per-item refs/notes/dates) and ``w76`` the totals.  :func:`build`
accepts the same shape and computes W76 when there is no ``w76`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import header_reader, write_common
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, decimal, dictionary, read, segment, total, write
from .tokenize import Segment
from .warehouse import (
    product_ids,
    walk,
    write_header_lists,
    write_item_tail,
    write_loops,
    write_product_ids,
)

W05 = (
    Field("status", 1, "ID"),
    Field("order_number", 2),
    Field("po_number", 3),
    Field("link_sequence", 4, "N0"),
    Field("master_reference", 5),
    Field("type", 6, "ID"),
    Field("action", 7, "ID"),
)
W66 = (
    Field("payment_method", 1, "ID"),
    Field("transport_method", 2, "ID"),
    Field("pallet_exchange", 3, "ID"),
    Field("unit_load", 4, "ID"),
    Field("routing", 5),
    Field("fob_point_code", 6, "ID"),
    Field("fob_point", 7),
    Field("cod_method", 8, "ID"),
    Field("cod_amount", 9, "N2"),
    Field("scac", 10, "ID"),
)
W01 = (
    Field("qty", 1, "R"),
    Field("uom", 2, "ID"),
    Field("upc_case_code", 3),
    Field("freight_class", 8),
    Field("lot_number", 13),
    Field("condition", 14, "ID"),
)
#: W01 product id pairs: (04, 05), (06, 07) and (15, 16)
W01_IDS = ((4, 5), (6, 7), (15, 16))
W76 = (
    Field("qty", 1, "R"),
    Field("weight", 2, "R"),
    Field("weight_uom", 3, "ID"),
    Field("volume", 4, "R"),
    Field("volume_uom", 5, "ID"),
)

#: 940 segments of the 004010 standard.
SEGMENTS = dictionary(
    "ST W05 N1 N2 N3 N4 PER N9 G61 G62 NTE W09 W66 W6 R2 BNX LM LQ LX MAN SDQ W01 G69 W20 "
    "QTY AMT G66 LH2 LHR LH6 LS LH1 LH3 LFH LEP LH4 LHT LE FA1 FA2 W76 SE"
)
#: 005010 added the TD3 equipment loop with AT9 (trailer or container dimensions).
ADDED = (("005010", dictionary("TD3 AT9")),)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"W05": W05, "W66": W66, "W76": W76})

    def read_item(item: Item) -> dict[str, Any]:
        entry = read(item, W01, sink)
        ids = product_ids(item[1], W01_IDS)
        if ids:
            entry["product_ids"] = ids
        return entry

    walk(items, sink, out, "W01", read_item, on_header)
    return out


def _write_item(entry: Mapping[str, Any]) -> list[Segment]:
    base = write("W01", entry, W01)
    return [write_product_ids(base, entry.get("product_ids"), W01_IDS), *write_item_tail(entry)]


def build(tx: Mapping[str, Any]) -> list[Segment]:
    # 940 heading order: W05, N1 loop, N9, G62, NTE, W66; then the LX loops and W76.
    body: list[Segment] = [write("W05", tx.get("w05") or {}, W05)]
    body.extend(write_common(tx, ("n1",)))
    body.extend(write_header_lists(tx))
    if tx.get("w66"):
        body.append(write("W66", tx["w66"], W66))
    body.extend(write_loops(tx, _write_item))
    items = [entry for loop in tx.get("lx") or [] for entry in loop.get("items") or []]
    # No w76 key: the total quantity is computed; "w76": null sends none (as "ctt": null).
    if "w76" not in tx:
        body.append(segment("W76", total(sum(decimal(e.get("qty")) for e in items))))
    elif tx["w76"]:
        body.append(write("W76", tx["w76"], W76))
    return body


SPEC = SetSpec("940", "OW", SEGMENTS, view, build, ADDED)
