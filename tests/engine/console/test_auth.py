"""Console access over real HTTP: credentials, the session cookie, CSRF tokens, a closed console.

Wrong credentials give 401 and no data; a session cookie is HttpOnly and SameSite=Strict; a
state-changing request made with the session cookie but without its CSRF token is refused
with 403 and changes nothing; webhooks stay public.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests

from tests.engine.console.support import (
    PASSWORD,
    TOKEN,
    USER,
    bearer,
    console,
    csrf_of,
    dead_letter,
    logged_in,
    order,
    send,
)


def test_wrong_token_is_401_and_says_nothing_about_the_data(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        state = send(server, order(5551))
        for path in ("/api/runs", f"/api/runs/{state.run_id}", "/api/flows", "/api/dead-letters"):
            response = server.http.get(server.url + path, headers=bearer("wrong-token"))
            assert response.status_code == 401, path
            assert state.run_id not in response.text and "5551" not in response.text
            assert "www-authenticate" not in response.headers  # no browser login prompt
        page = server.http.get(server.url + f"/console/runs/{state.run_id}",
                               headers=bearer("wrong-token"))
        assert page.status_code == 401
        assert "5551" not in page.text and state.run_id not in page.text
        assert server.http.get(server.url + "/api/runs").status_code == 401  # none at all


def test_wrong_login_is_401_and_sets_no_session(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        http = requests.Session()
        form = http.get(server.url + "/console/login")
        response = http.post(server.url + "/console/login", data={
            "csrf_token": csrf_of(form.text), "token": "guess"}, allow_redirects=False)
        assert response.status_code == 401
        assert "Wrong token" in response.text
        assert "flowrun_console" not in response.cookies
        # unauthenticated pages send the browser to the login form
        redirect = http.get(server.url + "/console/runs?key=1", allow_redirects=False)
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/console/login?next=/console/runs%3Fkey%3D1"


def test_login_sets_an_httponly_samesite_strict_session_cookie(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        http = requests.Session()
        form = http.get(server.url + "/console/login")
        response = http.post(server.url + "/console/login", data={
            "csrf_token": csrf_of(form.text), "token": TOKEN, "next": "/console/dlq"},
            allow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/dlq"
        headers = response.raw.headers.getlist("set-cookie")  # each Set-Cookie on its own
        cookie = next(c for c in headers if c.startswith("flowrun_console="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert http.get(server.url + "/console/dlq").status_code == 200


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_the_caller_counted(
        tmp_path: Path) -> None:
    # the server trusts its loopback peer as a proxy (uvicorn's FORWARDED_ALLOW_IPS default)
    with console(tmp_path) as server:
        http = requests.Session()
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
        form = http.get(server.url + "/console/login", headers=proxied)
        login_cookie = form.raw.headers.getlist("set-cookie")[0]
        assert login_cookie.startswith("flowrun_login=") and "Secure" in login_cookie
        # this client speaks plain HTTP to the server, so it sends the Secure cookie by hand
        token = login_cookie.split(";", 1)[0].split("=", 1)[1]
        response = http.post(server.url + "/console/login", headers=proxied, data={
            "csrf_token": csrf_of(form.text), "token": TOKEN, "next": "/console/dlq"},
            cookies={"flowrun_login": token}, allow_redirects=False)
        assert response.status_code == 303, response.text
        cookie = next(c for c in response.raw.headers.getlist("set-cookie")
                      if c.startswith("flowrun_console="))
        assert "Secure" in cookie and "HttpOnly" in cookie
        for _ in range(10):  # one caller's wrong tokens block that caller ...
            server.http.get(server.url + "/api/flows", headers={
                **bearer("wrong-token"), "X-Forwarded-For": "203.0.113.66"})
        blocked = server.http.get(server.url + "/api/flows", headers={
            **bearer(), "X-Forwarded-For": "203.0.113.66"})
        assert blocked.status_code == 429
        other = server.http.get(server.url + "/api/flows", headers={  # ... not the others
            **bearer(), "X-Forwarded-For": "203.0.113.7"})
        assert other.status_code == 200


def test_login_form_needs_its_csrf_token(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        response = requests.post(server.url + "/console/login", data={"token": TOKEN},
                                 allow_redirects=False)
        assert response.status_code == 403
        assert "flowrun_console" not in response.cookies


def test_user_and_password_log_in_by_form_and_by_basic_auth(tmp_path: Path) -> None:
    with console(tmp_path, token=None) as server:
        http = requests.Session()
        form = http.get(server.url + "/console/login")
        assert 'name="token"' not in form.text  # no token configured: no token field
        response = http.post(server.url + "/console/login", data={
            "csrf_token": csrf_of(form.text), "user": USER, "password": PASSWORD})
        assert response.status_code == 200 and "Flows" in response.text
        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert server.http.get(server.url + "/api/flows", headers={
            "Authorization": f"Basic {basic}"}).status_code == 200
        wrong = base64.b64encode(f"{USER}:nope".encode()).decode()
        assert server.http.get(server.url + "/api/flows", headers={
            "Authorization": f"Basic {wrong}"}).status_code == 401


def test_missing_csrf_token_is_403_and_the_entry_is_untouched(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 6001)
        http = logged_in(server)
        # a form post with the session cookie but no token (what a forged form would send)
        response = http.post(server.url + f"/console/dlq/{entry.id}/discard",
                             data={"reason": "forged"}, allow_redirects=False)
        assert response.status_code == 403
        # the API with the session cookie and no X-CSRF-Token header
        api = http.post(server.url + f"/api/dead-letters/{entry.id}/discard",
                        json={"reason": "forged"})
        assert api.status_code == 403
        wrong = http.post(server.url + f"/api/dead-letters/{entry.id}/discard",
                          json={"reason": "forged"}, headers={"X-CSRF-Token": "not-it"})
        assert wrong.status_code == 403
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.status == "open" and kept.audit == []
        # with the session's token it goes through
        page = http.get(server.url + f"/console/dlq/{entry.id}")
        token = csrf_of(page.text)
        done = http.post(server.url + f"/api/dead-letters/{entry.id}/discard",
                         json={"reason": "duplicate order"}, headers={"X-CSRF-Token": token})
        assert done.status_code == 200 and done.json()["status"] == "discarded"


def test_header_authenticated_api_calls_need_no_csrf_token(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 6002)
        response = server.http.post(server.url + f"/api/dead-letters/{entry.id}/discard",
                                    json={"reason": "test"}, headers=bearer())
        assert response.status_code == 200
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.audit[-1]["who"] == "api:token"


def test_logout_ends_the_session(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        http = logged_in(server)
        token = csrf_of(http.get(server.url + "/console/").text)
        http.post(server.url + "/console/logout", data={"csrf_token": token})
        assert http.get(server.url + "/api/flows").status_code == 401


def test_no_credentials_configured_closes_the_console(tmp_path: Path) -> None:
    with console(tmp_path, token=None, user=None, password=None) as server:
        page = server.http.get(server.url + "/console/")
        assert page.status_code == 404 and "FLOWRUN_CONSOLE_TOKEN" in page.text
        assert server.http.get(server.url + "/api/runs", headers=bearer()).status_code == 404
        # webhooks stay public
        assert send(server, order(7001)).status == "succeeded"


def test_a_user_without_a_password_is_a_settings_error() -> None:
    from pydantic import ValidationError

    from engine.settings import Settings

    with pytest.raises(ValidationError, match="FLOWRUN_CONSOLE_PASSWORD"):
        Settings(console_user="ops")


def test_console_pages_carry_a_strict_content_security_policy(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        page = logged_in(server).get(server.url + "/console/")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
