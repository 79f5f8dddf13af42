"""docs/as2.md's examples are real: its connection file and flows load without a problem, and
the endpoint it documents starts and takes a message from the partner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from as2_support import OURS, THEIRS, read_mdn
from cryptography.hazmat.primitives import serialization

from connectors.as2.lib import Message, Organization, Partner
from connectors.as2.wire import http_headers
from engine.loader import Loader
from engine.refs import Secrets
from engine.schemas import SchemaStore
from tests.conftest import ROOT
from tests.engine.test_server_harness import make_app, serving

DOC = ROOT / "docs" / "as2.md"
X12_850 = ("ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*ACMEDIST       *260101*1200*U*"
           "00401*000000101*0*P*>~GS*PO*ACMERETAIL*ACMEDIST*20260101*1200*101*X*004010~"
           "ST*850*0001~BEG*00*SA*PO-1**20260101~PO1*1*3*EA*9.5**VP*SKU-1~CTT*1~SE*5*0001~"
           "GE*1*101~IEA*1*000000101~")


def _blocks() -> dict[str, str]:
    """The YAML examples of the page, by the name they declare."""
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        name = re.match(r"(connection|flow): (\S+)", block)
        assert name, f"a YAML example that declares no connection or flow:\n{block}"
        found[name[2]] = block
    return found


def _lay_out(root: Path, flows: list[str]) -> None:
    blocks = _blocks()
    certs = root / "connections" / "certs"
    certs.mkdir(parents=True)
    (root / "connections" / "acme_as2.yaml").write_text(blocks["acme_as2"], encoding="utf-8")
    (certs / "acme.pem").write_bytes(THEIRS[1])
    (certs / "flowrunner.pem").write_bytes(OURS[1])
    (root / "flows").mkdir()
    for name in flows:
        (root / "flows" / f"{name}.yaml").write_text(blocks[name], encoding="utf-8")


def test_every_example_loads_without_a_problem(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_AS2_URL", "https://as2.acme.example/as2")
    assert set(_blocks()) == {"acme_as2", "acme-orders-in", "acme-997-out"}
    _lay_out(tmp_path, ["acme-orders-in", "acme-997-out"])
    secrets = Secrets(environ={"FLOWRUN_SECRET_AS2_PRIVATE_KEY": OURS[0].decode()})
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=secrets)
    found = loader.load_paths([tmp_path / "flows"])
    assert [str(p) for p in found.problems] == []  # warnings included
    assert set(found.flows) == {"acme-orders-in", "acme-997-out"}


def test_the_documented_endpoint_takes_a_message(tmp_path: Path) -> None:
    _lay_out(tmp_path, ["acme-orders-in"])
    # our key as the page says to make it (PKCS#8 PEM), one line in the secrets file
    key = serialization.load_pem_private_key(OURS[0], None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    secret = "".join(f"{line}\\n" for line in key.splitlines() if line)
    app = make_app(tmp_path, {}, extra_secrets={"AS2_PRIVATE_KEY": secret})
    org = Organization(as2_name="ACME RETAIL", sign_key=THEIRS[0] + THEIRS[1],
                       decrypt_key=THEIRS[0] + THEIRS[1])
    us = Partner(as2_name="ACME DISTRIBUTION", verify_cert=OURS[1], encrypt_cert=OURS[1],
                 sign=True, encrypt=True, enc_alg="aes_256_cbc", mdn_mode="SYNC",
                 mdn_digest_alg="sha256")
    message = Message(org, us)
    message.build(X12_850.encode(), filename="po-1.edi", content_type="application/edi-x12")
    with serving(app) as server:
        response = server.post("/as2/acme", message.content, http_headers(message.headers))
        assert response.status_code == 200, response.text
        assert read_mdn(message, response.headers, response.content) == ("processed", None)
        run = app.wait_for(response.headers["x-run-id"], timeout=60)[0]
    assert run.status == "succeeded", run.error
    assert run.envelope["body"]["po_number"] == "PO-1"
    assert run.envelope["body"]["as2_message_id"] == message.message_id
