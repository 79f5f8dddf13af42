"""End to end over loopback: the partner (pyas2lib) posts an 850 to our AS2 endpoint; the flow
parses it with the x12 step, maps it to a canonical order, and sends the 997 back to the
partner's AS2 server with the as2 step — whose MDN is checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from as2_support import X12, outbound, partner_server, read_mdn, setup
from pytest_httpserver import HTTPServer

from connectors.as2.wire import http_headers
from connectors.x12 import parse
from tests.engine.test_server_harness import make_app, serving

FLOW = """
flow: acme-850-inbound
trigger:
  webhook:
    path: /as2/acme
    as2: {partner: acme_as2}
steps:
  - id: read_edi
    x12: {parse: {}}
    output: vars.edi
  - id: to_order
    transform: |
      $vars.edi.groups[0].transactions[0].{
        "po_number": beg.po_number,
        "order_date": beg.po_date,
        "buyer": {"id": $vars.edi.interchange.sender_id},
        "as2_message_id": $meta.request.as2.message_id,
        "lines": [lines.{"line_number": line_number, "sku": product_ids.VP,
                         "quantity": {"value": qty, "uom": uom}, "unit_price": unit_price}]
      }
    output: vars.order
  - id: make_997
    x12: {ack: {}, value: $vars.edi}
    output: vars.ack
  - id: send_997
    as2: {connection: acme_as2, content: $vars.ack, filename: "997.edi"}
    output: vars.sent
"""


def test_850_over_as2_becomes_an_order_and_its_997_goes_back_over_as2(
        tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AS2_PARTNER_URL", httpserver.url_for("/as2"))
    partner = setup(tmp_path)
    server = partner_server(httpserver, partner)
    app = make_app(tmp_path, {"acme-850-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    with serving(app) as ours:
        response = ours.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 200, response.text
        assert read_mdn(message, response.headers, response.content) == \
            ("processed", None)
        run = app.wait_for(response.headers["x-run-id"], timeout=60)[0]
    assert run.status == "succeeded", run.error
    order = run.envelope["vars"]["order"]
    assert order == {"po_number": "PO-4711", "order_date": "20260101",
                     "buyer": {"id": "ACMERETAIL"}, "as2_message_id": message.message_id,
                     "lines": [{"line_number": "1", "sku": "SKU-1",
                                "quantity": {"value": "3", "uom": "EA"}, "unit_price": "9.5"}]}
    # the partner received the 997 we made, intact, and acknowledged it
    assert server.statuses == ["processed"]
    ack = parse(server.payloads[0].decode())
    assert ack["groups"][0]["functional_id"] == "FA"
    segments = ack["groups"][0]["transactions"][0]["segments"]
    assert ["AK1", "PO", "101"] in segments and ["AK9", "A", "1", "1", "1"] in segments
    assert run.envelope["vars"]["sent"]["mdn"]["status"] == "processed"
