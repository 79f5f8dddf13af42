"""Tests for the Standard Webhooks scheme (webhook-id / webhook-timestamp / webhook-signature).

The published vector comes from the Standard Webhooks reference libraries' test suites
(github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py and
libraries/javascript/src/webhook.test.ts, "sign function works"):

    secret    whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    id        msg_p5jXN8AQM9LWM0D4loKWxJek
    timestamp 1614265330
    payload   {"test": 2432232314}
    signature v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=

The same suites' multi-signature header and near-miss signature are reused below. The
vector was also reproduced with OpenSSL 3.0 (key = base64-decoded secret):

    KEY=$(printf MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256)
    printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' \\
      | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY -binary | openssl base64 -A
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.signatures.base import SignatureError
from connectors.signatures.standard_webhooks import (
    SCHEME,
    StandardWebhooksConfig,
    sign,
    verify,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
T = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
CONFIG = StandardWebhooksConfig()


def vector_headers(**overrides: str) -> dict[str, str]:
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(T), "webhook-signature": SIGNATURE}
    headers.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return headers


def reason_of(
    body: bytes,
    headers: dict[str, str],
    secrets: list[str],
    now: float = T,
    config: StandardWebhooksConfig = CONFIG,
) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(config, body, headers, secrets, now)
    return caught.value.reason


def test_published_vector_verifies() -> None:
    verify(CONFIG, BODY, vector_headers(), [SECRET], T)


def test_sign_reproduces_the_published_vector() -> None:
    assert sign(CONFIG, BODY, SECRET, T, msg_id=MSG_ID) == vector_headers()


def test_secret_without_prefix_is_accepted_like_the_reference_libraries() -> None:
    verify(CONFIG, BODY, vector_headers(), [SECRET.removeprefix("whsec_")], T)


def test_header_names_are_case_insensitive() -> None:
    headers = {key.title(): value for key, value in vector_headers().items()}
    assert "Webhook-Signature" in headers
    verify(CONFIG, BODY, headers, [SECRET], T)


def test_reference_multi_signature_header() -> None:
    decoy = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"v1,{decoy} v2,{decoy} {SIGNATURE} v1,{decoy}"
    verify(CONFIG, BODY, vector_headers(webhook_signature=header), [SECRET], T)


def test_asymmetric_and_unknown_versions_are_skipped() -> None:
    header = f"v1a,{SIGNATURE[3:]} {SIGNATURE}"
    verify(CONFIG, BODY, vector_headers(webhook_signature=header), [SECRET], T)
    only_other = vector_headers(webhook_signature=f"v1a,{SIGNATURE[3:]}")
    reason = reason_of(BODY, only_other, [SECRET])
    assert reason == "malformed header webhook-signature (no v1 signature)"


@pytest.mark.parametrize(
    "signature",
    [
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",  # the reference suites' near miss
        "v1,dawfeoifkpqwoekfpqoekf",
        SIGNATURE[:8],
        "v1,",
    ],
)
def test_invalid_signatures(signature: str) -> None:
    headers = vector_headers(webhook_signature=signature)
    assert reason_of(BODY, headers, [SECRET]) == "signature mismatch"


def test_wrong_secret() -> None:
    other = "whsec_" + "A" * 32
    assert reason_of(BODY, vector_headers(), [other]) == "signature mismatch"


def test_tampered_body() -> None:
    assert reason_of(b'{"test": 2432232315}', vector_headers(), [SECRET]) == "signature mismatch"


def test_id_and_timestamp_are_signed() -> None:
    assert reason_of(BODY, vector_headers(webhook_id="msg_other"), [SECRET]) == "signature mismatch"
    shifted = vector_headers(webhook_timestamp=str(T + 1))
    assert reason_of(BODY, shifted, [SECRET]) == "signature mismatch"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(missing: str) -> None:
    headers = vector_headers()
    del headers[missing]
    assert reason_of(BODY, headers, [SECRET]) == f"missing header {missing}"


@pytest.mark.parametrize("timestamp", ["hello", "1614265330.5", "-1614265330"])
def test_malformed_timestamp(timestamp: str) -> None:
    headers = vector_headers(webhook_timestamp=timestamp)
    reason = reason_of(BODY, headers, [SECRET])
    assert reason == "malformed header webhook-timestamp (not a Unix timestamp)"


@pytest.mark.parametrize("header", ["g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "v2,abc"])
def test_signature_header_without_v1(header: str) -> None:
    reason = reason_of(BODY, vector_headers(webhook_signature=header), [SECRET])
    assert reason == "malformed header webhook-signature (no v1 signature)"


def test_expired_timestamp() -> None:
    reason = reason_of(BODY, vector_headers(), [SECRET], now=T + 301)
    assert reason == "timestamp outside tolerance (301 s > 300 s)"


def test_future_timestamp() -> None:
    reason = reason_of(BODY, vector_headers(), [SECRET], now=T - 301)
    assert reason == "timestamp outside tolerance (301 s in the future > 300 s)"


def test_tolerance_edges_and_custom_tolerance() -> None:
    verify(CONFIG, BODY, vector_headers(), [SECRET], T + 300)
    verify(CONFIG, BODY, vector_headers(), [SECRET], T - 300)
    strict = StandardWebhooksConfig(tolerance_seconds=5)
    assert "outside tolerance" in reason_of(BODY, vector_headers(), [SECRET], T + 6, strict)


def test_svix_header_prefix() -> None:
    svix = StandardWebhooksConfig(header_prefix="svix-")
    headers = {key.replace("webhook-", "svix-"): value for key, value in vector_headers().items()}
    verify(svix, BODY, headers, [SECRET], T)
    assert sign(svix, BODY, SECRET, T, msg_id=MSG_ID) == headers
    assert reason_of(BODY, vector_headers(), [SECRET], config=svix) == "missing header svix-id"


def test_rotation_accepts_old_and_new_and_rejects_removed() -> None:
    old, new = SECRET, "whsec_" + "c2Vjb25kLXNlY3JldC1rZXktMzItYnl0ZXMhIQ=="
    by_old = sign(CONFIG, BODY, old, T, msg_id=MSG_ID)
    by_new = sign(CONFIG, BODY, new, T, msg_id=MSG_ID)
    for headers in (by_old, by_new):
        verify(CONFIG, BODY, headers, [old, new], T)
    # A sender mid-rotation lists both signatures in one header.
    both = dict(by_new, **{"webhook-signature": f"{by_new['webhook-signature']} {SIGNATURE}"})
    verify(CONFIG, BODY, both, [new], T)
    assert reason_of(BODY, by_old, [new]) == "signature mismatch"


def test_undecodable_secret_fails_closed_without_echoing_it() -> None:
    bad = "whsec_not*base64*at*all"
    reason = reason_of(BODY, vector_headers(), [bad])
    assert reason == "configured secret is not whsec_ followed by base64"
    assert "not*base64" not in reason
    with pytest.raises(ValueError):
        sign(CONFIG, BODY, bad, T)


def test_sign_generates_distinct_ids_by_default() -> None:
    first = sign(CONFIG, BODY, SECRET, T)
    second = sign(CONFIG, BODY, SECRET, T)
    assert first["webhook-id"].startswith("msg_")
    assert first["webhook-id"] != second["webhook-id"]
    verify(CONFIG, BODY, first, [SECRET], T)


def test_reasons_never_contain_the_secret_or_the_computed_signature() -> None:
    tampered = BODY + b" "
    tampered_signature = sign(CONFIG, tampered, SECRET, T, msg_id=MSG_ID)["webhook-signature"]
    reasons = [
        reason_of(tampered, vector_headers(), [SECRET]),
        reason_of(BODY, vector_headers(webhook_signature="v1,AAAA"), [SECRET]),
        reason_of(BODY, vector_headers(), [SECRET], now=T + 10_000),
        reason_of(BODY, vector_headers(webhook_signature="nope"), [SECRET]),
    ]
    forbidden = [SECRET, SECRET.removeprefix("whsec_"), SIGNATURE[3:], tampered_signature[3:]]
    for reason in reasons:
        for value in forbidden:
            assert value not in reason


def test_config() -> None:
    fields = StandardWebhooksConfig.model_fields.values()
    assert all(field.description for field in fields)
    with pytest.raises(ValidationError):
        StandardWebhooksConfig.model_validate({"secret": SECRET})
    with pytest.raises(ValidationError):
        StandardWebhooksConfig.model_validate({"header_prefix": "x-"})
    assert SCHEME.name == "standard_webhooks"
    assert SCHEME.config is StandardWebhooksConfig
    assert SCHEME.verify is verify
    assert SCHEME.sign is sign
