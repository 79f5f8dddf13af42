"""Typed view of the 855 Purchase Order Acknowledgment.

``bak`` carries the acknowledgment header (purpose, ack_type such as AC/AD/RJ,
po_number, po_date, reference_id = seller's order number, ack_date); the
common header structures follow the 850 layout; ``lines`` come from PO1 with
their ``acks`` (ACK: status IA/IB/IR/…, qty, uom, date_qualifier, date) and
``ctt`` holds the totals.  :func:`build` accepts the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import header_reader, walk_lines, write_common, write_ctt, write_line, write_pid
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, decimal, dictionary, read, write, write_list
from .tokenize import Segment

BAK = (
    Field("purpose", 1, "ID"),
    Field("ack_type", 2, "ID"),
    Field("po_number", 3),
    Field("po_date", 4, "DT"),
    Field("release_number", 5),
    Field("request_reference", 6),
    Field("contract_number", 7),
    Field("reference_id", 8),
    Field("ack_date", 9, "DT"),
)
ACK = (
    Field("status", 1, "ID"),
    Field("qty", 2, "R"),
    Field("uom", 3, "ID"),
    Field("date_qualifier", 4, "ID"),
    Field("date", 5, "DT"),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

SEGMENTS = dictionary(
    "ST BAK CUR REF PER TAX FOB CTP PAM CSH SAC ITD DIS INC DTM LDT LIN SI PID MEA PWK PKG "
    "TD1 TD5 TD3 TD4 MAN TXI CTB N9 MSG N1 N2 N3 N4 NX2 PO1 PO3 PO4 ACK SCH SLN SDQ QTY AMT "
    "CTT SE NTE ADV IT8"
)
#: As in the 850: 004030 brought MTX (text), EFI and IN2.
ADDED = (("004030", dictionary("MTX EFI IN2")),)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"BAK": BAK, "CTT": CTT})

    def on_line(item: Item, line: dict[str, Any]) -> bool:
        if item[1][0] != "ACK":
            return False
        line.setdefault("acks", []).append(read(item, ACK, sink))
        return True

    walk_lines(items, sink, out, "PO1", on_header, on_line)
    return out


def build(tx: Mapping[str, Any]) -> list[Segment]:
    body: list[Segment] = [write("BAK", tx.get("bak") or {}, BAK)]
    body.extend(write_common(tx))
    lines = tx.get("lines") or []
    for n, line in enumerate(lines, start=1):
        line = {"line_number": str(n), **line}
        body.append(write_line("PO1", line))
        body.extend(write_pid(line.get("description")))
        body.extend(write_common(line, ("refs", "dates")))
        # ACK sits after PID/REF/DTM in the PO1 loop but before the line N1 loop.
        body.extend(write_list("ACK", line.get("acks"), ACK))
        body.extend(write_common(line, ("n1",)))
    body.extend(write_ctt(tx, len(lines), sum(decimal(ln.get("qty")) for ln in lines)))
    return body


SPEC = SetSpec("855", "PR", SEGMENTS, view, build, ADDED)
