"""A local stand-in for the partners' systems, on loopback: everything the shipped HTTP flows call.

Used by `flowrun demo`, the shipped flows' end-to-end tests and `flowrun sandbox`. It behaves
like the real thing where flows care: it honours Idempotency-Key (a repeated key returns the
first answer and creates nothing), the EU ERP answers its first sales orders with 503, the US
ERP answers 429 with Retry-After once, and the ERPs reject discontinued SKUs with 422. Besides
the ERPs (sales orders, purchase order confirmations, invoices and their EDI status) it serves
the WMS, the sales channels, the CRM, a supplier portal with paginated PO acknowledgments and a
trading partner's EDI endpoint that answers an 810 with a 997 (see `engine.sandbox_partners`).
Every request is recorded and can be read back at ``GET /_sandbox/requests``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.x12 import MemoryControlNumbers
from engine import sandbox_partners as partners
from engine.sandbox_partners import PORTAL_TOKEN, Answer, Request


@dataclass
class SandboxState:
    eu_failures: int = 2
    us_rate_limits: int = 1
    #: "sync": the partner answers an 810 with its 997; "async": with 202, the 997 waits in outbox
    edi_ack_mode: str = "sync"
    portal_page_size: int = 2
    po_acks: list[dict[str, Any]] = field(default_factory=partners.seed_po_acks)
    requests: list[dict[str, Any]] = field(default_factory=list)
    effects: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    #: what the ERPs now hold: purchase order updates, EDI transmissions, invoice EDI status
    purchase_orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    transmissions: list[dict[str, Any]] = field(default_factory=list)
    invoice_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: 997s an async partner has still to send
    outbox: list[str] = field(default_factory=list)
    edi_numbers: MemoryControlNumbers = field(default_factory=partners.partner_numbers)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count = field(default_factory=lambda: itertools.count(100001))

    def next_id(self) -> int:
        return next(self.ids)


Handler = Callable[[SandboxState, Request, re.Match[str]], Answer]


def _sales_order(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    count = state.counters[req.path]
    if m["region"] == "eu" and count <= state.eu_failures:
        return Answer(503, {"error": "ERP EU is restarting, try again"})
    if m["region"] == "us" and count <= state.us_rate_limits:
        return Answer(429, {"error": "rate limit"}, {"Retry-After": "1"})
    body = req.body if isinstance(req.body, dict) else {}
    bad = [line.get("sku") for line in body.get("lines", [])
           if str(line.get("sku", "")).startswith("DISCONTINUED")]
    if bad:
        return Answer(422, {"error": "unknown article", "skus": bad})
    return Answer(201, {"erp_order_id": f"SO-{state.next_id()}", "order_id": body.get("order_id")})


def _po_update(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    po, kind = m["po"], m["kind"]
    known = {ack["po"] for ack in state.po_acks}
    if po not in known:
        return Answer(404, {"error": f"no purchase order {po}"})
    status = "confirmed" if kind == "confirmations" else "rejected"
    state.purchase_orders.setdefault(po, []).append({"status": status, "update": req.body})
    return Answer(200, {"po_number": po, "status": status})


def _record_transmission(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    record = {**(req.body if isinstance(req.body, dict) else {}), "invoice_number": m["invoice"]}
    state.transmissions.append(record)
    return Answer(201, {"recorded": True, "invoice_number": m["invoice"]})


def _find_transmission(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    partner, group = req.query.get("partner"), req.query.get("group", "")
    for record in reversed(state.transmissions):
        if record.get("partner") == partner and _same_number(
                record.get("group_control_number"), group):
            return Answer(200, record)
    return Answer(404, {"error": f"no transmission to {partner} with group {group}"})


def _same_number(a: Any, b: Any) -> bool:
    return str(a).lstrip("0") == str(b).lstrip("0")


def _invoice_status(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    if not any(t["invoice_number"] == m["invoice"] for t in state.transmissions):
        return Answer(404, {"error": f"invoice {m['invoice']} was never sent by EDI"})
    state.invoice_status[m["invoice"]] = req.body if isinstance(req.body, dict) else {}
    return Answer(200, {"invoice": m["invoice"], "edi_status": state.invoice_status[
        m["invoice"]].get("status")})


def _accepted(state: SandboxState, req: Request, m: re.Match[str]) -> Answer:
    return Answer(202, {"accepted": True, "id": f"EV-{state.next_id()}"})


_ERP = r"/erp/(?P<region>eu|us)"
#: (method, path pattern, handler); the first match answers
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(f"{_ERP}/sales-orders"), _sales_order),
    ("POST", re.compile(f"{_ERP}/purchase-orders/(?P<po>[^/]+)/"
                        "(?P<kind>confirmations|rejections)"), _po_update),
    ("POST", re.compile(f"{_ERP}/invoices/(?P<invoice>[^/]+)/edi-transmissions"),
     _record_transmission),
    ("GET", re.compile(f"{_ERP}/edi-transmissions"), _find_transmission),
    ("POST", re.compile(f"{_ERP}/invoices/(?P<invoice>[^/]+)/edi-status"), _invoice_status),
    ("POST", re.compile(r"/(?:erp/(?:eu|us)|wms|channel|crm)/.+"), _accepted),
    ("GET", re.compile(r"/supplier/po-acks"), partners.po_acks),
    ("POST", re.compile(r"/partner/edi/inbound"), partners.edi_inbound),
]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, answer: Answer) -> None:
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        data = text.encode()
        kind = answer.content_type or ("text/plain" if isinstance(answer.body, str)
                                       else "application/json")
        self.send_response(answer.status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.startswith("/_sandbox/requests"):
            with state.lock:
                self._send(Answer(200, list(state.requests)))
        elif self.path.startswith("/healthz"):
            self._send(Answer(200, {"ok": True}))
        else:
            self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _read(self, method: str) -> Request | None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        body: Any = raw.decode("utf-8", "replace") if raw else None
        if raw and (kind == "application/json" or kind.endswith("+json")):
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(Answer(400, {"error": "body is not JSON"}))
                return None
        url = urlsplit(self.path)
        return Request(method, url.path, dict(parse_qsl(url.query)), body, kind,
                       {k.lower(): v for k, v in self.headers.items()}, self.server.url)

    def _handle(self, method: str) -> None:
        state = self.server.state
        req = self._read(method)
        if req is None:
            return
        key = req.headers.get("idempotency-key")
        with state.lock:
            record = req.record()
            state.requests.append(record)
            state.counters[req.path] = state.counters.get(req.path, 0) + 1
            if key and key in state.effects:
                answer = state.effects[key]  # an effect already applied: same answer
            else:
                answer = self._route(state, req)
                if answer.status < 300 and key:
                    state.effects[key] = answer
            record["status"] = answer.status  # what the flow was told, for the demo's story
        self._send(answer)

    @staticmethod
    def _route(state: SandboxState, req: Request) -> Answer:
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(req.path)
            if method == req.method and match:
                return handler(state, req, match)
        return Answer(404, {"error": f"no sandbox endpoint {req.method} {req.path}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SandboxState):
        super().__init__(address, _Handler)
        self.state = state

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class Sandbox:
    """The sandbox server, running in a background thread."""

    def __init__(self, port: int = 0, state: SandboxState | None = None):
        self.state = state or SandboxState()
        self._server = _Server(("127.0.0.1", port), self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="flowrun-sandbox")

    @property
    def url(self) -> str:
        return self._server.url

    def env(self) -> dict[str, str]:
        """Environment variables (and the portal's secret) the shipped flows use to reach it."""
        return {"ERP_EU_URL": f"{self.url}/erp/eu", "ERP_US_URL": f"{self.url}/erp/us",
                "WMS_URL": f"{self.url}/wms", "CRM_URL": f"{self.url}/crm",
                "CHANNEL_URL": f"{self.url}/channel",
                "SUPPLIER_PORTAL_URL": f"{self.url}/supplier",
                "PARTNER_EDI_URL": f"{self.url}/partner/edi",
                "FLOWRUN_SECRET_SUPPLIER_PORTAL_TOKEN": PORTAL_TOKEN}

    def requests(self, path_prefix: str = "", method: str | None = None) -> list[dict[str, Any]]:
        """The recorded requests under a path prefix (and of a method), oldest first."""
        with self.state.lock:
            return [r for r in self.state.requests if r["path"].startswith(path_prefix)
                    and (method is None or r["method"] == method)]

    def __enter__(self) -> Sandbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
