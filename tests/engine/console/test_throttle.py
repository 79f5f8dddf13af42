"""Failed console logins and API credentials are throttled, over real HTTP: after ten failures
from one address within five minutes the caller gets 429 with Retry-After — even with the right
credential, which is not checked then — until the window has moved on; a success resets the
count. The throttle's clock is the test's; the server and the requests are real."""

from __future__ import annotations

import base64
from pathlib import Path

import requests

from engine.console.throttle import LIMIT, WINDOW, Throttle
from tests.engine.console.support import (
    PASSWORD,
    TOKEN,
    USER,
    Clock,
    bearer,
    console,
    csrf_of,
    order,
    send,
)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_api_guessing_is_answered_429_until_the_window_moves_on(tmp_path: Path,
                                                                 clock: Clock) -> None:
    with console(tmp_path) as server:
        state = send(server, order(7001))
        url = server.url + "/api/runs"
        for attempt in range(LIMIT):
            assert server.http.get(url, headers=bearer(f"guess-{attempt}")).status_code == 401
            clock.now += 1
        refused = server.http.get(url, headers=bearer(TOKEN))  # right, but not even checked
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= WINDOW
        assert state.run_id not in refused.text and "7001" not in refused.text
        assert server.http.get(url, headers=basic(USER, PASSWORD)).status_code == 429
        page = server.http.get(server.url + "/console/runs", headers=bearer(TOKEN))
        assert page.status_code == 429 and "Retry-After" in page.headers

        clock.now += int(refused.headers["Retry-After"])  # the oldest failure left the window
        allowed = server.http.get(url, headers=bearer(TOKEN))
        assert allowed.status_code == 200 and state.run_id in allowed.text


def test_a_success_resets_the_count(tmp_path: Path, clock: Clock) -> None:
    with console(tmp_path) as server:
        url = server.url + "/api/runs"
        for _ in range(2):
            for attempt in range(LIMIT - 1):
                assert server.http.get(url, headers=bearer(f"g{attempt}")).status_code == 401
            assert server.http.get(url, headers=bearer(TOKEN)).status_code == 200
        assert server.http.get(url, headers=bearer("g")).status_code == 401  # not 429


def test_the_login_form_is_throttled_too(tmp_path: Path, clock: Clock) -> None:
    with console(tmp_path) as server:
        http = requests.Session()
        csrf = csrf_of(http.get(server.url + "/console/login").text)
        for attempt in range(LIMIT):
            wrong = http.post(server.url + "/console/login", data={
                "csrf_token": csrf, "user": USER, "password": f"guess-{attempt}"},
                allow_redirects=False)
            assert wrong.status_code == 401
        right = http.post(server.url + "/console/login", data={
            "csrf_token": csrf, "user": USER, "password": PASSWORD}, allow_redirects=False)
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
        assert "Too many failed attempts" in right.text
        assert "flowrun_console" not in right.cookies


def test_a_user_name_is_throttled_from_any_address(clock: Clock) -> None:
    counts = Throttle(limit=3, window=60)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert counts.blocked([f"addr:{address}", "user:ops"]) is None
        counts.failed([f"addr:{address}", "user:ops"])
    assert counts.blocked(["addr:10.0.0.4", "user:ops"]) == 60
    assert counts.blocked(["addr:10.0.0.4", "user:other"]) is None
    clock.now += 30
    assert counts.blocked(["addr:10.0.0.4", "user:ops"]) == 30
    counts.succeeded(["addr:10.0.0.4", "user:ops"])
    assert counts.blocked(["addr:10.0.0.4", "user:ops"]) is None
