"""Stripe webhook signatures.

Stripe sends ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=<hex>]``. Each ``v1`` is
the hex HMAC-SHA256 of ``<t>.<raw body>`` keyed with the endpoint's signing secret, used as
is (``whsec_…`` included). Several ``v1`` values appear while Stripe rotates a secret; any
one matching passes. ``v0`` is a fake signature Stripe adds to test-mode events and is never
checked. ``t`` is refused outside the tolerance window, in either direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from connectors.signatures.base import (
    Scheme,
    SignatureError,
    check_tolerance,
    decode_digest,
    hmac_digest,
    matches_any,
    parse_timestamp,
    require_header,
    usable_secrets,
)

HEADER = "Stripe-Signature"


class StripeConfig(BaseModel):
    """The replay window; everything else about the scheme is fixed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance_seconds: int = Field(
        default=300,
        gt=0,
        description="How far t= may be from now, either way, before a replay is assumed.",
    )


def parse_header(value: str) -> tuple[str, list[str]]:
    """Split the header into the timestamp text and the ``v1`` signatures."""
    timestamp: str | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, text = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed header {HEADER}")
        if key == "t":
            if timestamp is not None:
                raise SignatureError(f"malformed header {HEADER} (repeated timestamp)")
            timestamp = text
        elif key == "v1":
            signatures.append(text.strip())
        # Any other scheme (v0 today) is skipped, so that a new one Stripe adds later does
        # not break verification of the v1 signatures next to it.
    if timestamp is None:
        raise SignatureError(f"malformed header {HEADER} (no timestamp)")
    if not signatures:
        raise SignatureError(f"malformed header {HEADER} (no v1 signature)")
    return timestamp, signatures


def _digest(secret: str, timestamp: str, body: bytes) -> bytes:
    return hmac_digest(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, "sha256")


def verify(
    config: StripeConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
) -> None:
    """Raise SignatureError unless one of ``secrets`` signed this request recently enough."""
    keys = usable_secrets(secrets)
    timestamp_text, signatures = parse_header(require_header(headers, HEADER))
    timestamp = parse_timestamp(timestamp_text, HEADER)
    timestamp_text = timestamp_text.strip()
    # An undecodable v1 is just one that cannot match; another v1 in the header still may.
    received = [raw for raw in (decode_digest(s, "hex") for s in signatures) if raw]
    expected = [_digest(key, timestamp_text, body) for key in keys]
    if not matches_any(expected, received):
        raise SignatureError("signature mismatch")
    check_tolerance(timestamp, now, config.tolerance_seconds)


def sign(config: StripeConfig, body: bytes, secret: str, now: float) -> dict[str, str]:
    """The ``Stripe-Signature`` header Stripe would send for ``body`` at time ``now``."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    timestamp = str(int(now))
    return {HEADER: f"t={timestamp},v1={_digest(secret, timestamp, body).hex()}"}


SCHEME = Scheme(name="stripe", config=StripeConfig, verify=verify, sign=sign)
