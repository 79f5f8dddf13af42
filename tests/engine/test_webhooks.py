"""The webhook server's response contract, over real HTTP to uvicorn on loopback.

202 once the run is recorded, 200 for a duplicate delivery, 401 for a bad signature, 413 for
a large body, 400 for a malformed one, 415 for an unsupported media type, 404, 405, 429 —
and for every refusal, nothing recorded.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.signatures.shopify import SCHEME as SHOPIFY
from tests.engine.server_support import SECRETS, SHOP_FLOW, Running, hook_app, serving

SHOP_CONFIG = SHOPIFY.config()
ORDER = {"id": 1001, "email": "ada@example.com", "total_price": "250.00"}


def signed(body: bytes, secret: str = SECRETS["SHOP"], **headers: str) -> dict[str, str]:
    out = SHOPIFY.sign(SHOP_CONFIG, body, secret, 0)
    out.update({k.replace("_", "-"): v for k, v in headers.items()})
    return out


def shop_json(delivery: str = "d-1", **headers: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(ORDER).encode()
    return body, signed(body, content_type="application/json", x_shopify_webhook_id=delivery,
                        **headers)


LIMITED_FLOW = """
flow: limited
trigger:
  webhook:
    path: /hooks/limited
    methods: [POST, PUT]
    max_body: 64
    rate_limit: {per_second: 0.001, burst: 2}
steps:
  - id: keep
    set: {seen: "true"}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    app = hook_app(tmp_path, {"shop-orders": SHOP_FLOW, "limited": LIMITED_FLOW})
    with serving(app) as running:
        yield running


# -- accepted ----------------------------------------------------------------------------------
def test_signed_delivery_is_accepted_recorded_and_run(server: Running) -> None:
    body, headers = shop_json(X_Shopify_Topic="orders/create")
    response = server.post("/hooks/shop", body, headers)
    assert response.status_code == 202
    data = response.json()
    assert set(data) == {"run_id", "correlation_id"}
    assert response.headers["X-Correlation-ID"] == data["correlation_id"]
    # the run was recorded before the answer: the store has it at once
    assert server.app.store.get_run(data["run_id"]) is not None
    states = server.app.wait_for(data["run_id"], timeout=30)
    assert [s.status for s in states] == ["succeeded"]
    assert states[0].envelope["body"] == {"order": 1001, "topic": "orders/create"}
    assert states[0].trigger == "webhook"
    assert server.counter("accepted") == 1


def test_headers_reach_the_flow_lower_cased(server: Running) -> None:
    body, headers = shop_json(X_Custom_Thing="Value-Kept")
    run_id = server.post("/hooks/shop", body, headers).json()["run_id"]
    given = server.app.store.get_run(run_id).envelope["headers"]  # type: ignore[union-attr]
    assert given["x-custom-thing"] == "Value-Kept"
    assert given["x-shopify-webhook-id"] == "d-1"
    assert all(name == name.lower() for name in given)


# -- correlation ids ---------------------------------------------------------------------------
def test_correlation_id_from_the_sender_is_kept(server: Running) -> None:
    body, headers = shop_json(X_Correlation_ID="order-1001.attempt-1")
    response = server.post("/hooks/shop", body, headers)
    assert response.json()["correlation_id"] == "order-1001.attempt-1"
    assert response.headers["X-Correlation-ID"] == "order-1001.attempt-1"
    state = server.app.store.get_run(response.json()["run_id"])
    assert state is not None and state.correlation_id == "order-1001.attempt-1"


def test_correlation_id_from_traceparent_is_the_trace_id(server: Running) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    body, headers = shop_json(traceparent=f"00-{trace}-00f067aa0ba902b7-01")
    response = server.post("/hooks/shop", body, headers)
    assert response.json()["correlation_id"] == trace
    assert response.headers["X-Correlation-ID"] == trace


