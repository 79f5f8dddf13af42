"""The ``as2`` step against a loopback AS2 server built with pyas2lib: the partner decrypts and
verifies what we send and answers with a sync MDN (checked, MIC included), an async MDN (posted
back to our endpoint later and matched to the run), a negative MDN (the run dead-letters with
the reason), or is down at first (the retry policy sends the same Message-Id again)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest
import trustme
from as2_support import X12, PartnerServer, connection, keypair, partner_server, setup
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.as2.lib import Organization
from connectors.as2.pending import pending
from connectors.as2.wire import http_headers
from engine.app import App
from tests.engine.test_server_harness import make_app, serving

SEND = """
flow: acme-outbound
trigger: {manual: {}}
defaults:
  retry:
    max_attempts: 4
    backoff: {initial: 1s, multiplier: 1, jitter: none}
    retry_on: {http_status: [5xx], errors: [connection, timeout]}
steps:
  - id: send
    as2: {connection: acme_as2, filename: "po-{{ $substring($, 0, 3) }}.edi"}
    output: vars.as2
"""

RECEIVE = """
flow: acme-inbound
trigger:
  webhook:
    path: /as2/acme
    as2: {partner: acme_as2}
steps:
  - id: keep
    set: {kept: "true"}
"""


def _run(app: App, body: str = X12) -> dict:
    accepted = app.accept(app.flows.flows["acme-outbound"], body)
    tree = app.wait_for(accepted.run_id, timeout=60)
    return tree[0].to_dict()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> HTTPServer:
    monkeypatch.setenv("AS2_PARTNER_URL", httpserver.url_for("/as2"))
    monkeypatch.setenv("AS2_MDN_URL", "http://127.0.0.1:9/unused")
    return httpserver


def test_sync_mdn_is_verified_and_the_message_arrives_exact(tmp_path: Path,
                                                            env: HTTPServer) -> None:
    partner = setup(tmp_path)
    server = partner_server(env, partner)
    app = make_app(tmp_path, {"acme-outbound": SEND}, extra_secrets=partner.secrets)
    app.executor.start()
    try:
        run = _run(app)
    finally:
        app.executor.stop()
    assert run["status"] == "succeeded", run["error"]
    assert server.statuses == ["processed"]
    received = server.received[0]
    assert received.signed and received.encrypted  # as the connection says
    assert server.payloads == [X12.encode()]
    assert received.payload.get_filename() == "po-ISA.edi"
    sent = run["envelope"]["vars"]["as2"]
    assert sent["message_id"] == received.message_id == f"{run['run_id']}.send@flowrunner"
    assert sent["mdn"] == {"status": "processed", "detail": None}
    assert sent["mic"] == received.mic.decode()


@pytest.mark.parametrize("fail, mic, reason", [
    (("processed/Error", "decryption-failed"), "computed",
     "the partner's MDN is negative: processed/Error: decryption-failed"),
    (None, "wrong", "the partner's MDN reports a different MIC than ours"),
    (None, "none", "the partner's MDN carries no Received-Content-MIC for a signed message"),
], ids=["negative", "wrong-mic", "no-mic"])
def test_negative_mdn_or_wrong_mic_dead_letters_with_the_reason(
        tmp_path: Path, env: HTTPServer, fail: tuple[str, str] | None, mic: str,
        reason: str) -> None:
    partner = setup(tmp_path)
    server = partner_server(env, partner)
    server.fail, server.mic = fail, mic
    app = make_app(tmp_path, {"acme-outbound": SEND}, extra_secrets=partner.secrets)
    app.executor.start()
    try:
        run = _run(app)
    finally:
        app.executor.stop()
    assert run["status"] == "dead_lettered"
    assert reason in run["error"]["message"]
    assert len(server.received) == 1  # not retried: sending it again would not mend it


def test_mdn_signed_with_another_key_is_no_receipt(tmp_path: Path, env: HTTPServer) -> None:
    partner = setup(tmp_path)
    server = partner_server(env, partner)
    stranger = keypair("someone else")
    partner.partner_org.sign_key = Organization.load_key(stranger[0] + stranger[1], None)
    app = make_app(tmp_path, {"acme-outbound": SEND}, extra_secrets=partner.secrets)
    app.executor.start()
    try:
        run = _run(app)
    finally:
        app.executor.stop()
    assert server.statuses == ["processed"]  # the partner has it, but its receipt proves nothing
    assert run["status"] == "dead_lettered"
    assert "no valid MDN in the partner's answer" in run["error"]["message"]


def test_compressed_sha512_tripledes_over_https_with_the_connections_ca(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    partner = setup(tmp_path, connection(compress="true", sign="sha512",
                                         encrypt="tripledes_192_cbc",
                                         tls="{ca_bundle: certs/partner-ca.pem}"))
    ca.cert_pem.write_to_path(str(tmp_path / "connections" / "certs" / "partner-ca.pem"))
    https = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server = partner_server(https, partner)
    https.start()
    monkeypatch.setenv("AS2_PARTNER_URL", f"https://127.0.0.1:{https.port}/as2")
    app = make_app(tmp_path, {"acme-outbound": SEND}, extra_secrets=partner.secrets)
    app.executor.start()
    try:
        run = _run(app)
    finally:
        app.executor.stop()
        https.stop()
    assert run["status"] == "succeeded", run["error"]
    received = server.received[0]
    assert (received.compressed, received.digest_alg, received.enc_alg) == \
        (True, "sha512", "tripledes_192_cbc")
    assert server.payloads == [X12.encode()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_partner_down_is_retried_with_the_same_message_id(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("AS2_PARTNER_URL", f"http://127.0.0.1:{port}/as2")
    partner = setup(tmp_path)
    app = make_app(tmp_path, {"acme-outbound": SEND}, extra_secrets=partner.secrets)
    app.executor.start()
    down = HTTPServer(host="127.0.0.1", port=port)
    try:
        accepted = app.accept(app.flows.flows["acme-outbound"], X12)
        for _ in range(500):  # the first attempt meets a closed port
            state = app.store.get_run(accepted.run_id)
            if state is not None and state.attempts:
                break
            time.sleep(0.02)
        assert state is not None and "connection refused" in str(state.attempts[0]["error"])
        server = PartnerServer(partner)
        refused = {"left": 1}

        def flaky(request: Request) -> Response:  # up now, but the first message meets a 503
            response = server.handle(request)
            if refused["left"]:
                refused["left"] -= 1
                response.status_code = 503
            return response

        down.expect_request("/as2", method="POST").respond_with_handler(flaky)
        down.start()
        run = app.wait_for(accepted.run_id, timeout=60)[0]
    finally:
        app.executor.stop()
        if down.is_running():
            down.stop()
    assert run.status == "succeeded", run.error
    ids = {m.message_id for m in server.received}
    assert len(server.received) == 2 and ids == {run.envelope["vars"]["as2"]["message_id"]}


def test_async_mdn_is_matched_to_the_run_at_our_endpoint(tmp_path: Path, env: HTTPServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    partner = setup(tmp_path, connection(mdn="async"), mdn_mode="ASYNC")
    server = partner_server(env, partner)
    app = make_app(tmp_path, {"acme-outbound": SEND, "acme-inbound": RECEIVE},
                   extra_secrets=partner.secrets)
    with serving(app) as ours:
        monkeypatch.setenv("AS2_MDN_URL", ours.url + "/as2/acme")
        run = _run(app)
        assert run["status"] == "succeeded", run["error"]
        sent = run["envelope"]["vars"]["as2"]
        assert sent["mdn"] == "pending"
        record = pending(app.services).get(sent["message_id"])
        assert record is not None and record["run_id"] == run["run_id"] and "mdn" not in record
        # the partner asked where to send it: our endpoint
        assert server.received[0].headers["receipt-delivery-option"] == ours.url + "/as2/acme"
        mdn = server.async_mdns[0]
        response = ours.post("/as2/acme", mdn.content, http_headers(mdn.headers))
        assert response.status_code == 200, response.text
        settled = pending(app.services).get(sent["message_id"])
        assert settled is not None and settled["mdn"]["status"] == "processed"
        assert app.store.get_run(run["run_id"]).status == "succeeded"  # type: ignore[union-attr]


def test_negative_async_mdn_dead_letters_the_run_that_sent(tmp_path: Path, env: HTTPServer,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    partner = setup(tmp_path, connection(mdn="async"), mdn_mode="ASYNC")
    server: PartnerServer = partner_server(env, partner)
    server.fail = ("processed/Error", "unexpected-processing-error")
    app = make_app(tmp_path, {"acme-outbound": SEND, "acme-inbound": RECEIVE},
                   extra_secrets=partner.secrets)
    with serving(app) as ours:
        monkeypatch.setenv("AS2_MDN_URL", ours.url + "/as2/acme")
        run = _run(app)
        mdn = server.async_mdns[0]
        response = ours.post("/as2/acme", mdn.content, http_headers(mdn.headers))
        assert response.status_code == 200, response.text
        state = app.store.get_run(run["run_id"])
        assert state is not None and state.status == "dead_lettered"
        assert "is negative: processed/Error: unexpected-processing-error" in \
            state.error["message"]  # type: ignore[index]
        # an MDN for a message nobody sent is refused, and changes nothing
        stranger = ours.post("/as2/acme", mdn.content.replace(
            run["run_id"].encode(), b"0" * len(run["run_id"])), http_headers(mdn.headers))
        assert stranger.status_code == 404


def test_async_mdn_the_partner_posts_before_answering_is_matched(
        tmp_path: Path, env: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    partner = setup(tmp_path, connection(mdn="async"), mdn_mode="ASYNC")
    server = partner_server(env, partner)
    server.deliver_now = True  # the receipt reaches us while our post still waits
    app = make_app(tmp_path, {"acme-outbound": SEND, "acme-inbound": RECEIVE},
                   extra_secrets=partner.secrets)
    with serving(app) as ours:
        monkeypatch.setenv("AS2_MDN_URL", ours.url + "/as2/acme")
        run = _run(app)
        assert run["status"] == "succeeded", run["error"]
        assert server.delivered == [200]
        settled = pending(app.services).get(run["envelope"]["vars"]["as2"]["message_id"])
        assert settled is not None and settled["mdn"]["status"] == "processed"
        assert ours.counter("as2_mdn_processed") == 1
