"""The sandbox's outside partners: a supplier portal and a trading partner's EDI endpoint.

The supplier portal serves PO acknowledgments the way such portals do: ``GET /supplier/po-acks``
with a bearer token, ``updated_since`` (inclusive) and ``limit``, oldest first, and a
``links.next`` URL while more pages follow. The EDI partner takes an interchange at
``POST /partner/edi/inbound`` and acknowledges it with a 997 made by flowrunner's own X12
connector: accepted, or rejected where its guideline is broken — a syntax error, or (its
business rule) an 810 without the buyer's PO number in BIG04. Answers come at once ("sync") or,
like partners that batch their acknowledgments, later: a 202 now, the 997 kept in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from connectors.x12 import MemoryControlNumbers, X12Error, generate_997, parse

if TYPE_CHECKING:
    import re

#: the supplier portal's API token; `Sandbox.env` hands it to flows as a flowrun secret
PORTAL_TOKEN = "sandbox-portal-token"


def partner_numbers() -> MemoryControlNumbers:
    """The partner's own control numbers for the 997s it sends."""
    return MemoryControlNumbers(start=5501)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str
    headers: dict[str, str]
    base_url: str

    def record(self) -> dict[str, Any]:
        """What `GET /_sandbox/requests` shows: never the credentials themselves."""
        return {"method": self.method, "path": self.path, "query": self.query,
                "body": self.body, "content_type": self.content_type,
                "idempotency_key": self.headers.get("idempotency-key"),
                "correlation_id": self.headers.get("x-correlation-id"),
                "authorized": "authorization" in self.headers}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


def seed_po_acks() -> list[dict[str, Any]]:
    """Three acknowledgments: one with a changed line, one as ordered, one declined."""
    supplier = {"code": "V-20017", "name": "Nordic Office Supply AB"}

    def line(item: str, sku: str, ordered: int, confirmed: int, state: str) -> dict[str, Any]:
        return {"po_item": item, "article": sku, "ordered": ordered, "confirmed": confirmed,
                "unit": "EA", "price": "58.10", "delivery_date": "2026-12-08", "state": state}

    return [
        {"ack_id": "ACK-77120", "po": "4500012345", "state": "CONFIRMED_WITH_CHANGES",
         "issued_at": "2026-11-22T09:10:00Z", "updated_at": "2026-11-22T09:14:27Z",
         "supplier": supplier, "currency": "EUR", "delivery_date": "2026-12-08",
         "items": [line("10", "TONER-HP-59A", 30, 18, "CHANGED")]},
        {"ack_id": "ACK-77121", "po": "4500012346", "state": "CONFIRMED",
         "issued_at": "2026-11-22T09:18:00Z", "updated_at": "2026-11-22T09:20:03Z",
         "supplier": supplier, "currency": "EUR", "delivery_date": "2026-12-08",
         "items": [line("10", "TONER-HP-59A", 12, 12, "OK")]},
        {"ack_id": "ACK-77122", "po": "4500012347", "state": "DECLINED",
         "issued_at": "2026-11-22T09:30:00Z", "updated_at": "2026-11-22T09:31:45Z",
         "supplier": supplier, "currency": "EUR", "comment": "Article discontinued",
         "items": [line("10", "TONER-HP-59X", 5, 0, "DECLINED")]},
    ]


class PartnerState(Protocol):
    """What the partners keep in the sandbox's state (`engine.sandbox.SandboxState`)."""

    @property
    def portal_page_size(self) -> int: ...

    @property
    def po_acks(self) -> list[dict[str, Any]]: ...

    @property
    def edi_ack_mode(self) -> str: ...

    @property
    def edi_numbers(self) -> MemoryControlNumbers: ...

    @property
    def outbox(self) -> list[str]: ...


def po_acks(state: PartnerState, req: Request, m: re.Match[str]) -> Answer:
    if req.headers.get("authorization") != f"Bearer {PORTAL_TOKEN}":
        return Answer(401, {"error": "missing or wrong API token"})
    since = req.query.get("updated_since", "")
    limit = int(req.query.get("limit") or state.portal_page_size)
    limit = min(limit, state.portal_page_size)
    page = int(req.query.get("page") or 1)
    found = sorted((a for a in state.po_acks if a["updated_at"] >= since),
                   key=lambda a: (a["updated_at"], a["ack_id"]))
    data = found[(page - 1) * limit:page * limit]
    more = page * limit < len(found)
    query = urlencode({"updated_since": since, "limit": limit, "page": page + 1})
    return Answer(200, {"data": data, "links": {
        "next": f"{req.base_url}{req.path}?{query}" if more else None}})


def edi_inbound(state: PartnerState, req: Request, m: re.Match[str]) -> Answer:
    text = req.body if isinstance(req.body, str) else ""
    try:
        parsed = parse(text, strict=False)
        for one in parsed.get("interchanges") or [parsed]:  # a file may hold several
            one["errors"].extend(_guideline_errors(one))
        ack = generate_997(parsed, state.edi_numbers)
    except X12Error as exc:
        return Answer(400, f"not an interchange we can acknowledge: {exc}")
    if state.edi_ack_mode == "async":
        state.outbox.append(ack)
        return Answer(202, {"received": True})
    return Answer(200, ack, content_type="application/edi-x12")


def _guideline_errors(parsed: dict[str, Any]) -> list[dict[str, Any]]:
    """The partner's business rule, reported the way its translator reports syntax errors."""
    errors = []
    for gi, group in enumerate(parsed.get("groups") or []):
        for ti, tx in enumerate(group.get("transactions") or []):
            if tx.get("set") != "810" or (tx.get("big") or {}).get("po_number"):
                continue
            position = next((n for n, seg in enumerate(tx.get("segments") or [], start=1)
                             if seg and seg[0] == "BIG"), 2)
            errors.append({"level": "element", "group_index": gi, "transaction_index": ti,
                           "set_position": position, "segment_id": "BIG", "element_index": 4,
                           "code": "1", "message": "BIG04 purchase order number is mandatory"})
    return errors
