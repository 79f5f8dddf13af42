"""Tests for the generic HMAC scheme.

Vectors:
- RFC 4231 test case 2 (HMAC-SHA-256 / HMAC-SHA-512) and RFC 2202 test case 2 (HMAC-SHA-1):
  key "Jefe", data "what do ya want for nothing?".
- GitHub's published webhook vector (docs.github.com, "Validating webhook deliveries").
- A timestamped vector derived independently with OpenSSL 3.0:
    printf '%s' '1700000000.{"event":"ping"}' | openssl dgst -sha256 -hmac 'generic-secret'
    -> e9240a816e76fdffb9f92f6e8b006cda80c1ace2904a0a87bc040b878ab1e790
"""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from connectors.signatures.base import SignatureError
from connectors.signatures.hmac import SCHEME, HmacConfig, sign, signed_payload, verify

RFC_KEY = "Jefe"
RFC_DATA = b"what do ya want for nothing?"
RFC4231_SHA256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
RFC4231_SHA512 = (
    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
)
RFC2202_SHA1 = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"

TIMESTAMPED = HmacConfig(
    header="X-Signature",
    payload_template="{timestamp}.{body}",
    timestamp_header="X-Timestamp",
)
TS_SECRET = "generic-secret"
TS_BODY = b'{"event":"ping"}'
TS_VECTOR = "e9240a816e76fdffb9f92f6e8b006cda80c1ace2904a0a87bc040b878ab1e790"

PLAIN = HmacConfig(header="X-Signature")


def ts_headers(signature: str = TS_VECTOR, timestamp: str = "1700000000") -> dict[str, str]:
    return {"X-Signature": signature, "X-Timestamp": timestamp}


def reason_of(config: HmacConfig, body: bytes, headers: dict[str, str], secrets: list[str]) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(config, body, headers, secrets, 1700000000)
    return caught.value.reason


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("sha1", RFC2202_SHA1), ("sha256", RFC4231_SHA256), ("sha512", RFC4231_SHA512)],
)
def test_rfc_vectors_hex(algorithm: str, expected: str) -> None:
    config = HmacConfig(header="X-Sig", algorithm=algorithm)  # type: ignore[arg-type]
    assert sign(config, RFC_DATA, RFC_KEY, 0) == {"X-Sig": expected}
    verify(config, RFC_DATA, {"x-sig": expected}, [RFC_KEY], 0)
    # Hex is compared as bytes, so a sender writing upper case is accepted too.
    verify(config, RFC_DATA, {"x-sig": expected.upper()}, [RFC_KEY], 0)


def test_rfc_vector_base64() -> None:
    config = HmacConfig(header="X-Sig", encoding="base64")
    expected = base64.b64encode(bytes.fromhex(RFC4231_SHA256)).decode()
    assert expected == "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="
    assert sign(config, RFC_DATA, RFC_KEY, 0) == {"X-Sig": expected}
    verify(config, RFC_DATA, {"X-Sig": expected}, [RFC_KEY], 0)


def test_github_vector_through_prefix() -> None:
    config = HmacConfig(header="X-Hub-Signature-256", prefix="sha256=")
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify(
        config, b"Hello, World!", {"X-Hub-Signature-256": header}, ["It's a Secret to Everybody"], 0
    )
    assert sign(config, b"Hello, World!", "It's a Secret to Everybody", 0) == {
        "X-Hub-Signature-256": header
    }


def test_timestamped_vector() -> None:
    verify(TIMESTAMPED, TS_BODY, ts_headers(), [TS_SECRET], 1700000000)
    assert sign(TIMESTAMPED, TS_BODY, TS_SECRET, 1700000000.9) == ts_headers()


def test_signed_payload_splices_bytes_and_ignores_placeholders_inside_the_body() -> None:
    body = b"\xff\xfe {timestamp} {body}"
    assert signed_payload(TIMESTAMPED, body, "17") == b"17." + body
    assert signed_payload(PLAIN, body, None) == body


def test_non_utf8_body_round_trips() -> None:
    body = b"\x00\xff\xfe\x80"
    verify(TIMESTAMPED, body, sign(TIMESTAMPED, body, TS_SECRET, 50), [TS_SECRET], 50)


def test_wrong_secret() -> None:
    assert reason_of(TIMESTAMPED, TS_BODY, ts_headers(), ["other"]) == "signature mismatch"


def test_tampered_body() -> None:
    tampered = b'{"event":"pong"}'
    assert reason_of(TIMESTAMPED, tampered, ts_headers(), [TS_SECRET]) == "signature mismatch"


def test_tampered_timestamp_breaks_the_signature() -> None:
    headers = ts_headers(timestamp="1700000001")
    assert reason_of(TIMESTAMPED, TS_BODY, headers, [TS_SECRET]) == "signature mismatch"


def test_missing_signature_header() -> None:
    headers = {"X-Timestamp": "1700000000"}
    assert reason_of(TIMESTAMPED, TS_BODY, headers, [TS_SECRET]) == "missing header X-Signature"


def test_missing_timestamp_header() -> None:
    headers = {"X-Signature": TS_VECTOR}
    assert reason_of(TIMESTAMPED, TS_BODY, headers, [TS_SECRET]) == "missing header X-Timestamp"


@pytest.mark.parametrize("timestamp", ["soon", "-1700000000", "1700000000.0"])
def test_malformed_timestamp(timestamp: str) -> None:
    reason = reason_of(TIMESTAMPED, TS_BODY, ts_headers(timestamp=timestamp), [TS_SECRET])
    assert reason == "malformed header X-Timestamp (not a Unix timestamp)"


