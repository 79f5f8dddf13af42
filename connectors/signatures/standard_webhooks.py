"""Standard Webhooks signatures (https://www.standardwebhooks.com, also what Svix sends).

Three headers: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``,
a space-separated list of ``v1,<base64>``. Each ``v1`` is the base64 HMAC-SHA256 of
``<id>.<timestamp>.<raw body>``; the key is the base64-decoded part of a ``whsec_<base64>``
secret. Any matching ``v1`` passes; other versions (``v1a`` asymmetric signatures, future
ones) are skipped. The timestamp is refused outside the tolerance window in either direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from secrets import token_urlsafe
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.signatures.base import (
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

SECRET_PREFIX = "whsec_"


class StandardWebhooksConfig(BaseModel):
    """The replay window and which header spelling the sender uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance_seconds: int = Field(
        default=300,
        gt=0,
        description="Seconds the timestamp may differ from now, either way, before it is a replay.",
    )
    header_prefix: Literal["webhook-", "svix-"] = Field(
        default="webhook-",
        description="Prefix of the id/timestamp/signature headers: 'webhook-', or 'svix-' (Svix).",
    )


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``whsec_<base64>`` (the prefix is optional, as in the reference
    libraries). A secret that does not decode fails closed rather than being skipped."""
    key = decode_digest(secret.removeprefix(SECRET_PREFIX), "base64")
    if not key:
        raise SignatureError("configured secret is not whsec_ followed by base64")
    return key


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """Raw HMAC-SHA256 over ``<id>.<timestamp>.<body>``."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    return hmac_digest(key, prefix + body, "sha256")


def _v1_signatures(value: str, header: str) -> list[bytes]:
    found: list[bytes] = []
    saw_v1 = False
    for entry in value.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        saw_v1 = True
        # An undecodable entry cannot match, but another entry still may.
        raw = decode_digest(encoded, "base64")
        if raw:
            found.append(raw)
    if not saw_v1:
        raise SignatureError(f"malformed header {header} (no v1 signature)")
    return found


def verify(
    config: StandardWebhooksConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
) -> None:
    """Raise SignatureError unless one of ``secrets`` signed this request recently enough."""
    keys = [decode_secret(secret) for secret in usable_secrets(secrets)]
    prefix = config.header_prefix
    msg_id = require_header(headers, f"{prefix}id")
    timestamp_text = require_header(headers, f"{prefix}timestamp")
    timestamp = parse_timestamp(timestamp_text, f"{prefix}timestamp")
    signature_header = f"{prefix}signature"
    received = _v1_signatures(require_header(headers, signature_header), signature_header)
    expected = [signature(key, msg_id, timestamp_text, body) for key in keys]
    if not matches_any(expected, received):
        raise SignatureError("signature mismatch")
    check_tolerance(timestamp, now, config.tolerance_seconds)


def sign(
    config: StandardWebhooksConfig,
    body: bytes,
    secret: str,
    now: float,
    *,
    msg_id: str | None = None,
) -> dict[str, str]:
    """The three headers a sender would add; ``msg_id`` defaults to a fresh random id."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    key = decode_digest(secret.removeprefix(SECRET_PREFIX), "base64")
    if not key:
        raise ValueError("secret is not whsec_ followed by base64")
    msg_id = msg_id or f"msg_{token_urlsafe(18)}"
    timestamp = str(int(now))
    digest = encode_digest(signature(key, msg_id, timestamp, body), "base64")
    prefix = config.header_prefix
    return {
        f"{prefix}id": msg_id,
        f"{prefix}timestamp": timestamp,
        f"{prefix}signature": f"v1,{digest}",
    }


SCHEME = Scheme(name="standard_webhooks", config=StandardWebhooksConfig, verify=verify, sign=sign)
