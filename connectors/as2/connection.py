"""The ``as2:`` part of a connection file: a trading partner over AS2 (RFC 4130) — who they
are, their certificate, our key pair, and how messages to them are protected and acknowledged.
Registered as a connection kind (entry point ``flowrunner.connections``: ``as2``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from connectors.http_connection import Timeouts, Tls
from engine.plugin import (
    REF,
    ConnectionContext,
    ConnectionKind,
    Model,
    Path,
    Secret,
    one_of,
    resolve_file,
)

AS2_DIGESTS = Literal["sha1", "sha256", "sha384", "sha512"]
AS2_CIPHERS = Literal["tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc"]


class As2Local(Model):
    """Our side of an AS2 relationship: the id partners address us by, and our key pair."""

    as2_id: str = Field(min_length=1, max_length=128,
                        description="Our AS2 id: AS2-To on what the partner sends us, AS2-From "
                                    "on what we send.")
    certificate: str = Field(description="PEM file of our certificate (the partner has a copy: "
                                         "it verifies our signatures and encrypts to us).")
    private_key: Secret | None = Field(
        None, description="Our private key's PEM text: '${secret:NAME}' (a one-line secret "
                          "may write the line breaks as \\n).")
    private_key_file: str | None = Field(
        None, description="Or a PEM file holding our private key, readable by its owner only.")
    key_password: Secret | None = Field(None, description="Password of an encrypted private "
                                                          "key: '${secret:NAME}'.")
    mdn_url: str | None = Field(
        None, description="URL of our AS2 endpoint (a flow with `webhook: {as2: ...}`) where "
                          "the partner posts asynchronous MDNs; needed for mdn: async.")

    @model_validator(mode="after")
    def _one_key(self) -> As2Local:
        one_of(self, ("private_key", "private_key_file"), "local")
        return self


class As2Connection(Model):
    """A trading partner over AS2 (RFC 4130): who they are, their certificate, our key pair,
    and how messages to them are protected and acknowledged."""

    as2_id: str = Field(min_length=1, max_length=128,
                        description="The partner's AS2 id: AS2-From on what they send us.")
    url: str | None = Field(None, description="The partner's AS2 URL, where the `as2` step "
                                              "posts; may use ${env:...}.")
    certificate: str = Field(description="PEM file of the partner's certificate: verifies "
                                         "their signatures and MDNs, encrypts what we send.")
    local: As2Local = Field(description="Our AS2 id and key pair for this partner.")
    sign: AS2_DIGESTS | None = Field("sha256", description="Sign what we send with this "
                                                           "digest; null sends unsigned.")
    encrypt: AS2_CIPHERS | None = Field("aes_256_cbc", description="Encrypt what we send with "
                                                                   "this cipher; null: plain.")
    compress: bool = Field(False, description="Compress what we send (before signing).")
    mdn: Literal["sync", "async", "none"] = Field(
        "sync", description="The receipt we ask for: in the HTTP response (sync), posted later "
                            "to local.mdn_url (async), or none.")
    mdn_sign: AS2_DIGESTS | None = Field("sha256", description="Ask for a signed MDN with this "
                                                               "digest; null: unsigned.")
    require_signed: bool = Field(True, description="Refuse unsigned messages from the partner.")
    require_encrypted: bool = Field(True, description="Refuse unencrypted messages from the "
                                                      "partner.")
    timeout: Timeouts = Field(default_factory=Timeouts, description="Sending timeouts.")
    tls: Tls = Field(default_factory=Tls, description="Certificates of an https url: CA bundle, "
                                                      "mTLS.")

    @model_validator(mode="after")
    def _async_needs_url(self) -> As2Connection:
        if self.mdn == "async" and self.local.mdn_url is None:
            raise ValueError("mdn: async needs local.mdn_url, the URL the partner posts the "
                             "MDN to")
        return self


def check(config: As2Connection, ctx: ConnectionContext) -> None:
    """Certificate and key files that do not exist: warnings, since the files may be deployed
    only where `flowrun serve` and the workers run (a message then fails by name)."""
    local = config.local
    files: list[tuple[Path, str | None]] = [
        *((("tls", key), getattr(config.tls, key))
          for key in ("ca_bundle", "client_cert", "client_key")),
        (("certificate",), config.certificate),
        (("local", "certificate"), local.certificate),
        (("local", "private_key_file"), local.private_key_file)]
    for where, value in files:
        if value is None:
            continue
        if any(m["kind"] == "secret" for m in REF.finditer(value)):
            ctx.problem(where, "a certificate file name is not a secret; write the path, or "
                               "use ${env:NAME}")
        elif not REF.search(value) and not resolve_file(value, ctx.folder).is_file():
            ctx.problem(where, f"no such file {resolve_file(value, ctx.folder)}; a relative "
                               "name is read from the connections folder", severity="warning")


CONNECTION = ConnectionKind(name="as2", config=As2Connection, check=check,
                            description="An AS2 trading partner: their AS2 id, URL and "
                                        "certificate, our id and key pair, signing, "
                                        "encryption, compression and the MDN asked for.")
