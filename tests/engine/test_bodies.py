"""engine.bodies: what a webhook body becomes, what is refused with which status, and how the
headers a run record keeps are bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.bodies import DROPPED, MAX_FORM_FIELDS, BodyError, parse_body, record_headers
from engine.settings import Settings
from tests.engine.server_support import hook_app, serving

JSON = "application/json"


@pytest.mark.parametrize("raw, content_type, expected", [
    (b'{"id": 1001}', JSON, {"id": 1001}),
    (b'\xef\xbb\xbf{"id": 1001}', JSON, {"id": 1001}),  # a byte order mark, as some send
    (b'{"id": 9007199254740993}', JSON, {"id": 2**53 + 1}),  # Shopify ids: exact, not floats
    (b'{"id": 36893488147419103233}', JSON, {"id": 2**65 + 1}),  # beyond 64 bits, still exact
    (b'{"id": 18446744073709551617}', JSON, {"id": 2**64 + 1}),  # just past 64 bits
    (b'{"id": -9223372036854775809}', JSON, {"id": -(2**63) - 1}),
    (b'[820982911946154508, 1.5, "9999999999999999999999"]', JSON,
     [820982911946154508, 1.5, "9999999999999999999999"]),
    (b'{"n": ' + b"7" * 4300 + b"}", JSON, {"n": int("7" * 4300)}),  # at Python's limit
    (b'{"a": 1.7976931348623157e308}', JSON, {"a": 1.7976931348623157e308}),
    (b'{"a": 1e-400}', JSON, {"a": 0.0}),  # underflow is zero, not an error
    (b'{"smile": "\\ud83d\\ude00"}', JSON, {"smile": "\U0001f600"}),  # a surrogate pair
    (b'{"path": "C:\\\\ud800"}', JSON, {"path": "C:\\ud800"}),  # a backslash, then text
    (b'"\\uD83D\\uDE00"', "application/vnd.shop+json", "\U0001f600"),
    (b"a=1&b=2&b=3", "application/x-www-form-urlencoded", {"a": "1", "b": ["2", "3"]}),
    (b"<o id='1'/>", "text/xml", {"o": {"@id": "1"}}),
    ("Grüße".encode("latin-1"), "text/plain; charset=latin-1", "Grüße"),
    (b"", None, None),
])
def test_bodies_become_the_flow_body(raw: bytes, content_type: str | None, expected: Any) -> None:
    assert parse_body(raw, content_type) == expected


@pytest.mark.parametrize("raw, content_type, status, message", [
    (b'{"order": "\\ud800x"}', JSON, 400, "malformed JSON: $.order holds a lone UTF-16 surrogate"),
    (b'{"a": [1, {"b": "\\uDFFF"}]}', JSON, 400, "$.a[1].b holds a lone UTF-16 surrogate"),
    (b'{"\\udc00": 1}', JSON, 400, "a key of $ holds a lone UTF-16 surrogate"),
    (b'["\\ude00\\ud83d"]', JSON, 400, "$[0] holds a lone"),  # a pair in the wrong order
    (b'{"total": 1e400}', JSON, 400, "the number 1e400 is out of range"),
    (b'{"total": -1e400}', JSON, 400, "the number -1e400 is out of range"),
    (b'{"a": [{"b": [1, 1E99999]}]}', JSON, 400, "the number 1E99999 is out of range"),
    (b"[" + b"9" * 400 + b".5]", JSON, 400, "(402 characters) is out of range"),
    (b'{"total": NaN}', JSON, 400, "NaN is not JSON"),
    (b'{"total": -Infinity}', JSON, 400, "-Infinity is not JSON"),
    (b'{"n": ' + b"7" * 5000 + b"}", JSON, 400, "an integer has more than 4300 digits"),
    (b"7" * 1_000_000, JSON, 400, "an integer has more than 4300 digits"),
    (b'{"id": 1,}', JSON, 400, "malformed JSON: Expecting property name"),
    (b"+2AA-", "text/plain; charset=utf-7", 400, "the body holds a lone UTF-16 surrogate"),
    (b"a=+2AA-", "application/x-www-form-urlencoded; charset=utf-7", 400, "lone UTF-16"),
    (b"&".join(b"f%d=1" % i for i in range(MAX_FORM_FIELDS + 1)),
     "application/x-www-form-urlencoded", 400, "Max number of fields exceeded"),
    (b"hi", "text/plain; charset=klingon", 415, "unknown charset 'klingon'"),
    (b"hi", None, 415, "a Content-Type header is required"),
    (b"hi", "image/png", 415, "unsupported media type 'image/png'"),
])
def test_refused_bodies_carry_the_status_and_a_clear_reason(
        raw: bytes, content_type: str | None, status: int, message: str) -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(raw, content_type)
    assert caught.value.status == status
    assert message in caught.value.message
    assert caught.value.outcome == ("malformed" if status == 400 else "unsupported_media_type")


# -- headers kept in a run record -------------------------------------------------------------
LIMITS = Settings(max_header_bytes=2048, max_headers=8)


def test_headers_within_the_limits_are_kept_whole_and_repeats_joined() -> None:
    items = [("x-shopify-topic", "orders/create"), ("accept", "a"), ("accept", "b")]
    assert record_headers(items, LIMITS) == {"x-shopify-topic": "orders/create",
                                             "accept": "a, b"}


def test_over_the_byte_limit_the_largest_headers_are_left_out_and_named() -> None:
    items = [("x-id", "d-1"), ("cookie", "c" * 5000), ("x-topic", "orders/create"),
             ("x-blob", "b" * 1900)]
    kept = record_headers(items, LIMITS)
    assert kept == {"x-id": "d-1", "x-topic": "orders/create", DROPPED: "cookie, x-blob"}
    assert sum(len(k) + len(v) for k, v in kept.items()) <= LIMITS.max_header_bytes


def test_over_the_count_limit_the_largest_headers_are_left_out_and_named() -> None:
    items = [(f"x-h{i}", "v" * i) for i in range(20)]
    kept = record_headers(items, LIMITS)
    assert len(kept) <= LIMITS.max_headers
    assert list(kept)[:-1] == [f"x-h{i}" for i in range(LIMITS.max_headers - 1)]
    assert kept[DROPPED] == ", ".join(f"x-h{i}" for i in range(LIMITS.max_headers - 1, 20))


def test_a_run_record_never_holds_more_headers_than_the_limit(tmp_path: Path) -> None:
    # served here by plain uvicorn, without flowrun serve's edge limits: the record is bounded
    flow = """
    flow: open-orders
    trigger:
      webhook: {path: /hooks/open}
    steps:
      - id: keep
        set: {kept: 'true'}
    """
    app = hook_app(tmp_path, {"open-orders": flow})
    with serving(app, executor=False) as server:
        response = server.post("/hooks/open", b"{}", {"content-type": JSON,
                                                      "x-huge": "h" * 100_000,
                                                      "x-delivery": "d-7"})
        assert response.status_code == 202, response.text
        state = app.store.get_run(response.json()["run_id"])
    assert state is not None
    headers = state.envelope["headers"]
    assert headers["x-delivery"] == "d-7" and headers["content-type"] == JSON
    assert "x-huge" not in headers and headers[DROPPED] == "x-huge"