def test_correlation_id_is_created_when_none_is_given(server: Running) -> None:
    body, headers = shop_json(traceparent="not-a-traceparent")
    response = server.post("/hooks/shop", body, headers)
    created = response.json()["correlation_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", created)
    assert response.headers["X-Correlation-ID"] == created
    state = server.app.store.get_run(response.json()["run_id"])
    assert state is not None and state.correlation_id == created


def test_an_unusable_correlation_header_is_not_echoed(server: Running) -> None:
    body, headers = shop_json(X_Correlation_ID="bad id with spaces " + "x" * 200)
    response = server.post("/hooks/shop", body, headers)
    assert response.status_code == 202
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Correlation-ID"])


# -- duplicates --------------------------------------------------------------------------------
def test_duplicate_delivery_answers_200_with_the_original_run(server: Running) -> None:
    body, headers = shop_json("dup-1")
    first = server.post("/hooks/shop", body, headers)
    again = server.post("/hooks/shop", body, headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"run_id": first.json()["run_id"],
                            "correlation_id": first.json()["correlation_id"], "duplicate": True}
    assert server.runs() == 1


def test_concurrent_duplicates_start_exactly_one_run(server: Running) -> None:
    body, headers = shop_json("storm-1")
    barrier = threading.Barrier(20)
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def deliver() -> None:
        barrier.wait()
        # one session per thread: requests.Session is not meant to be shared across threads
        import requests

        with requests.Session() as http:
            http.trust_env = False
            response = http.post(server.url + "/hooks/shop", data=body, headers=headers,
                                 timeout=60)
        with lock:
            results.append((response.status_code, response.json()))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 19 + [202]
    assert len({data["run_id"] for _, data in results}) == 1
    assert sum(1 for _, data in results if data.get("duplicate")) == 19
    assert server.runs() == 1


def test_different_delivery_ids_are_different_runs(server: Running) -> None:
    for delivery in ("a", "b"):
        body, headers = shop_json(delivery)
        assert server.post("/hooks/shop", body, headers).status_code == 202
    assert server.runs() == 2


# -- signatures --------------------------------------------------------------------------------
@pytest.mark.parametrize("mangle, reason", [
    (lambda h: h.pop("X-Shopify-Hmac-Sha256"), "missing header X-Shopify-Hmac-Sha256"),
    (lambda h: h.update({"X-Shopify-Hmac-Sha256": "bm90IGl0"}), "signature mismatch"),
    (lambda h: h.update({"X-Shopify-Hmac-Sha256": "%%%"}), "malformed header"),
])
def test_bad_or_missing_signature_is_401_and_nothing_is_recorded(
        server: Running, mangle: Any, reason: str) -> None:
    body, headers = shop_json()
    mangle(headers)
    response = server.post("/hooks/shop", body, headers)
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert server.runs() == 0
    assert server.counter("signature_rejected") == 1


def test_signature_covers_the_raw_bytes(server: Running) -> None:
    _, headers = shop_json()
    # the same JSON, re-serialised: equal as data, different as bytes
    response = server.post("/hooks/shop", json.dumps(ORDER, indent=2), headers)
    assert response.status_code == 401
    assert server.runs() == 0


def test_signature_is_checked_before_the_body_is_parsed(server: Running) -> None:
    headers = signed(b"{not json", content_type="application/json")
    headers["X-Shopify-Hmac-Sha256"] = signed(b"other")["X-Shopify-Hmac-Sha256"]
    assert server.post("/hooks/shop", b"{not json", headers).status_code == 401
    headers = signed(b"<a/>", content_type="application/octet-stream")
    headers["X-Shopify-Hmac-Sha256"] = signed(b"other")["X-Shopify-Hmac-Sha256"]
    assert server.post("/hooks/shop", b"<a/>", headers).status_code == 401


def test_wrong_secret_is_refused_and_never_echoed(server: Running) -> None:
    body, _ = shop_json()
    headers = signed(body, "not-the-secret", content_type="application/json")
    response = server.post("/hooks/shop", body, headers)
    assert response.status_code == 401
    assert SECRETS["SHOP"] not in response.text


