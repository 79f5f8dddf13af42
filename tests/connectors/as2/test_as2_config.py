"""Mistakes in AS2 connections and flows, reported when they are loaded or served — with the
file, line and column — never at the first message; and no key text in any of them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from as2_support import OURS, connection, keypair, setup

from engine.loader import Loader
from engine.refs import Secrets
from engine.schemas import SchemaStore
from engine.server import ServerConfigError, create_app
from tests.conftest import ROOT
from tests.engine.test_server_harness import make_app

RECEIVE = """flow: f
trigger:
  webhook:
    path: /as2/acme
    as2: {partner: PARTNER}
steps:
  - id: keep
    set: {kept: "true"}
"""

SEND = """flow: f
steps:
  - id: send
    as2: STEP
"""


def problems(root: Path, flow: str, conn: str | None = None) -> list[str]:
    setup(root, conn)
    (root / "flows").mkdir(exist_ok=True)
    (root / "flows" / "f.yaml").write_text(flow, encoding="utf-8")
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))
    found = loader.load_paths([root / "flows"])
    return [f"{Path(p.file).name}:{p.line}:{p.column} {p.message}" for p in found.problems
            if p.severity == "error"]


@pytest.mark.parametrize("flow, expected", [
    (RECEIVE.replace("PARTNER", "acme_as3"),
     "f.yaml:5:20 no connection 'acme_as3' in"),
    (RECEIVE.replace("as2: {partner: PARTNER}", "as2: {partner: acme_as2}\n"
                     "    signature: {scheme: hmac, secret: '${secret:X}'}"),
     "f.yaml:3:3 an as2: endpoint checks its own signatures, is deduplicated on the AS2 "
     "Message-Id and answers with an MDN: remove signature"),
    (RECEIVE.replace("{partner: PARTNER}", "{partner: acme_as2, encodin: latin-1}"),
     "f.yaml:5:30 unknown key 'encodin'; did you mean 'encoding'?"),
    (SEND.replace("STEP", "{connection: acme_as2, filname: x.edi}"),
     "f.yaml:4:33 unknown key 'filname'; did you mean 'filename'?"),
    (SEND.replace("STEP", "{connection: nobody}"), "f.yaml:4:23 no connection 'nobody'"),
], ids=["unknown-partner", "with-signature", "trigger-typo", "step-typo", "step-connection"])
def test_flow_mistakes(tmp_path: Path, flow: str, expected: str) -> None:
    found = problems(tmp_path, flow)
    assert any(p.startswith(expected) for p in found), found


def test_an_http_connection_is_no_partner(tmp_path: Path) -> None:
    (tmp_path / "connections").mkdir()
    (tmp_path / "connections" / "erp.yaml").write_text(
        "connection: erp\nhttp: {base_url: 'http://127.0.0.1:9'}\n", encoding="utf-8")
    found = problems(tmp_path, RECEIVE.replace("PARTNER", "erp"))
    assert any("connection 'erp' is an http connection; this needs as2" in p for p in found)


@pytest.mark.parametrize("conn, expected", [
    (connection(mdn="async").replace("    mdn_url: ${env:AS2_MDN_URL}\n", ""),
     "acme_as2.yaml:2:1 mdn: async needs local.mdn_url"),
    (connection().replace("${secret:AS2_KEY}", "'-----BEGIN RSA PRIVATE KEY-----'"),
     "acme_as2.yaml:9:18 a credential is written out in the file"),
    (connection().replace("private_key: ${secret:AS2_KEY}",
                          "private_key: ${env:AS2_KEY}"),
     "acme_as2.yaml:9:18 a credential must come from the secrets store"),
    (connection() + "    private_key_file: certs/ours.key\n",
     "acme_as2.yaml:6:3 local needs exactly one of private_key, private_key_file; found "
     "private_key and private_key_file"),
    (connection(encrypt="des"),
     "acme_as2.yaml:6:12 'des' is not allowed; expected 'tripledes_192_cbc'"),
], ids=["async-without-url", "key-written-out", "key-from-env", "two-keys", "bad-cipher"])
def test_connection_mistakes(tmp_path: Path, conn: str, expected: str) -> None:
    found = problems(tmp_path, RECEIVE.replace("PARTNER", "acme_as2"), conn)
    assert any(p.startswith(expected) for p in found), found


def _serve_problems(tmp_path: Path, secrets: dict[str, str]) -> str:
    app = make_app(tmp_path, {"f": RECEIVE.replace("PARTNER", "acme_as2")},
                   extra_secrets=secrets)
    try:
        with pytest.raises(ServerConfigError) as raised:
            create_app(app)
    finally:
        app.store.close()
    return str(raised.value)


def test_a_key_that_is_not_ours_stops_the_server_start(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    other = keypair("not ours")[0].decode().strip().replace("\n", "\\n")
    text = _serve_problems(tmp_path, {**partner.secrets, "AS2_KEY": other})
    assert ("f.yaml:5:20 trigger.webhook.as2.partner: connection 'acme_as2': as2.local: the "
            "private key does not belong to local.certificate") in text
    assert "PRIVATE KEY" not in text and other[40:80] not in text


def test_an_expired_partner_certificate_stops_the_server_start(tmp_path: Path) -> None:
    partner = setup(tmp_path)
    (tmp_path / "connections" / "certs" / "acme.pem").write_bytes(
        keypair("old acme", days=-1)[1])
    text = _serve_problems(tmp_path, partner.secrets)
    assert "connection 'acme_as2': as2.certificate: the certificate expired on" in text


def test_a_private_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    conn = connection().replace("private_key: ${secret:AS2_KEY}",
                                "private_key_file: certs/ours.key")
    partner = setup(tmp_path, conn)
    key = tmp_path / "connections" / "certs" / "ours.key"
    key.write_bytes(OURS[0])
    key.chmod(0o644)
    text = _serve_problems(tmp_path, partner.secrets)
    assert "is open to other users; a private key file must be readable by its owner only" \
        in text
    key.chmod(0o600)  # and then it serves
    app = make_app(tmp_path, {"f": RECEIVE.replace("PARTNER", "acme_as2")})
    try:
        assert create_app(app).state.hooks[0].options.name == "acme_as2"
    finally:
        app.store.close()


def test_without_pyas2lib_the_server_names_the_extra(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    partner = setup(tmp_path)
    for name in [n for n in sys.modules if n.startswith(("connectors.as2", "pyas2lib"))]:
        monkeypatch.delitem(sys.modules, name)
    # as if neither it nor its dependencies were installed
    monkeypatch.setitem(sys.modules, "pyas2lib", None)
    monkeypatch.setitem(sys.modules, "oscrypto", None)
    text = _serve_problems(tmp_path, partner.secrets)
    assert ("f.yaml:5:20 trigger.webhook.as2.partner: AS2 needs pyas2lib: install "
            "flowrunner[as2]") in text
