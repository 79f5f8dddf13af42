"""Shopify webhook signatures.

Shopify sends ``X-Shopify-Hmac-Sha256``: the base64 HMAC-SHA256 of the raw body, keyed with
the app's client secret. Nothing else is signed, so there is no timestamp and no replay
window; deduplicate on ``X-Shopify-Webhook-Id`` downstream if replays matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from connectors.signatures import hmac as generic
from connectors.signatures.base import Scheme

HEADER = "X-Shopify-Hmac-Sha256"

_AS_HMAC = generic.HmacConfig(header=HEADER, algorithm="sha256", encoding="base64")


class ShopifyConfig(BaseModel):
    """Shopify's scheme is fixed; there is nothing to configure beyond the secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def verify(
    config: ShopifyConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
) -> None:
    """Raise SignatureError unless one of ``secrets`` signed this body."""
    generic.verify(_AS_HMAC, body, headers, secrets, now)


def sign(config: ShopifyConfig, body: bytes, secret: str, now: float) -> dict[str, str]:
    """The ``X-Shopify-Hmac-Sha256`` header Shopify would send for ``body``."""
    return generic.sign(_AS_HMAC, body, secret, now)


SCHEME = Scheme(name="shopify", config=ShopifyConfig, verify=verify, sign=sign)
