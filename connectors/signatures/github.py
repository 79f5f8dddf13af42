"""GitHub webhook signatures.

GitHub sends ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``. Old
deliveries also carry ``X-Hub-Signature: sha1=<hex>``; that is accepted only when configured,
and only when the SHA-256 header is absent, so that a forger cannot downgrade to SHA-1 by
sending a bad SHA-256 signature alongside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from connectors.signatures import hmac as generic
from connectors.signatures.base import Scheme, header_value

SHA256 = generic.HmacConfig(header="X-Hub-Signature-256", algorithm="sha256", prefix="sha256=")
SHA1 = generic.HmacConfig(header="X-Hub-Signature", algorithm="sha1", prefix="sha1=")


class GitHubConfig(BaseModel):
    """Whether the legacy SHA-1 header is good enough on its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_legacy_sha1: bool = Field(
        default=False,
        description=(
            "Accept X-Hub-Signature (HMAC-SHA1) when X-Hub-Signature-256 is absent; "
            "only for senders that cannot send SHA-256."
        ),
    )


def verify(
    config: GitHubConfig,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: float,
) -> None:
    """Raise SignatureError unless one of ``secrets`` signed this body."""
    legacy_only = (
        config.accept_legacy_sha1
        and header_value(headers, SHA256.header) is None
        and header_value(headers, SHA1.header) is not None
    )
    generic.verify(SHA1 if legacy_only else SHA256, body, headers, secrets, now)


def sign(config: GitHubConfig, body: bytes, secret: str, now: float) -> dict[str, str]:
    """The signature headers GitHub would send (both, when SHA-1 is accepted)."""
    headers = generic.sign(SHA256, body, secret, now)
    if config.accept_legacy_sha1:
        headers.update(generic.sign(SHA1, body, secret, now))
    return headers


SCHEME = Scheme(name="github", config=GitHubConfig, verify=verify, sign=sign)
