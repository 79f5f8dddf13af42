"""Typed view of the 850 Purchase Order.

Parsed 850s expose ``beg`` (purpose, type, po_number, po_date, …), the common
header structures (``currency``, ``refs``, ``contacts``, ``terms``,
``dates``, ``td5``, ``n1`` parties keyed by entity code such as ``ST``/``BT``),
``lines`` built from PO1 (line_number, qty, uom, unit_price, price_basis,
``product_ids`` keyed by qualifier BP/VP/UP/SK/…, PID ``description``, and
per-line refs/dates/parties) and the ``ctt`` totals.  The same shape is what
:func:`build` accepts to produce an outbound 850 body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import header_reader, walk_lines, write_common, write_ctt, write_line, write_pid
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, decimal, dictionary, write
from .tokenize import Segment

BEG = (
    Field("purpose", 1, "ID"),
    Field("type", 2, "ID"),
    Field("po_number", 3),
    Field("release_number", 4),
    Field("po_date", 5, "DT"),
    Field("contract_number", 6),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

#: 850 segments of the 004010 standard (and NTE of the 003xxx ones, still sent); anything
#: else is reported as "segment not in defined transaction set".
SEGMENTS = dictionary(
    "ST BEG CUR REF PER TAX FOB CTP PAM CSH TC2 SAC ITD DIS INC DTM LDT LIN SI PID MEA PWK "
    "PKG TD1 TD5 TD3 TD4 MAN PCT CTB TXI N9 MSG N1 N2 N3 N4 NX2 PO1 PO3 PO4 CN1 QTY SCH SLN "
    "SDQ IT8 AMT CTT SE NTE SPI ADV FA1 FA2 LM LQ G61 CB1 IT3 LS LE"
)
#: 004030 replaced MSG by MTX (text) and added EFI and IN2; 005010 kept that list.
ADDED = (("004030", dictionary("MTX EFI IN2")),)


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}

    on_header = header_reader(out, sink, {"BEG": BEG, "CTT": CTT})

    walk_lines(items, sink, out, "PO1", on_header)
    return out


def build(tx: Mapping[str, Any]) -> list[Segment]:
    body: list[Segment] = [write("BEG", tx.get("beg") or {}, BEG)]
    body.extend(write_common(tx))
    lines = tx.get("lines") or []
    for n, line in enumerate(lines, start=1):
        line = {"line_number": str(n), **line}
        body.append(write_line("PO1", line))
        body.extend(write_pid(line.get("description")))
        body.extend(write_common(line, ("refs", "dates", "n1")))
    body.extend(write_ctt(tx, len(lines), sum(decimal(ln.get("qty")) for ln in lines)))
    return body


SPEC = SetSpec("850", "PO", SEGMENTS, view, build, ADDED)
