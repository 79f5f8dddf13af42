"""The trading partner of the AS2 tests, played with pyas2lib itself: key pairs made at test
time, a connection file for flowrunner's side, the partner's own Organization and Partner
objects, and a loopback AS2 server that answers what flowrunner sends."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.as2.lib import Mdn, Message, Organization, Partner
from connectors.as2.wire import http_headers, raw_message

OUR_ID, PARTNER_ID = "FLOWRUNNER", "ACME RETAIL"
X12 = ("ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*FLOWRUNNER     *260101*1200*U*"
       "00401*000000101*0*P*>~\r\nGS*PO*ACMERETAIL*FLOWRUNNER*20260101*1200*101*X*004010~\r\n"
       "ST*850*0001~\r\nBEG*00*SA*PO-4711**20260101~\r\nPO1*1*3*EA*9.5**VP*SKU-1~\r\n"
       "CTT*1~\r\nSE*5*0001~\r\nGE*1*101~\r\nIEA*1*000000101~\r\n")


def keypair(name: str, *, days: int = 30) -> tuple[bytes, bytes]:
    """A 2048-bit RSA key and a self-signed certificate for it, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


OURS = keypair("flowrunner test")
THEIRS = keypair("acme retail test")


@dataclass
class Setup:
    """Flowrunner's side on disk (connections folder, secret) and the partner's objects."""

    root: Path
    secrets: dict[str, str]
    partner_org: Organization
    #: flowrunner as the partner sees it (what the partner sends us and requires of us)
    us: Partner


def connection(url: str = "${env:AS2_PARTNER_URL}", **options: str) -> str:
    settings = "".join(f"  {k}: {v}\n" for k, v in options.items())
    return (f"connection: acme_as2\nas2:\n  as2_id: {PARTNER_ID}\n  url: {url}\n"
            f"  certificate: certs/acme.pem\n{settings}  local:\n    as2_id: {OUR_ID}\n"
            "    certificate: certs/ours.pem\n    private_key: ${secret:AS2_KEY}\n"
            "    mdn_url: ${env:AS2_MDN_URL}\n")


def setup(root: Path, conn: str | None = None, *, mdn_mode: str | None = "SYNC",
          mdn_sign: str | None = "sha256") -> Setup:
    folder = root / "connections"
    (folder / "certs").mkdir(parents=True, exist_ok=True)
    (folder / "certs" / "acme.pem").write_bytes(THEIRS[1])
    (folder / "certs" / "ours.pem").write_bytes(OURS[1])
    (folder / "acme_as2.yaml").write_text(conn or connection(), encoding="utf-8")
    # the key on one line, its line breaks written \n, as the secrets file holds it
    secrets = {"AS2_KEY": OURS[0].decode().strip().replace("\n", "\\n")}
    org = Organization(as2_name=PARTNER_ID, sign_key=THEIRS[0] + THEIRS[1],
                       decrypt_key=THEIRS[0] + THEIRS[1], mdn_url=None)
    us = Partner(as2_name=OUR_ID, verify_cert=OURS[1], encrypt_cert=OURS[1], sign=True,
                 encrypt=True, enc_alg="aes_256_cbc", mdn_mode=mdn_mode,
                 mdn_digest_alg=mdn_sign)
    return Setup(root, secrets, org, us)


def outbound(setup: Setup, payload: bytes, *, filename: str = "po-4711.edi",
             mdn_url: str | None = None) -> Message:
    """A message the partner sends us, built by pyas2lib."""
    setup.partner_org.mdn_url = mdn_url
    message = Message(setup.partner_org, setup.us)
    message.build(payload, filename=filename, content_type="application/edi-x12")
    return message


def read_mdn(message: Message, headers: Any, body: bytes) -> tuple[str, str]:
    """The partner's reading of an MDN flowrunner returned: (status, detail)."""
    status, detail = Mdn().parse(raw_message(headers.items(), body),
                                 find_message_cb=lambda mid, rcpt: message
                                 if mid == message.message_id else None)
    return status, detail


# -- the partner's AS2 server ------------------------------------------------------------------
@dataclass
class PartnerServer:
    """A loopback AS2 server built with pyas2lib: parses what flowrunner sends (decrypts,
    verifies) and answers with the MDN it asked for, or with *fail* when set."""

    setup: Setup
    received: list[Message] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    async_mdns: list[Mdn] = field(default_factory=list)
    #: answer every message with this negative disposition (status, detail)
    fail: tuple[str, str] | None = None
    #: the MIC the MDN reports: the one computed, another one, or none
    mic: str = "computed"
    #: post an asynchronous MDN at once, before answering the message's own request
    deliver_now: bool = False
    delivered: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: Request) -> Response:
        raw = raw_message(request.headers.items(), request.get_data())
        message = Message()
        status, _error, mdn = message.parse(
            raw, find_org_partner_cb=lambda org, who: (
                (self.setup.partner_org, self.setup.us)
                if (org, who) == (PARTNER_ID, OUR_ID) else (None, None)))
        with self.lock:
            self.received.append(message)
            self.statuses.append(status)
            if status == "processed":
                self.payloads.append(message.content)
        if mdn is None:
            return Response("no MDN asked for", status=200)
        if self.fail is not None or self.mic != "computed":
            if self.mic != "computed":
                message.mic = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" \
                    if self.mic == "wrong" else None
            mdn.build(message=message, status=self.fail[0] if self.fail else "processed",
                      detailed_status=self.fail[1] if self.fail else None)
        if mdn.mdn_mode == "ASYNC":
            with self.lock:
                self.async_mdns.append(mdn)
            if self.deliver_now:
                with requests.Session() as http:
                    http.trust_env = False
                    answer = http.post(mdn.mdn_url, data=mdn.content,
                                       headers=http_headers(mdn.headers), timeout=30)
                self.delivered.append(answer.status_code)
            return Response("MDN follows", status=200)
        return Response(mdn.content, status=200, headers=http_headers(mdn.headers))


def partner_server(httpserver: HTTPServer, setup: Setup) -> PartnerServer:
    server = PartnerServer(setup)
    httpserver.expect_request("/as2", method="POST").respond_with_handler(server.handle)
    return server


Handler = Callable[[Request], Response]
