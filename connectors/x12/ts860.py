"""Typed view of the 860 Purchase Order Change Request — Buyer Initiated (customer → us).

``bch`` holds the change header (purpose 01 cancellation / 04 change / 05 replace, type SA,
po_number, release_number, change_sequence, po_date, request_reference, contract_number,
reference, change_date); the common header structures of the 850 follow (``currency``,
``refs``, ``contacts``, ``terms``, ``dates``, ``td5``, ``n1``); ``lines`` come from POC
(line_number, change — AI add item, CA change, DI delete item, PC price change, QD/QI
quantity decrease/increase, RZ replace all —, qty = the new quantity ordered, qty_left to
receive, uom, unit_price, price_basis, ``product_ids`` keyed by qualifier) with the PID
``description``, ``schedules`` from SCH and per-line refs/dates/parties; ``ctt`` the
totals.
"""

from __future__ import annotations

from typing import Any

from .common import header_reader, read_ids, walk_lines
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, dictionary, read

BCH = (
    Field("purpose", 1, "ID"),
    Field("type", 2, "ID"),
    Field("po_number", 3),
    Field("release_number", 4),
    Field("change_sequence", 5),
    Field("po_date", 6, "DT"),
    Field("request_reference", 7),
    Field("contract_number", 8),
    Field("reference", 9),
    Field("change_date", 10, "DT"),
)
POC = (
    Field("line_number", 1),
    Field("change", 2, "ID"),
    Field("qty", 3, "R"),
    Field("qty_left", 4, "R"),
    Field("uom", 5, "ID"),
    Field("unit_price", 6, "R"),
    Field("price_basis", 7, "ID"),
)
SCH = (
    Field("qty", 1, "R"),
    Field("uom", 2, "ID"),
    Field("date_qualifier", 5, "ID"),
    Field("date", 6, "DT"),
    Field("time", 7, "TM"),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

#: 860 segments of the 004010 standard (MSG of the 003xxx ones still sent, as in the 850).
SEGMENTS = dictionary(
    "ST BCH CUR REF PER TAX FOB CTP PAM CSH SAC ITD DIS INC DTM LDT LIN SI PID MEA PWK PKG "
    "TD1 TD5 TD3 TD4 CTB MAN G53 TXI PCT AMT FA1 FA2 N9 MSG N1 N2 N3 N4 NX2 LM LQ SPI G61 CB1 "
    "ADV POC CN1 PO3 PO4 IT8 SDQ TC2 QTY SCH LS LE SLN CTT SE NTE"
)
#: As in the 850: 004030 brought MTX (text), EFI and IN2; 005010 kept them.
ADDED = (("004030", dictionary("MTX EFI IN2")),)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"BCH": BCH, "CTT": CTT})

    def read_poc(item: Item) -> dict[str, Any]:
        line = read(item, POC, sink)
        ids = read_ids(item[1], 8)
        if ids:
            line["product_ids"] = ids
        return line

    def on_line(item: Item, line: dict[str, Any]) -> bool:
        if item[1][0] != "SCH":
            return False
        line.setdefault("schedules", []).append(read(item, SCH, sink))
        return True

    walk_lines(items, sink, out, "POC", on_header, on_line, read_line=read_poc)
    return out


SPEC = SetSpec("860", "PC", SEGMENTS, view, None, ADDED)