@pytest.mark.parametrize("value", ["zz", "abc", TS_VECTOR[:-1], "0x" + TS_VECTOR])
def test_malformed_hex(value: str) -> None:
    reason = reason_of(TIMESTAMPED, TS_BODY, ts_headers(signature=value), [TS_SECRET])
    assert reason == "malformed header X-Signature (not hex)"


def test_malformed_base64() -> None:
    config = HmacConfig(header="X-Sig", encoding="base64")
    reason = reason_of(config, b"x", {"X-Sig": "***"}, ["s"])
    assert reason == "malformed header X-Sig (not base64)"


def test_missing_prefix() -> None:
    config = HmacConfig(header="X-Sig", prefix="sha256=")
    reason = reason_of(config, RFC_DATA, {"X-Sig": RFC4231_SHA256}, [RFC_KEY])
    assert reason == "malformed header X-Sig (missing prefix)"


def test_truncated_signature_is_a_mismatch() -> None:
    config = HmacConfig(header="X-Sig")
    reason = reason_of(config, RFC_DATA, {"X-Sig": RFC4231_SHA256[:-2]}, [RFC_KEY])
    assert reason == "signature mismatch"


def test_expired_timestamp() -> None:
    with pytest.raises(SignatureError) as caught:
        verify(TIMESTAMPED, TS_BODY, ts_headers(), [TS_SECRET], 1700000000 + 612)
    assert caught.value.reason == "timestamp outside tolerance (612 s > 300 s)"


def test_future_timestamp() -> None:
    with pytest.raises(SignatureError) as caught:
        verify(TIMESTAMPED, TS_BODY, ts_headers(), [TS_SECRET], 1700000000 - 301)
    assert caught.value.reason == "timestamp outside tolerance (301 s in the future > 300 s)"


def test_tolerance_edges_and_custom_tolerance() -> None:
    verify(TIMESTAMPED, TS_BODY, ts_headers(), [TS_SECRET], 1700000000 + 300)
    verify(TIMESTAMPED, TS_BODY, ts_headers(), [TS_SECRET], 1700000000 - 300)
    strict = TIMESTAMPED.model_copy(update={"tolerance_seconds": 10})
    with pytest.raises(SignatureError):
        verify(strict, TS_BODY, ts_headers(), [TS_SECRET], 1700000000 + 11)


def test_unauthentic_stale_request_is_told_only_about_the_signature() -> None:
    # Stale and forged: the clock window is only reported for authentic requests.
    with pytest.raises(SignatureError) as caught:
        verify(TIMESTAMPED, TS_BODY, ts_headers(), ["other"], 1700000000 + 10_000)
    assert caught.value.reason == "signature mismatch"


def test_rotation_accepts_old_and_new_and_rejects_removed() -> None:
    old, new = "old-secret", "new-secret"
    by_old = sign(PLAIN, b"body", old, 0)
    by_new = sign(PLAIN, b"body", new, 0)
    verify(PLAIN, b"body", by_old, [old, new], 0)
    verify(PLAIN, b"body", by_new, [old, new], 0)
    verify(PLAIN, b"body", by_new, [new], 0)
    with pytest.raises(SignatureError) as caught:
        verify(PLAIN, b"body", by_old, [new], 0)
    assert caught.value.reason == "signature mismatch"


def test_no_secret_configured() -> None:
    assert reason_of(PLAIN, b"x", {"X-Signature": "00"}, [""]) == "no secret configured"


def test_sign_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError):
        sign(PLAIN, b"x", "", 0)


def test_reasons_never_contain_the_secret_or_the_computed_signature() -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    body = b"payload"
    expected = sign(TIMESTAMPED, body, secret, 1700000000)["X-Signature"]
    attempts = [
        (b"tampered", ts_headers(signature=expected)),
        (body, ts_headers(signature="0" * 64)),
        (body, ts_headers(signature="nothex")),
        (body, {"X-Signature": expected}),
    ]
    reasons = [reason_of(TIMESTAMPED, b, h, [secret]) for b, h in attempts]
    with pytest.raises(SignatureError) as stale:
        verify(TIMESTAMPED, body, ts_headers(signature=expected), [secret], 1800000000)
    reasons.append(stale.value.reason)
    tampered_expected = sign(TIMESTAMPED, b"tampered", secret, 1700000000)["X-Signature"]
    for reason in reasons:
        assert secret not in reason
        assert expected not in reason
        assert tampered_expected not in reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"header": "X-Sig", "unknown": 1},
        {"header": ""},
        {"header": "X-Sig", "algorithm": "md5"},
        {"header": "X-Sig", "encoding": "base32"},
        {"header": "X-Sig", "payload_template": "{timestamp}"},
        {"header": "X-Sig", "payload_template": "{body}{body}"},
        {"header": "X-Sig", "payload_template": "{id}.{body}"},
        {"header": "X-Sig", "payload_template": "{timestamp}.{body}"},
        {"header": "X-Sig", "timestamp_header": "X-Ts"},
        {"header": "X-Sig", "payload_template": "v0:{body}", "timestamp_header": "X-Ts"},
        {
            "header": "X-Sig",
            "payload_template": "{timestamp}.{body}",
            "timestamp_header": "X-Ts",
            "tolerance_seconds": 0,
        },
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HmacConfig.model_validate(kwargs)


def test_template_without_timestamp_is_allowed() -> None:
    config = HmacConfig(header="X-Sig", payload_template="v0:{body}")
    assert signed_payload(config, b"b", None) == b"v0:b"
    verify(config, b"b", sign(config, b"b", "k", 0), ["k"], 0)


def test_config_fields_are_described_and_scheme_is_published() -> None:
    assert all(field.description for field in HmacConfig.model_fields.values())
    assert HmacConfig.model_config.get("extra") == "forbid"
    assert SCHEME.name == "hmac"
    assert SCHEME.config is HmacConfig
    assert SCHEME.verify is verify
    assert SCHEME.sign is sign
