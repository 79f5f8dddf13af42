"""Typed view of the 846 Inventory Inquiry/Advice (supplier or warehouse → us).

``bia`` holds the header (purpose 00 original / 05 replace, report_type DD distributor
inventory report / MM manufacturer / MB … , reference, date, time); the common header
structures follow (``dates``, ``refs``, ``contacts``, ``currency``, ``n1`` parties keyed by
entity code, e.g. SU supplier, WH warehouse); ``lines`` come from LIN (line_number =
LIN01, ``product_ids`` keyed by qualifier VN/VP/BP/UP/EN/SK …) with the PID
``description``, ``quantities`` from QTY (qualifier 33 available for sale, 17 on hand,
02 cumulative, 29 … , qty, uom), ``schedules`` from SCH (qty, uom, date_qualifier — 018
available from —, date) and per-line dates/refs; ``ctt`` holds the totals.
"""

from __future__ import annotations

from typing import Any

from .common import header_reader, read_ids, text, walk_lines
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, dictionary, read

BIA = (
    Field("purpose", 1, "ID"),
    Field("report_type", 2, "ID"),
    Field("reference", 3),
    Field("date", 4, "DT"),
    Field("time", 5, "TM"),
    Field("action", 6, "ID"),
)
QTY = (Field("qualifier", 1, "ID"), Field("qty", 2, "R"), Field("uom", 3, "ID"))
SCH = (
    Field("qty", 1, "R"),
    Field("uom", 2, "ID"),
    Field("date_qualifier", 5, "ID"),
    Field("date", 6, "DT"),
    Field("time", 7, "TM"),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

#: 846 segments of the 004010 standard; 004030 and 005010 use the same list.
SEGMENTS = dictionary(
    "ST BIA CUR DTM REF PER MEA N1 N2 N3 N4 LM LQ LIN PID PKG CTP SAC SDQ MAN UIT CS DD G53 "
    "PCT LDT SLN QTY SCH LS LE CTT SE"
)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"BIA": BIA, "CTT": CTT})

    def read_lin(item: Item) -> dict[str, Any]:
        line: dict[str, Any] = {"product_ids": read_ids(item[1], 2)}
        if text(item[1], 1):
            line = {"line_number": text(item[1], 1), **line}
        return line

    def on_line(item: Item, line: dict[str, Any]) -> bool:
        seg_id = item[1][0]
        if seg_id == "QTY":
            line.setdefault("quantities", []).append(read(item, QTY, sink))
        elif seg_id == "SCH":
            line.setdefault("schedules", []).append(read(item, SCH, sink))
        else:
            return False
        return True

    walk_lines(items, sink, out, "LIN", on_header, on_line, read_line=read_lin)
    return out


SPEC = SetSpec("846", "IB", SEGMENTS, view, None)