def test_metrics_expose_the_outcome_counters(server: Running) -> None:
    body, headers = shop_json()
    headers["X-Shopify-Hmac-Sha256"] = "bm90IGl0"
    server.post("/hooks/shop", body, headers)
    text = server.http.get(server.url + "/metrics").text
    assert ('flowrun_webhook_requests_total{flow="shop-orders",outcome="signature_rejected"} 1'
            in text)


# -- bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type, raw, expected", [
    ("application/json", b'{"a": [1, 2]}', {"a": [1, 2]}),
    ("application/json; charset=utf-8", '{"name": "Müller"}'.encode(), {"name": "Müller"}),
    ("application/vnd.shop+json", b'{"a": 1}', {"a": 1}),
    ("application/x-www-form-urlencoded", b"order=1001&sku=A&sku=B&note=",
     {"order": "1001", "sku": ["A", "B"], "note": ""}),
    ("application/xml", b'<order id="7"><line>a</line><line>b</line></order>',
     {"order": {"@id": "7", "line": ["a", "b"]}}),
    ("text/xml; charset=utf-8", b"<ping>yes</ping>", {"ping": "yes"}),
    ("text/plain", b"hello, flows", "hello, flows"),
    ("text/plain; charset=latin-1", "Grüße".encode("latin-1"), "Grüße"),
])
def test_media_types_become_the_flow_body(tmp_path: Path, content_type: str, raw: bytes,
                                          expected: Any) -> None:
    transform = """    transform: '{"order": id, "topic": $headers."x-shopify-topic"}'"""
    flow = SHOP_FLOW.replace(transform, "    set: {kept: 'true'}")
    app = hook_app(tmp_path, {"shop-orders": flow})
    with serving(app, executor=False) as server:
        response = server.post("/hooks/shop", raw, signed(raw, content_type=content_type))
        assert response.status_code == 202, response.text
        state = app.store.get_run(response.json()["run_id"])
        assert state is not None and state.envelope["body"] == expected


TENANT_FLOW = """
flow: tenant-orders
trigger:
  webhook: {path: "/hooks/{tenant}/orders"}
steps:
  - id: keep
    set: {tenant: '$meta.request.params.tenant', shop: '$meta.request.query.shop'}
"""


def test_path_params_and_query_reach_the_flow_and_survive_a_replay(tmp_path: Path) -> None:
    app = hook_app(tmp_path, {"tenant-orders": TENANT_FLOW})
    with serving(app, executor=False) as server:
        response = server.post("/hooks/acme-eu/orders?shop=acme.example&x=1", b'{"id": 1}',
                               {"content-type": "application/json"})
        assert response.status_code == 202, response.text
        state = app.store.get_run(response.json()["run_id"])
    assert state is not None
    request = {"path": "/hooks/acme-eu/orders", "params": {"tenant": "acme-eu"},
               "query": {"shop": "acme.example", "x": "1"}}
    assert state.envelope["meta"]["request"] == request
    assert state.original["request"] == request  # a replay from the start gets it back


