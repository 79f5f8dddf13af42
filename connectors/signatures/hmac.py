"""Generic HMAC webhook signatures, for platforms without a dedicated scheme.

Covers the common shape: one header holding an HMAC of the raw body (or of a template such
as ``{timestamp}.{body}``), hex or base64, optionally after a prefix like ``sha256=``. When
the signed payload includes a timestamp header, requests outside the tolerance window are
refused as replays. The Shopify and GitHub schemes are fixed configurations of this one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.signatures.base import (
    Algorithm,
    Encoding,
    Scheme,
    SignatureError,
    check_tolerance,
    decode_digest,
    encode_digest,
    hmac_digest,
    matches_any,
    parse_timestamp,
    require_header,
    usable_secrets,
)

_PLACEHOLDER = re.compile(r"(\{timestamp\}|\{body\})")


class HmacConfig(BaseModel):
    """Where the signature is, how it is computed and how it is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str = Field(
        min_length=1, description="Header carrying the signature, e.g. X-Signature."
    )
    algorithm: Algorithm = Field(
        default="sha256", description="Hash function of the HMAC: sha1, sha256 or sha512."
    )
    encoding: Encoding = Field(
        default="hex", description="How the digest is written in the header: hex or base64."
    )
    prefix: str = Field(
        default="",
        description="Text the header value starts with before the digest, e.g. 'sha256='.",
    )
    payload_template: str | None = Field(
        default=None,
        description=(
            "What is signed, built from '{timestamp}' and '{body}' (the raw body), "
            "e.g. '{timestamp}.{body}'. Unset: the raw body alone."
        ),
    )
    timestamp_header: str | None = Field(
        default=None,
        min_length=1,
        description="Header carrying Unix seconds; required when the template has '{timestamp}'.",
    )
    tolerance_seconds: int = Field(
        default=300,
        gt=0,
        description="Seconds the timestamp may differ from now, either way, before it is a replay.",
    )

    @model_validator(mode="after")
    def _template_matches_timestamp(self) -> Self:
        template = self.payload_template
        if template is None:
            if self.timestamp_header is not None:
                # A timestamp outside the signed payload can be rewritten by anyone, so it
                # would only look like replay protection.
                raise ValueError("timestamp_header needs a payload_template that signs {timestamp}")
            return self
        leftover = _PLACEHOLDER.sub("", template)
        if "{" in leftover or "}" in leftover:
            raise ValueError(
                "payload_template may only use the placeholders {timestamp} and {body}"
            )
        if template.count("{body}") != 1:
            raise ValueError("payload_template must contain {body} exactly once")
        signs_timestamp = "{timestamp}" in template
        if signs_timestamp and self.timestamp_header is None:
            raise ValueError("payload_template uses {timestamp} but timestamp_header is not set")
        if not signs_timestamp and self.timestamp_header is not None:
            raise ValueError(
                "timestamp_header is set but payload_template does not sign {timestamp}"
            )
        return self


def signed_payload(config: HmacConfig, body: bytes, timestamp: str | None) -> bytes:
    """The bytes the HMAC covers. The body is spliced in as bytes, never decoded as text."""
    if config.payload_template is None:
        return body
    parts: list[bytes] = []
    for piece in _PLACEHOLDER.split(config.payload_template):
        if piece == "{body}":
            parts.append(body)
        elif piece == "{timestamp}":
            parts.append((timestamp or "").encode("ascii"))
        else:
            parts.append(piece.encode("utf-8"))
    return b"".join(parts)


def verify(
    config: HmacConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
) -> None:
    """Raise SignatureError unless one of ``secrets`` signed this request."""
    keys = usable_secrets(secrets)
    value = require_header(headers, config.header)
    if not value.startswith(config.prefix):
        raise SignatureError(f"malformed header {config.header} (missing prefix)")
    received = decode_digest(value[len(config.prefix) :].strip(), config.encoding)
    if not received:
        raise SignatureError(f"malformed header {config.header} (not {config.encoding})")

    timestamp_text: str | None = None
    timestamp: int | None = None
    if config.timestamp_header is not None:
        timestamp_text = require_header(headers, config.timestamp_header)
        timestamp = parse_timestamp(timestamp_text, config.timestamp_header)

    # The header text is signed as sent (not re-rendered from the int), because the sender
    # signed exactly those characters.
    payload = signed_payload(config, body, timestamp_text)
    expected = [hmac_digest(key.encode("utf-8"), payload, config.algorithm) for key in keys]
    if not matches_any(expected, [received]):
        raise SignatureError("signature mismatch")
    # Checked after the signature so that only authentic-but-stale requests are told about
    # the clock; everything unauthenticated gets the same "signature mismatch".
    if timestamp is not None:
        check_tolerance(timestamp, now, config.tolerance_seconds)


def sign(config: HmacConfig, body: bytes, secret: str, now: float) -> dict[str, str]:
    """Headers that make ``body`` verify under ``secret`` at time ``now``."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    headers: dict[str, str] = {}
    timestamp: str | None = None
    if config.timestamp_header is not None:
        timestamp = str(int(now))
        headers[config.timestamp_header] = timestamp
    digest = hmac_digest(
        secret.encode("utf-8"), signed_payload(config, body, timestamp), config.algorithm
    )
    headers[config.header] = config.prefix + encode_digest(digest, config.encoding)
    return headers


SCHEME = Scheme(name="hmac", config=HmacConfig, verify=verify, sign=sign)
