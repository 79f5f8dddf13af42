"""A partner connection made into pyas2lib's objects: our organization (key pair) and the
partner (certificate, what we send them, what we require of them).

Read once per connection — at `flowrun serve` start-up for an endpoint, on first use for the
`as2` step — and every problem named by key and file: a missing certificate, a key that is not
PEM, a key that does not match our certificate, an expired certificate.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from connectors.as2.lib import AS2Exception, ImproperlyConfigured, Organization, Partner
from connectors.http_connection import HttpClient
from engine.connections import As2Connection, HttpConnection, resolve_file
from engine.refs import UnresolvedReference, interpolate
from engine.types import StepError

_DOMAIN = re.compile(r"[^A-Za-z0-9.-]+")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class Materials:
    """Everything pyas2lib needs for one partner connection."""

    name: str
    config: As2Connection
    organization: Organization
    #: the partner as we send to it (sign, encrypt, compress, the MDN we ask for)
    outbound: Partner
    #: the partner as we receive from it (what it must sign and encrypt)
    inbound: Partner
    #: a pooled session with the connection's TLS options (CA bundle, client certificate)
    session: requests.Session

    def matches(self, as2_from: str, as2_to: str) -> bool:
        return as2_from == self.config.as2_id and as2_to == self.config.local.as2_id


def materials(name: str, config: As2Connection, folder: FsPath | None,
              secrets: Callable[[str], str]) -> Materials:
    """The pyas2lib objects of connection *name*; raises ValueError naming the bad key."""
    where = f"connection '{name}'"
    partner_pem = _read(config.certificate, folder, f"{where}: as2.certificate")
    partner_chain = _PEM.findall(partner_pem)
    if not partner_chain:
        raise ValueError(f"{where}: as2.certificate holds no PEM certificate")
    _not_expired(partner_chain[0], f"{where}: as2.certificate")
    local = config.local
    our_cert = _read(local.certificate, folder, f"{where}: as2.local.certificate")
    if not _PEM.search(our_cert):
        raise ValueError(f"{where}: as2.local.certificate holds no PEM certificate")
    _not_expired(_PEM.findall(our_cert)[0], f"{where}: as2.local.certificate")
    try:
        if local.private_key is not None:
            key = interpolate(local.private_key, secrets).replace("\\n", "\n").encode()
        else:
            assert local.private_key_file is not None
            key = _read(local.private_key_file, folder, f"{where}: as2.local.private_key_file",
                        private=True)
        password = interpolate(local.key_password, secrets) if local.key_password else None
        mdn_url = interpolate(local.mdn_url, secrets) \
            if local.mdn_url and config.mdn == "async" else None
    except UnresolvedReference as exc:
        raise ValueError(f"{where}: {exc}") from None
    _key_matches(key, password, _PEM.findall(our_cert)[0], where)
    pair = key + b"\n" + our_cert
    try:
        organization = Organization(
            as2_name=local.as2_id, sign_key=pair, sign_key_pass=password, decrypt_key=pair,
            decrypt_key_pass=password, mdn_url=mdn_url,
            domain=_DOMAIN.sub("-", local.as2_id).strip("-.").lower() or "as2")
        common: dict[str, Any] = {
            "as2_name": config.as2_id, "verify_cert": partner_chain[0],
            "verify_cert_ca": b"\n".join(partner_chain[1:]) or None,
            "encrypt_cert": partner_chain[0],
            "encrypt_cert_ca": b"\n".join(partner_chain[1:]) or None}
        outbound = Partner(
            **common, sign=config.sign is not None, digest_alg=config.sign or "sha256",
            encrypt=config.encrypt is not None, enc_alg=config.encrypt or "aes_256_cbc",
            compress=config.compress,
            mdn_mode={"sync": "SYNC", "async": "ASYNC"}.get(config.mdn),
            mdn_digest_alg=config.mdn_sign)
        inbound = Partner(**common, sign=config.require_signed,
                          encrypt=config.require_encrypted)
    except (AS2Exception, ImproperlyConfigured, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    try:  # the TLS options are an http connection's: read the same way
        http = HttpConnection(base_url=config.url or "https://unused", timeout=config.timeout,
                              tls=config.tls)
        session = HttpClient(name, http, folder).session
    except StepError as exc:
        raise ValueError(exc.message.replace("tls.", "as2.tls.")) from None
    return Materials(name, config, organization, outbound, inbound, session)


def _read(value: str, folder: FsPath | None, what: str, private: bool = False) -> bytes:
    try:
        path = resolve_file(interpolate(value, _no_secret), folder)
    except UnresolvedReference as exc:
        raise ValueError(f"{what}: {exc}") from None
    try:
        if private and stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            raise ValueError(f"{what}: {path} is open to other users; a private key file must "
                             f"be readable by its owner only: chmod 600 {path}")
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path} ({exc.strerror})") from None


def _no_secret(name: str) -> str:
    raise UnresolvedReference("secret", name)  # file names are not secrets (checked at load)


def _not_expired(pem: bytes, what: str) -> None:
    import datetime

    cert = x509.load_pem_x509_certificate(pem)
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        raise ValueError(f"{what}: the certificate expired on "
                         f"{cert.not_valid_after_utc:%Y-%m-%d}; ask for a new one")
    if cert.not_valid_before_utc > now:
        raise ValueError(f"{what}: the certificate is valid only from "
                         f"{cert.not_valid_before_utc:%Y-%m-%d}")


def _key_matches(key: bytes, password: str | None, cert_pem: bytes, where: str) -> None:
    try:
        private = serialization.load_pem_private_key(
            key, password.encode() if password else None)
    except (ValueError, TypeError):
        # the message of cryptography may quote the key: name the key, not its text
        raise ValueError(f"{where}: as2.local: the private key cannot be read (not PEM, or a "
                         "wrong or missing key_password)") from None
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(serialization.Encoding.DER, raw) != \
            public.public_bytes(serialization.Encoding.DER, raw):
        raise ValueError(f"{where}: as2.local: the private key does not belong to "
                         "local.certificate")
