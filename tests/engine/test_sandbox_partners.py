"""The sandbox partner's EDI endpoint answers every interchange of a file with its own 997,
its business rule (an 810 needs BIG04) applied to each."""

from __future__ import annotations

from datetime import datetime

from connectors.x12 import MemoryControlNumbers, build_interchange, parse
from engine.sandbox import SandboxState
from engine.sandbox_partners import Request, edi_inbound


def invoice(number: str, po_number: str | None, numbers: MemoryControlNumbers) -> str:
    big = {"invoice_date": "20261122", "invoice_number": number}
    if po_number:
        big["po_number"] = po_number
    return build_interchange(
        [{"set": "810", "big": big, "lines": [{"qty": "2", "uom": "EA", "unit_price": "5.00"}]}],
        sender="ZZ:ACMEDIST", receiver="ZZ:PARTNER", control_numbers=numbers,
        now=datetime(2026, 11, 22, 10, 0))


def test_each_interchange_of_a_file_gets_its_own_997() -> None:
    numbers = MemoryControlNumbers(start=70)
    text = invoice("INV-1", "PO-1", numbers) + invoice("INV-2", None, numbers)
    request = Request("POST", "/partner/edi/inbound", {}, text, "application/edi-x12", {},
                      "http://127.0.0.1")
    answer = edi_inbound(SandboxState(), request, None)  # type: ignore[arg-type]
    assert answer.status == 200
    acks = parse(answer.body)["interchanges"]
    statuses = [a["groups"][0]["transactions"][0]["ak2"][0]["ak5"]["status"] for a in acks]
    assert statuses == ["A", "R"]
