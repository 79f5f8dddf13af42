"""Tests for Stripe's Stripe-Signature scheme.

Sources:
- Stripe's docs ("Verify signatures manually") show the header
  ``t=1492774577,v1=5257a869…08d8bd,v0=6ffbb59b…989a39`` and the recipe: split on ``,`` and
  ``=``, keep ``t`` and ``v1``, HMAC-SHA256 of ``<t>.<raw body>`` keyed with the endpoint
  secret, hex. The docs give neither the secret nor the body behind that header, so it is
  used here for the header format only.
- A vector computed by that recipe with OpenSSL 3.0, not with the code under test. The
  secret is ``whsec_test_secret``, the dummy secret of stripe-python's own test suite, and
  is used whole, prefix included, as Stripe's libraries do:
    printf '1492774577.%s' '{"id":"evt_test_webhook","object":"event"}' \\
      | openssl dgst -sha256 -hmac 'whsec_test_secret'
    -> 88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.signatures.base import SignatureError
from connectors.signatures.stripe import SCHEME, StripeConfig, parse_header, sign, verify

DOCS_HEADER = (
    "t=1492774577,"
    "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
)

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_test_webhook","object":"event"}'
T = 1492774577
V1 = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a"
HEADER = f"t={T},v1={V1}"
CONFIG = StripeConfig()


def reason_of(body: bytes, header: str | None, secrets: list[str], now: float = T) -> str:
    headers = {} if header is None else {"Stripe-Signature": header}
    with pytest.raises(SignatureError) as caught:
        verify(CONFIG, body, headers, secrets, now)
    return caught.value.reason


def test_documented_header_format_is_parsed_and_v0_ignored() -> None:
    timestamp, signatures = parse_header(DOCS_HEADER)
    assert timestamp == "1492774577"
    assert signatures == ["5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"]


def test_documented_header_is_well_formed_but_not_ours() -> None:
    # Parsed fine, so the failure is the signature, not the format.
    assert reason_of(BODY, DOCS_HEADER, [SECRET]) == "signature mismatch"


def test_recipe_vector_verifies() -> None:
    verify(CONFIG, BODY, {"Stripe-Signature": HEADER}, [SECRET], T)
    verify(CONFIG, BODY, {"stripe-signature": HEADER}, [SECRET], T + 299)


def test_sign_reproduces_the_recipe_vector() -> None:
    assert sign(CONFIG, BODY, SECRET, T + 0.7) == {"Stripe-Signature": HEADER}


def test_secret_is_used_whole_including_its_prefix() -> None:
    assert reason_of(BODY, HEADER, ["test_secret"]) == "signature mismatch"


def test_spaces_around_items_are_tolerated() -> None:
    verify(CONFIG, BODY, {"Stripe-Signature": f"t={T}, v1={V1}"}, [SECRET], T)


def test_any_of_several_v1_signatures_may_match() -> None:
    header = f"t={T},v1={'0' * 64},v1=garbage,v1={V1},v0={'1' * 64}"
    verify(CONFIG, BODY, {"Stripe-Signature": header}, [SECRET], T)


def test_a_matching_v0_does_not_count() -> None:
    assert reason_of(BODY, f"t={T},v0={V1},v1={'0' * 64}", [SECRET]) == "signature mismatch"


def test_wrong_secret() -> None:
    assert reason_of(BODY, HEADER, ["whsec_other"]) == "signature mismatch"


def test_tampered_body() -> None:
    assert reason_of(BODY.replace(b"event", b"evenT"), HEADER, [SECRET]) == "signature mismatch"


def test_tampered_timestamp_breaks_the_signature() -> None:
    assert reason_of(BODY, f"t={T + 1},v1={V1}", [SECRET]) == "signature mismatch"


def test_missing_header() -> None:
    assert reason_of(BODY, None, [SECRET]) == "missing header Stripe-Signature"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("i'm not even a real signature header", "malformed header Stripe-Signature"),
        (f"v1={V1}", "malformed header Stripe-Signature (no timestamp)"),
        (f"t={T}", "malformed header Stripe-Signature (no v1 signature)"),
        (f"t={T},v0={V1}", "malformed header Stripe-Signature (no v1 signature)"),
        (f"t={T},t={T},v1={V1}", "malformed header Stripe-Signature (repeated timestamp)"),
        (f"t=yesterday,v1={V1}", "malformed header Stripe-Signature (not a Unix timestamp)"),
        (f"t=-{T},v1={V1}", "malformed header Stripe-Signature (not a Unix timestamp)"),
    ],
)
def test_malformed_header(header: str, reason: str) -> None:
    assert reason_of(BODY, header, [SECRET]) == reason


def test_expired_timestamp() -> None:
    reason = reason_of(BODY, HEADER, [SECRET], now=T + 612)
    assert reason == "timestamp outside tolerance (612 s > 300 s)"


def test_future_timestamp() -> None:
    reason = reason_of(BODY, HEADER, [SECRET], now=T - 301)
    assert reason == "timestamp outside tolerance (301 s in the future > 300 s)"


def test_tolerance_edges_and_custom_tolerance() -> None:
    verify(CONFIG, BODY, {"Stripe-Signature": HEADER}, [SECRET], T + 300)
    verify(CONFIG, BODY, {"Stripe-Signature": HEADER}, [SECRET], T - 300)
    strict = StripeConfig(tolerance_seconds=10)
    with pytest.raises(SignatureError):
        verify(strict, BODY, {"Stripe-Signature": HEADER}, [SECRET], T + 11)


def test_rotation_accepts_old_and_new_and_rejects_removed() -> None:
    old, new = "whsec_old", "whsec_new"
    now = 1_700_000_000
    by_old = sign(CONFIG, BODY, old, now)["Stripe-Signature"]
    by_new = sign(CONFIG, BODY, new, now)["Stripe-Signature"]
    # During a rotation Stripe sends one v1 per active secret in a single header.
    both = by_new + "," + by_old.split(",", 1)[1]
    for header in (by_old, by_new, both):
        verify(CONFIG, BODY, {"Stripe-Signature": header}, [old, new], now)
    verify(CONFIG, BODY, {"Stripe-Signature": both}, [new], now)
    assert reason_of(BODY, by_old, [new], now=now) == "signature mismatch"


def test_reasons_never_contain_the_secret_or_the_computed_signature() -> None:
    tampered = BODY + b"\n"
    tampered_v1 = sign(CONFIG, tampered, SECRET, T)["Stripe-Signature"].split("v1=")[1]
    reasons = [
        reason_of(tampered, HEADER, [SECRET]),
        reason_of(BODY, f"t={T},v1={'0' * 64}", [SECRET]),
        reason_of(BODY, HEADER, [SECRET], now=T + 10_000),
        reason_of(BODY, f"t={T},v1=zz", [SECRET]),
        reason_of(BODY, "garbage", [SECRET]),
    ]
    for reason in reasons:
        for forbidden in (SECRET, "test_secret", V1, tampered_v1):
            assert forbidden not in reason


def test_config() -> None:
    assert all(field.description for field in StripeConfig.model_fields.values())
    with pytest.raises(ValidationError):
        StripeConfig.model_validate({"tolerance": 300})
    with pytest.raises(ValidationError):
        StripeConfig(tolerance_seconds=0)
    assert SCHEME.name == "stripe"
    assert SCHEME.config is StripeConfig
    assert SCHEME.verify is verify
    assert SCHEME.sign is sign
