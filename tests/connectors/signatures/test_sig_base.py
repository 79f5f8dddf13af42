"""Tests for the helpers every signature scheme shares: headers, secrets, digests, time."""

from __future__ import annotations

import pytest

from connectors.signatures.base import (
    SignatureError,
    check_tolerance,
    decode_digest,
    encode_digest,
    header_value,
    matches_any,
    parse_timestamp,
    require_header,
    usable_secrets,
)


def test_signature_error_reason_is_its_message() -> None:
    error = SignatureError("signature mismatch")
    assert error.reason == "signature mismatch"
    assert str(error) == "signature mismatch"


def test_header_lookup_ignores_case() -> None:
    headers = {"x-shopify-hmac-sha256": "abc", "Content-Type": "application/json"}
    assert header_value(headers, "X-Shopify-Hmac-Sha256") == "abc"
    assert header_value(headers, "content-type") == "application/json"
    assert header_value(headers, "X-Other") is None


def test_header_spelled_twice_with_the_same_value_is_fine() -> None:
    assert header_value({"X-Sig": "a", "x-sig": "a"}, "X-SIG") == "a"


def test_header_spelled_twice_with_different_values_is_refused() -> None:
    with pytest.raises(SignatureError) as caught:
        header_value({"X-Sig": "a", "x-sig": "b"}, "X-Sig")
    # Exact text: neither copy's value is echoed back.
    assert caught.value.reason == "conflicting copies of header X-Sig"


@pytest.mark.parametrize("headers", [{}, {"X-Sig": ""}, {"x-sig": "   "}])
def test_missing_or_blank_header_is_missing(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as caught:
        require_header(headers, "X-Sig")
    assert caught.value.reason == "missing header X-Sig"


def test_required_header_is_stripped() -> None:
    assert require_header({"x-sig": "  v  "}, "X-Sig") == "v"


@pytest.mark.parametrize("secrets", [[], [""], ["", ""]])
def test_no_usable_secret_fails_closed(secrets: list[str]) -> None:
    with pytest.raises(SignatureError) as caught:
        usable_secrets(secrets)
    assert caught.value.reason == "no secret configured"


def test_empty_secrets_are_dropped_not_tried() -> None:
    assert usable_secrets(["", "new", ""]) == ["new"]


def test_a_bare_string_is_not_a_list_of_secrets() -> None:
    # Iterating "secret" would try "s", "e", "c", ... as keys.
    with pytest.raises(TypeError):
        usable_secrets("secret")


def test_matches_any_finds_a_match_among_many() -> None:
    assert matches_any([b"old", b"new"], [b"x", b"new"])
    assert not matches_any([b"old", b"new"], [b"x", b"newer", b"ne"])
    assert not matches_any([b"old"], [])


def test_hex_digests_compare_case_insensitively() -> None:
    assert decode_digest("ABCDEF", "hex") == decode_digest("abcdef", "hex") == b"\xab\xcd\xef"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("zz", "hex"), ("abc", "hex"), ("not base64!", "base64"), ("YWJj\n", "base64")],
)
def test_undecodable_digests_are_none(text: str, encoding: str) -> None:
    assert decode_digest(text, encoding) is None  # type: ignore[arg-type]


def test_digest_encodings_round_trip() -> None:
    digest = bytes(range(32))
    for encoding in ("hex", "base64"):
        assert decode_digest(encode_digest(digest, encoding), encoding) == digest
    assert encode_digest(b"\x00\xff", "hex") == "00ff"
    assert encode_digest(b"\x00\xff", "base64") == "AP8="


@pytest.mark.parametrize("text", ["", "-5", "+5", "1_000", "1.5", "1e9", "\u0661\u0662", "abc"])
def test_timestamps_are_plain_ascii_digits(text: str) -> None:
    with pytest.raises(SignatureError) as caught:
        parse_timestamp(text, "X-Timestamp")
    assert caught.value.reason == "malformed header X-Timestamp (not a Unix timestamp)"


def test_timestamp_is_parsed() -> None:
    assert parse_timestamp(" 1614265330 ", "X-Timestamp") == 1614265330


def test_tolerance_edges_are_inclusive() -> None:
    check_tolerance(1000, 1300, 300)
    check_tolerance(1000, 700, 300)
    check_tolerance(1000, 1000.5, 300)


def test_old_timestamp_is_refused_with_the_gap_in_the_reason() -> None:
    with pytest.raises(SignatureError) as caught:
        check_tolerance(1000, 1612, 300)
    assert caught.value.reason == "timestamp outside tolerance (612 s > 300 s)"


def test_future_timestamp_is_refused_too() -> None:
    with pytest.raises(SignatureError) as caught:
        check_tolerance(1612, 1000, 300)
    assert caught.value.reason == "timestamp outside tolerance (612 s in the future > 300 s)"
