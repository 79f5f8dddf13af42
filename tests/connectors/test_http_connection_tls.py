"""TLS options of a named connection against real HTTPS servers on loopback.

trustme mints a CA and a server certificate (and, for mTLS, a second CA with a client
certificate) when the tests run; the servers are http.server behind Python's ssl module. The
certificates are written into the project's ``connections/certs/`` folder and named relative
to it, as an analyst would.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.connectors.connections_support import Project, one_call, project


@dataclass
class Certs:
    server_ca: trustme.CA
    server: trustme.LeafCert
    client_ca: trustme.CA
    client: trustme.LeafCert


@pytest.fixture(scope="module")
def certs() -> Certs:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    return Certs(server_ca, server_ca.issue_cert("127.0.0.1", "localhost"), client_ca,
                 client_ca.issue_cert("flowrunner-client"))


class Hello(BaseHTTPRequestHandler):
    """Answers with the names in the client's certificate (none without mTLS)."""

    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        names = [value for _, value in peer.get("subjectAltName", ())] if peer else []
        body = json.dumps({"client": names}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def https_server(certs: Certs, *, client_cert_required: bool) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certs.server.configure_cert(context)
    if client_cert_required:
        context.verify_mode = ssl.CERT_REQUIRED
        certs.client_ca.configure_trust(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.daemon_threads = True
    # the handshake runs in accept(); one that fails is dropped there and the server goes on
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls_server(certs: Certs) -> Iterator[str]:
    yield from https_server(certs, client_cert_required=False)


@pytest.fixture
def mtls_server(certs: Certs) -> Iterator[str]:
    yield from https_server(certs, client_cert_required=True)


@pytest.fixture
def erp(tmp_path: Path, certs: Certs) -> Iterator[Project]:
    with project(tmp_path) as made:
        folder = made.connections / "certs"
        folder.mkdir()
        certs.server_ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        certs.client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
        certs.client.private_key_pem.write_to_path(str(folder / "client.key"))
        # a key that does not belong to client.pem
        certs.client_ca.issue_cert("someone-else").private_key_pem.write_to_path(
            str(folder / "other.key"))
        made.flow(one_call("{connection: erp, method: GET, path: /hello}"))
        yield made


def connect(erp: Project, base_url: str, tls: str = "") -> Any:
    erp.connection("erp", f"connection: erp\nhttp:\n  base_url: {base_url}\n"
                          + (f"  tls: {tls}\n" if tls else ""))
    return erp.run(erp.app())


def test_ca_bundle_trusts_the_server(erp: Project, tls_server: str) -> None:
    state = connect(erp, tls_server, "{ca_bundle: certs/ca.pem}")
    assert state.status == "succeeded", state.error
    assert state.envelope["vars"]["resp"]["body"] == {"client": []}


def test_without_the_ca_the_call_fails_with_a_clear_tls_error(erp: Project,
                                                              tls_server: str) -> None:
    state = connect(erp, tls_server)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls"
    assert state.error["message"].endswith(
        f"GET {tls_server}/hello: TLS: the server's certificate is not trusted (unable to get "
        "local issuer certificate); trust its CA with tls.ca_bundle on a named connection")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_accepts_any_certificate(erp: Project, tls_server: str) -> None:
    assert connect(erp, tls_server, "{verify: false}").status == "succeeded"


def test_mtls_server_refuses_a_call_without_a_client_certificate(erp: Project,
                                                                  mtls_server: str) -> None:
    state = connect(erp, mtls_server, "{ca_bundle: certs/ca.pem}")
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls"
    assert "TLS handshake failed: the server ended it; a server that requires a client " \
           "certificate does so" in state.error["message"]


def test_mtls_server_accepts_the_client_certificate(erp: Project, mtls_server: str) -> None:
    state = connect(erp, mtls_server, "{ca_bundle: certs/ca.pem, client_cert: certs/client.pem, "
                                      "client_key: certs/client.key}")
    assert state.status == "succeeded", state.error
    assert state.envelope["vars"]["resp"]["body"] == {"client": ["flowrunner-client"]}


def test_a_client_key_of_another_certificate_is_a_clear_tls_error(erp: Project,
                                                                  mtls_server: str) -> None:
    state = connect(erp, mtls_server, "{ca_bundle: certs/ca.pem, client_cert: certs/client.pem, "
                                      "client_key: certs/other.key}")
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "tls"
    assert state.error["message"].endswith(
        "TLS: the client certificate or its key cannot be used (not PEM, or they differ)")


def test_a_certificate_file_missing_at_run_time_fails_the_step_by_name(
        erp: Project, tls_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTS", str(erp.root / "nowhere"))
    state = connect(erp, tls_server, '{ca_bundle: "${env:CERTS}/ca.pem"}')
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "config"
    assert state.error["message"].endswith(
        f"connection 'erp': tls.ca_bundle: no such file {erp.root}/nowhere/ca.pem")