@pytest.mark.parametrize("content_type, raw, reason", [
    ("application/json", b'{"id": 1,}', "malformed JSON: Expecting property name"),
    ("application/json", b"", "malformed JSON: Expecting value: line 1 column 1"),
    ("application/json", b'{"n": NaN}', "NaN is not JSON"),
    ("application/json", b"[" * 100_000, "nested too deeply"),
    ("application/json", b'{"a": "\xff"}', "invalid start byte"),
    ("application/xml", b"<order><line></order>", "malformed XML: mismatched tag"),
    ("application/xml", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DOCTYPE"),
    ("application/xml", b"<x>&undeclared;</x>", "undefined entity"),
])
def test_malformed_bodies_are_400_with_the_parsers_reason(
        server: Running, content_type: str, raw: bytes, reason: str) -> None:
    response = server.post("/hooks/shop", raw, signed(raw, content_type=content_type))
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert "Traceback" not in response.text
    assert server.runs() == 0


@pytest.mark.parametrize("content_type", ["application/octet-stream", "multipart/form-data",
                                          "image/png", None])
def test_unsupported_media_types_are_415(server: Running, content_type: str | None) -> None:
    raw = b"some bytes"
    headers = signed(raw)
    if content_type:
        headers["Content-Type"] = content_type
    response = server.post("/hooks/shop", raw, headers)
    assert response.status_code == 415
    assert "error" in response.json()
    assert server.runs() == 0


# -- limits ------------------------------------------------------------------------------------
def test_body_over_max_body_is_413(server: Running) -> None:
    response = server.post("/hooks/limited", b"x" * 65, {"Content-Type": "text/plain"})
    assert response.status_code == 413
    assert "64 bytes" in response.json()["error"]
    assert server.post("/hooks/limited", b"x" * 64,
                       {"Content-Type": "text/plain"}).status_code == 202


def test_chunked_body_over_max_body_is_413(server: Running) -> None:
    chunks = iter([b"x" * 40, b"x" * 40])  # no Content-Length: the limit applies while reading
    response = server.http.post(server.url + "/hooks/limited", data=chunks,
                                headers={"Content-Type": "text/plain"}, timeout=30)
    assert response.status_code == 413
    assert server.runs() == 0


def test_declared_length_over_max_body_is_refused_without_reading_the_body(
        server: Running) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        # announce a gigabyte and send none of it: an answer can only come from the header
        sock.sendall(b"POST /hooks/limited HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert server.runs() == 0


def test_rate_limit_is_429_with_retry_after(server: Running) -> None:
    statuses = [server.post("/hooks/limited", b"hi", {"Content-Type": "text/plain"})
                for _ in range(3)]
    assert [r.status_code for r in statuses] == [202, 202, 429]
    retry_after = statuses[2].headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert server.runs() == 2
    assert server.counter("rate_limited") == 1


# -- routing -----------------------------------------------------------------------------------
def test_on_redis_the_rate_limit_is_one_budget_for_every_server(
        tmp_path: Path, redis_url: str) -> None:
    first = hook_app(tmp_path / "a", {"limited": LIMITED_FLOW}, redis_url=redis_url)
    second = hook_app(tmp_path / "b", {"limited": LIMITED_FLOW}, redis_url=redis_url)
    with serving(first, executor=False) as one, serving(second, executor=False) as two:
        answers = [server.post("/hooks/limited", b"{}", {"content-type": "application/json"})
                   for server in (one, two, one, two)]
    # burst 2 shared by both processes: two pass, then both refuse, and a refusal reserves
    # no later turn
    assert [r.status_code for r in answers] == [202, 202, 429, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1


def test_unknown_path_is_404(server: Running) -> None:
    response = server.post("/hooks/nope", b"{}", {"Content-Type": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_wrong_method_is_405_with_allow(server: Running) -> None:
    response = server.http.get(server.url + "/hooks/shop")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    response = server.http.delete(server.url + "/hooks/limited")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "PUT"}


def test_other_declared_methods_are_served(server: Running) -> None:
    response = server.http.put(server.url + "/hooks/limited", data=b"x",
                               headers={"Content-Type": "text/plain"})
    assert response.status_code == 202


def test_readyz_reports_the_store_and_the_flows(server: Running) -> None:
    response = server.http.get(server.url + "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "webhooks": 2}


def test_harness_serves_health_on_a_loopback_port(tmp_path: Path) -> None:
    app = hook_app(tmp_path, {"shop-orders": SHOP_FLOW})
    with serving(app) as server:
        response = server.http.get(server.url + "/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "alive"}
        assert server.url.startswith("http://127.0.0.1:")
