"""The in-memory twins `flowrun test` hands a step: SFTP and HTTP answered from a case's mocks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests

from engine.testing.mock_http import TEST_TOKEN, MockBook, VirtualClock
from engine.testing.model import Mock
from engine.testing.twins import SftpTwin, transports
from engine.transports import DELIVER, HTTP, SFTP
from engine.types import StepError


def book(*answers: dict[str, Any]) -> MockBook:
    return MockBook([Mock.model_validate({"step": "send", "responses": list(answers)})])


def sftp(mocks: MockBook) -> Any:
    twin = SftpTwin(mocks, "send", VirtualClock(0.0))
    return twin("supplier", SimpleNamespace(timeout=15.0), lambda name: "")


def test_a_put_is_a_call_the_case_sees() -> None:
    mocks = book({"status": 200})
    with sftp(mocks) as session:
        session.ensure_folder("/in")  # no call: a case does not mock folders
        session.put("/in/PO_1.edi", b"ISA*00~")
    assert [(c.step, c.method, c.url, c.body) for c in mocks.calls] == [
        ("send", "PUT", "sftp://supplier/in/PO_1.edi", "ISA*00~")]


def test_a_get_answers_the_mock_s_body() -> None:
    with sftp(book({"status": 200, "body": "sku;qty\nA;1\n"})) as session:
        assert session.get("/out/prices.csv", 1024) == b"sku;qty\nA;1\n"


@pytest.mark.parametrize("answer, kind, retryable", [
    ({"status": 401}, "auth", False),
    ({"status": 403}, "permission", False),
    ({"status": 404}, "not_found", False),
    ({"status": 500}, "io", True),
    ({"error": "connection_refused"}, "connection", True),
    ({"error": "timeout"}, "timeout", True),
    ({"error": "tls"}, "host_key", False),
])
def test_a_failing_answer_fails_like_the_server_would(answer: dict[str, Any], kind: str,
                                                      retryable: bool) -> None:
    with sftp(book(answer)) as session, pytest.raises(StepError) as caught:
        session.put("/in/PO_1.edi", b"x")
    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)
    assert "sftp://supplier/in/PO_1.edi" in caught.value.message


def test_the_http_twin_answers_a_token_request_itself_and_mocks_the_rest() -> None:
    mocks = book({"status": 201, "body": {"ok": True}})
    session: requests.Session = transports(mocks, "send", VirtualClock(0.0))[HTTP.key]
    token = session.post("https://login.example/oauth/token",
                         data={"grant_type": "client_credentials", "client_id": "a"})
    assert token.json()["access_token"] == TEST_TOKEN
    answer = session.post("https://erp.example/orders", json={"n": 1})
    assert answer.status_code == 201
    assert [c.url for c in mocks.calls] == ["https://erp.example/orders"]


def test_http_sftp_and_delivery_are_separate_transports() -> None:
    found = transports(book({"status": 200}), "send", VirtualClock(0.0))
    keys = {HTTP.key, SFTP.key, DELIVER.key}
    assert set(found) == keys and len(keys) == 3
    assert isinstance(found[HTTP.key], requests.Session)
    assert isinstance(found[SFTP.key], SftpTwin)
