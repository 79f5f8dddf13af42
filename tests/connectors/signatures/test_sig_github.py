"""Tests for GitHub's X-Hub-Signature-256 scheme (and the opt-in legacy SHA-1 header).

Vectors:
- GitHub's docs, "Validating webhook deliveries", section "Testing the webhook payload
  validation": secret "It's a Secret to Everybody", payload "Hello, World!" gives
  X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17
- GitHub publishes no SHA-1 vector; the same inputs were run through OpenSSL 3.0:
    printf '%s' 'Hello, World!' | openssl dgst -sha1 -hmac "It's a Secret to Everybody"
    -> 01dc10d0c83e72ed246219cdd91669667fe2ca59
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.signatures.base import SignatureError
from connectors.signatures.github import SCHEME, GitHubConfig, sign, verify

SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
SHA256_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
SHA1_HEADER = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"

MODERN = GitHubConfig()
LEGACY = GitHubConfig(accept_legacy_sha1=True)


def reason_of(
    config: GitHubConfig, body: bytes, headers: dict[str, str], secrets: list[str]
) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(config, body, headers, secrets, 0)
    return caught.value.reason


def test_documented_vector_verifies() -> None:
    verify(MODERN, BODY, {"X-Hub-Signature-256": SHA256_HEADER}, [SECRET], 0)
    verify(MODERN, BODY, {"x-hub-signature-256": SHA256_HEADER}, [SECRET], 0)


def test_sign_reproduces_the_documented_vector() -> None:
    assert sign(MODERN, BODY, SECRET, 0) == {"X-Hub-Signature-256": SHA256_HEADER}


def test_sign_adds_sha1_when_legacy_is_accepted() -> None:
    assert sign(LEGACY, BODY, SECRET, 0) == {
        "X-Hub-Signature-256": SHA256_HEADER,
        "X-Hub-Signature": SHA1_HEADER,
    }


def test_wrong_secret() -> None:
    headers = {"X-Hub-Signature-256": SHA256_HEADER}
    assert reason_of(MODERN, BODY, headers, ["It's a secret to everybody"]) == "signature mismatch"


def test_tampered_body() -> None:
    headers = {"X-Hub-Signature-256": SHA256_HEADER}
    assert reason_of(MODERN, b"Hello, World?", headers, [SECRET]) == "signature mismatch"


def test_one_flipped_hex_digit_is_a_mismatch() -> None:
    flipped = SHA256_HEADER[:-1] + "8"
    headers = {"X-Hub-Signature-256": flipped}
    assert reason_of(MODERN, BODY, headers, [SECRET]) == "signature mismatch"


def test_missing_header() -> None:
    assert reason_of(MODERN, BODY, {}, [SECRET]) == "missing header X-Hub-Signature-256"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (SHA256_HEADER.removeprefix("sha256="), "missing prefix"),
        ("sha1=" + SHA256_HEADER.removeprefix("sha256="), "missing prefix"),
        ("sha256=not-hex", "not hex"),
        ("sha256=", "not hex"),
    ],
)
def test_malformed_header(value: str, reason: str) -> None:
    headers = {"X-Hub-Signature-256": value}
    assert (
        reason_of(MODERN, BODY, headers, [SECRET])
        == f"malformed header X-Hub-Signature-256 ({reason})"
    )


def test_legacy_sha1_alone_is_refused_unless_configured() -> None:
    headers = {"X-Hub-Signature": SHA1_HEADER}
    assert reason_of(MODERN, BODY, headers, [SECRET]) == "missing header X-Hub-Signature-256"
    verify(LEGACY, BODY, headers, [SECRET], 0)


def test_legacy_sha1_wrong_secret() -> None:
    headers = {"X-Hub-Signature": SHA1_HEADER}
    assert reason_of(LEGACY, BODY, headers, ["other"]) == "signature mismatch"


def test_no_downgrade_to_sha1_when_sha256_is_present_but_wrong() -> None:
    bad = "sha256=" + "0" * 64
    headers = {"X-Hub-Signature-256": bad, "X-Hub-Signature": SHA1_HEADER}
    assert reason_of(LEGACY, BODY, headers, [SECRET]) == "signature mismatch"


def test_blank_sha256_header_does_not_fall_back_to_sha1() -> None:
    headers = {"X-Hub-Signature-256": "", "X-Hub-Signature": SHA1_HEADER}
    assert reason_of(LEGACY, BODY, headers, [SECRET]) == "missing header X-Hub-Signature-256"


def test_rotation_accepts_old_and_new_and_rejects_removed() -> None:
    old, new = "old-webhook-secret", "new-webhook-secret"
    by_old, by_new = sign(MODERN, BODY, old, 0), sign(MODERN, BODY, new, 0)
    verify(MODERN, BODY, by_old, [old, new], 0)
    verify(MODERN, BODY, by_new, [old, new], 0)
    assert reason_of(MODERN, BODY, by_old, [new]) == "signature mismatch"


def test_reasons_never_contain_the_secret_or_the_computed_signature() -> None:
    tampered = b"Hello, World?"
    reasons = [
        reason_of(MODERN, tampered, {"X-Hub-Signature-256": SHA256_HEADER}, [SECRET]),
        reason_of(MODERN, BODY, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, [SECRET]),
        reason_of(MODERN, BODY, {"X-Hub-Signature-256": "sha256=xyz"}, [SECRET]),
        reason_of(LEGACY, tampered, {"X-Hub-Signature": SHA1_HEADER}, [SECRET]),
    ]
    computed = [
        SHA256_HEADER.removeprefix("sha256="),
        SHA1_HEADER.removeprefix("sha1="),
        *(v.partition("=")[2] for v in sign(LEGACY, tampered, SECRET, 0).values()),
    ]
    for reason in reasons:
        assert SECRET not in reason
        for signature in computed:
            assert signature not in reason


def test_config() -> None:
    assert all(field.description for field in GitHubConfig.model_fields.values())
    with pytest.raises(ValidationError):
        GitHubConfig.model_validate({"accept_legacy_sha1": True, "algorithm": "sha1"})
    assert SCHEME.name == "github"
    assert SCHEME.config is GitHubConfig
    assert SCHEME.verify is verify
    assert SCHEME.sign is sign
