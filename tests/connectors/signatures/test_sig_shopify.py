"""Tests for Shopify's X-Shopify-Hmac-Sha256 scheme.

Shopify's docs describe the header as the base64 HMAC-SHA256 of the raw request body keyed
with the app's client secret, but publish no fixed vector. This one was derived
independently with OpenSSL 3.0, not with the code under test:

    printf '%s' '{"id":820982911946154508,"email":"jon@example.com"}' \\
      | openssl dgst -sha256 -hmac 'hush' -binary | openssl base64 -A
    -> D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=
"""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from connectors.signatures.base import SignatureError
from connectors.signatures.shopify import SCHEME, ShopifyConfig, sign, verify

SECRET = "hush"
BODY = b'{"id":820982911946154508,"email":"jon@example.com"}'
VECTOR = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
CONFIG = ShopifyConfig()


def reason_of(body: bytes, headers: dict[str, str], secrets: list[str]) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(CONFIG, body, headers, secrets, 0)
    return caught.value.reason


def test_independent_vector_verifies() -> None:
    verify(CONFIG, BODY, {"X-Shopify-Hmac-Sha256": VECTOR}, [SECRET], 0)


def test_header_name_case_does_not_matter() -> None:
    # Frameworks hand headers over lower-cased (ASGI) or title-cased (WSGI environ → dict).
    verify(CONFIG, BODY, {"x-shopify-hmac-sha256": VECTOR}, [SECRET], 0)
    verify(CONFIG, BODY, {"X-Shopify-Hmac-SHA256": VECTOR}, [SECRET], 0)


def test_sign_reproduces_the_vector() -> None:
    assert sign(CONFIG, BODY, SECRET, 0) == {"X-Shopify-Hmac-Sha256": VECTOR}


def test_no_replay_window_so_time_is_irrelevant() -> None:
    verify(CONFIG, BODY, {"X-Shopify-Hmac-Sha256": VECTOR}, [SECRET], 4_000_000_000)


def test_hex_form_of_the_right_digest_is_not_accepted() -> None:
    hex_digest = base64.b64decode(VECTOR).hex()
    reason = reason_of(BODY, {"X-Shopify-Hmac-Sha256": hex_digest}, [SECRET])
    # 64 hex characters are also valid base64 (48 bytes), so this is a plain mismatch.
    assert reason == "signature mismatch"


def test_wrong_secret() -> None:
    assert reason_of(BODY, {"X-Shopify-Hmac-Sha256": VECTOR}, ["hush!"]) == "signature mismatch"


def test_tampered_body() -> None:
    tampered = BODY.replace(b"jon", b"eve")
    assert reason_of(tampered, {"X-Shopify-Hmac-Sha256": VECTOR}, [SECRET]) == "signature mismatch"


def test_missing_header() -> None:
    reason = reason_of(BODY, {"X-Shopify-Topic": "orders/create"}, [SECRET])
    assert reason == "missing header X-Shopify-Hmac-Sha256"


@pytest.mark.parametrize("value", ["not base64!", "D0UMXmhjwBRi4y6", "%%%%"])
def test_malformed_header(value: str) -> None:
    reason = reason_of(BODY, {"X-Shopify-Hmac-Sha256": value}, [SECRET])
    assert reason == "malformed header X-Shopify-Hmac-Sha256 (not base64)"


def test_truncated_digest_is_a_mismatch() -> None:
    short = base64.b64encode(base64.b64decode(VECTOR)[:16]).decode()
    assert reason_of(BODY, {"X-Shopify-Hmac-Sha256": short}, [SECRET]) == "signature mismatch"


def test_rotation_accepts_old_and_new_and_rejects_removed() -> None:
    old, new = "old-client-secret", "new-client-secret"
    by_old, by_new = sign(CONFIG, BODY, old, 0), sign(CONFIG, BODY, new, 0)
    verify(CONFIG, BODY, by_old, [old, new], 0)
    verify(CONFIG, BODY, by_new, [new, old], 0)
    assert reason_of(BODY, by_old, [new]) == "signature mismatch"


def test_reasons_never_contain_the_secret_or_the_computed_signature() -> None:
    tampered = BODY + b" "
    reasons = [
        reason_of(tampered, {"X-Shopify-Hmac-Sha256": VECTOR}, [SECRET]),
        reason_of(BODY, {"X-Shopify-Hmac-Sha256": "AAAA"}, [SECRET]),
        reason_of(BODY, {"X-Shopify-Hmac-Sha256": "!!"}, [SECRET]),
        reason_of(BODY, {}, [SECRET]),
    ]
    computed = [VECTOR, sign(CONFIG, tampered, SECRET, 0)["X-Shopify-Hmac-Sha256"]]
    for reason in reasons:
        assert SECRET not in reason
        for signature in computed:
            assert signature not in reason


def test_config_takes_no_options() -> None:
    with pytest.raises(ValidationError):
        ShopifyConfig.model_validate({"header": "X-Other"})
    assert SCHEME.name == "shopify"
    assert SCHEME.config is ShopifyConfig
    assert SCHEME.verify is verify
    assert SCHEME.sign is sign
