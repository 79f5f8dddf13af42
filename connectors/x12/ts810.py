"""Typed view of the 810 Invoice.

``big`` holds invoice_date, invoice_number, po_date, po_number, … ; the
common header structures follow (in the 810, N1 parties come before ITD
``terms`` and DTM ``dates``); ``lines`` come from IT1 (same layout as PO1:
line_number, qty, uom, unit_price, price_basis, product_ids, description);
the summary has ``tds`` (amounts as decimal strings with the two implied
decimals applied: "1234.56", not 123456), ``sac`` allowances/charges, ``txi`` taxes
and ``ctt``.  When ``tds`` is missing, :func:`build` computes the total from
lines, charges, allowances and taxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .common import walk_lines, write_common, write_ctt, write_line, write_pid
from .errors import ErrorSink
from .fields import Field, Item, SetSpec, decimal, dictionary, read, write, write_list
from .tokenize import Segment

BIG = (
    Field("invoice_date", 1, "DT"),
    Field("invoice_number", 2),
    Field("po_date", 3, "DT"),
    Field("po_number", 4),
    Field("release_number", 5),
    Field("change_sequence", 6),
    Field("transaction_type", 7, "ID"),
)
TDS = (
    Field("total", 1, "N2"),
    Field("subject_to_discount", 2, "N2"),
    Field("discounted_amount_due", 3, "N2"),
    Field("discount_amount", 4, "N2"),
)
SAC = (
    Field("indicator", 1, "ID"),  # A = allowance, C = charge
    Field("code", 2, "ID"),
    Field("amount", 5, "N2"),
    Field("percent", 7, "R"),
    Field("description", 15),
)
TXI = (Field("type", 1, "ID"), Field("amount", 2, "R"), Field("percent", 3, "R"))
ISS = (
    Field("units", 1, "R"),
    Field("uom", 2, "ID"),
    Field("weight", 3, "R"),
    Field("weight_uom", 4, "ID"),
)
CTT = (Field("line_count", 1, "N0"), Field("hash_total", 2, "R"))

SEGMENTS = dictionary(
    "ST BIG NTE CUR REF YNQ PER N1 N2 N3 N4 ITD DTM FOB PID MEA PWK PKG L7 BAL INC PAM LM "
    "LQ N9 MSG IT1 CRC QTY IT3 TXI CTP PO4 IT8 SDQ SLN SAC TDS CAD ISS CTT SE DMG V1 R4 FA1 "
    "FA2 SR TC2 AMT"
)
# Summary starts at TDS; SAC/TXI after it are invoice-level, before it line-level.
_SUMMARY = frozenset({"TDS", "CTT"})


def view(items: list[Item], sink: ErrorSink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    in_summary = False

    def on_header(item: Item) -> bool:
        nonlocal in_summary
        seg_id = item[1][0]
        if seg_id == "BIG":
            out["big"] = read(item, BIG, sink)
        elif seg_id == "TDS":
            in_summary = True
            out["tds"] = read(item, TDS, sink)
        elif seg_id == "CTT":
            out["ctt"] = read(item, CTT, sink)
        elif seg_id == "ISS":
            out.setdefault("iss", []).append(read(item, ISS, sink))
        elif seg_id in ("SAC", "TXI") and in_summary:
            spec = SAC if seg_id == "SAC" else TXI
            out.setdefault(seg_id.lower(), []).append(read(item, spec, sink))
        else:
            return False
        return True

    def on_line(item: Item, line: dict[str, Any]) -> bool:
        seg_id = item[1][0]
        if seg_id not in ("SAC", "TXI"):
            return False
        spec = SAC if seg_id == "SAC" else TXI
        line.setdefault(seg_id.lower(), []).append(read(item, spec, sink))
        return True

    walk_lines(items, sink, out, "IT1", on_header, on_line, summary=_SUMMARY)
    return out


def build(tx: Mapping[str, Any]) -> list[Segment]:
    body: list[Segment] = [write("BIG", tx.get("big") or {}, BIG)]
    # 810 header order: CUR, REF, PER, N1 loop, then ITD and DTM.
    body.extend(write_common(tx, ("currency", "refs", "contacts", "n1", "terms", "dates")))
    lines = tx.get("lines") or []
    for n, line in enumerate(lines, start=1):
        line = {"line_number": str(n), **line}
        body.append(write_line("IT1", line))
        body.extend(write_list("TXI", line.get("txi"), TXI))
        body.extend(write_pid(line.get("description")))
        body.extend(write_common(line, ("refs", "dates")))
        body.extend(write_list("SAC", line.get("sac"), SAC))
    body.append(write("TDS", tx.get("tds") or {"total": _invoice_total(tx, lines)}, TDS))
    body.extend(write_list("TXI", tx.get("txi"), TXI))
    body.extend(write_list("SAC", tx.get("sac"), SAC))
    body.extend(write_list("ISS", tx.get("iss"), ISS))
    body.extend(write_ctt(tx, len(lines), sum(decimal(ln.get("qty")) for ln in lines)))
    return body


def _invoice_total(tx: Mapping[str, Any], lines: list[Any]) -> Decimal:
    """Lines + charges − allowances + taxes, rounded to cents (TDS01)."""
    amount = sum(
        (decimal(line.get("qty")) * decimal(line.get("unit_price")) for line in lines), Decimal(0)
    )
    for charge in [*(tx.get("sac") or []), *(c for line in lines for c in line.get("sac") or [])]:
        sign = -1 if charge.get("indicator") == "A" else 1
        amount += sign * decimal(charge.get("amount"))
    amount += sum(decimal(tax.get("amount")) for tax in tx.get("txi") or [])
    amount += sum(decimal(tax.get("amount")) for line in lines for tax in line.get("txi") or [])
    return amount  # rounded half-up to cents when encoded as N2


SPEC = SetSpec("810", "IN", SEGMENTS, view, build)
