"""The AS2 endpoint over real loopback HTTP, with pyas2lib playing the partner: signed and
encrypted messages recorded byte for byte and answered with a signed MDN (sync) or one posted
to the partner's URL (async); tampered, unsigned or stranger's messages refused, nothing
recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from as2_support import (
    OUR_ID,
    PARTNER_ID,
    THEIRS,
    X12,
    connection,
    outbound,
    read_mdn,
    setup,
)
from pytest_httpserver import HTTPServer

from connectors.as2.wire import http_headers
from tests.engine.test_server_harness import make_app, serving

FLOW = """
flow: acme-inbound
trigger:
  webhook:
    path: /as2/acme
    as2: {partner: acme_as2}
steps:
  - id: keep
    set: {kept: "true"}
"""


def test_signed_encrypted_message_is_recorded_and_answered_with_a_signed_mdn(
        tmp_path: Path) -> None:
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("multipart/signed")
        assert read_mdn(message, response.headers, response.content) == \
            ("processed", None)
        run_id = response.headers["x-run-id"]
        state = app.store.get_run(run_id)
        assert state is not None
        assert state.envelope["body"].encode() == X12.encode()  # the interchange, bytes exact
        as2 = state.envelope["meta"]["request"]["as2"]
        assert as2["message_id"] == message.message_id
        assert (as2["from"], as2["to"], as2["filename"]) == (PARTNER_ID, OUR_ID, "po-4711.edi")
        assert as2["signed"] and as2["encrypted"] and as2["mic"] == message.mic.decode()
        # the partner did not get our MDN and sends the message again: the same run, and the
        # positive MDN again
        again = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert again.status_code == 200
        assert again.headers["x-run-id"] == run_id
        assert read_mdn(message, again.headers, again.content) == ("processed", None)
        assert server.runs() == 1
        assert server.counter("duplicate") == 1


def test_compressed_message_is_decompressed_and_recorded_exact(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    partner.us.compress, partner.us.digest_alg = True, "sha384"
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    payload = X12.replace("\r\n", "").encode()  # segments on one line, as many partners send
    message = outbound(partner, payload)
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert read_mdn(message, response.headers, response.content) == ("processed", None)
        state = app.store.get_run(response.headers["x-run-id"])
        assert state is not None and state.envelope["body"].encode() == payload
        as2 = state.envelope["meta"]["request"]["as2"]
        assert as2["compressed"] and as2["digest"] == "sha384"


def test_async_mdn_is_posted_to_the_partner_after_recording(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    partner = setup(tmp_path, mdn_mode="ASYNC")
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    httpserver.expect_request("/partner/mdn", method="POST").respond_with_data("thanks")
    message = outbound(partner, X12.encode(), mdn_url=httpserver.url_for("/partner/mdn"))
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 200, response.text
        assert "the MDN follows" in response.text
        assert server.runs() == 1  # recorded before the MDN goes out
        for _ in range(500):
            if httpserver.log:
                break
            time.sleep(0.02)
        assert len(httpserver.log) == 1, "the asynchronous MDN never arrived"
        request = httpserver.log[0][0]
        assert read_mdn(message, request.headers, request.get_data()) == \
            ("processed", None)


def _flip(content: bytes, at: float) -> bytes:
    i = int(len(content) * at)
    return content[:i] + bytes([content[i] ^ 0x55]) + content[i + 1:]


def test_tampered_encrypted_message_gets_a_negative_mdn_and_no_run(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", _flip(message.content, 0.6),
                               http_headers(message.headers))
        assert response.status_code == 200  # the MDN itself is the answer
        status, detail = read_mdn(message, response.headers, response.content)
        assert status == "processed/Error" and detail == "unexpected-processing-error"
        assert server.runs() == 0
        assert server.counter("as2_refused") == 1


def test_message_encrypted_for_another_key_is_undecryptable(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    partner.us.encrypt_cert = THEIRS[1]  # the partner took the wrong certificate
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        status, detail = read_mdn(message, response.headers, response.content)
        assert (status, detail) == ("processed/Error", "decryption-failed")
        assert server.runs() == 0


def test_altered_signed_payload_fails_authentication(tmp_path: Path) -> None:
    partner = setup(tmp_path, connection(require_encrypted="false"))
    partner.us.encrypt = False  # signed only: the payload travels in the clear
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    altered = message.content.replace(b"PO-4711", b"PO-4712")
    assert altered != message.content
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", altered, http_headers(message.headers))
        status, detail = read_mdn(message, response.headers, response.content)
        assert (status, detail) == ("processed/Error", "authentication-failed")
        assert server.runs() == 0


def test_unsigned_message_is_refused_when_signatures_are_required(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    partner.us.sign = False
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        status, detail = read_mdn(message, response.headers, response.content)
        assert (status, detail) == ("processed/Error", "insufficient-message-security")
        assert server.runs() == 0


@pytest.mark.parametrize("header, value", [("AS2-From", "EVIL CORP"), ("AS2-To", "SOMEONE")])
def test_unknown_partner_gets_403_with_the_reason(tmp_path: Path, header: str,
                                                  value: str) -> None:
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    headers = http_headers(message.headers)
    headers[header] = f'"{value}"'
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, headers)
        assert response.status_code == 403
        assert response.text.startswith("unknown trading partner: this endpoint takes "
                                        f"messages from '{PARTNER_ID}' to '{OUR_ID}'")
        assert value in response.text
        assert server.runs() == 0


def test_a_message_without_message_id_is_a_400(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode())
    headers = {k: v for k, v in http_headers(message.headers).items()
               if k.lower() != "message-id"}
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, headers)
        assert response.status_code == 400
        assert "the Message-ID header is required" in response.text
        assert server.runs() == 0


def test_a_message_without_as2_headers_is_a_400(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", X12, {"Content-Type": "application/edi-x12"})
        assert response.status_code == 400
        assert "AS2-From and AS2-To headers are required" in response.text
        assert server.runs() == 0


def test_no_async_mdn_goes_where_an_unverified_message_asks(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    partner = setup(tmp_path, mdn_mode="ASYNC")
    partner.us.encrypt_cert = THEIRS[1]  # undecryptable for us
    app = make_app(tmp_path, {"acme-inbound": FLOW}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode(), mdn_url=httpserver.url_for("/anywhere"))
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 400
        assert response.text.startswith("AS2 message refused: processed/Error: "
                                        "decryption-failed")
        assert "no asynchronous MDN is sent for a message that cannot be verified" in \
            response.text
        assert server.runs() == 0
    assert httpserver.log == []


def test_a_message_over_max_body_is_a_413_and_not_read(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    flow = FLOW.replace("    as2: {partner: acme_as2}", "    as2: {partner: acme_as2}\n"
                        "    max_body: 1000")
    app = make_app(tmp_path, {"acme-inbound": flow}, extra_secrets=partner.secrets)
    message = outbound(partner, X12.encode() * 3)
    with serving(app, executor=False) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 413
        assert response.text == "body larger than 1000 bytes\n"
        assert server.runs() == 0
        assert server.counter("too_large") == 1
