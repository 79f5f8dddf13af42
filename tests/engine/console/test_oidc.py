"""Console login through OpenID Connect, end to end over real HTTP against the tests' own
provider on loopback (discovery, authorization redirect, token endpoint with PKCE, JWKS with a
real RSA key): the operator is named and given the role their groups map to; a login that was
not started here, a token signed by another key, a replayed nonce and a user without a mapped
group are refused with a page saying why, and no session."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc.jwk import RSAKey
from pydantic import SecretStr, ValidationError
from pytest_httpserver import HTTPServer

from engine.settings import Settings
from tests.engine.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, LoopbackProvider
from tests.engine.console.support import console_app, csrf_of, dead_letter
from tests.engine.server_support import Running, serving


@pytest.fixture
def provider(httpserver: HTTPServer) -> LoopbackProvider:
    return LoopbackProvider(httpserver).install()


@pytest.fixture
def server(tmp_path: Path, provider: LoopbackProvider) -> Iterator[Running]:
    app = console_app(tmp_path, token=None, user=None, password=None)
    app.settings.console_oidc_issuer = provider.issuer
    app.settings.console_oidc_client_id = CLIENT_ID
    app.settings.console_oidc_client_secret = SecretStr(CLIENT_SECRET)
    app.settings.console_oidc_roles = {"flowrun-ops": "operator", "flowrun-read": "viewer",
                                       "flowrun-admins": "admin"}
    with serving(app) as running:
        yield running


def browser() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def sign_in(server: Running, http: requests.Session, next_path: str = "/console/dlq",
            ) -> requests.Response:
    """Click "single sign-on" and follow the redirects to the provider and back, by hand; the
    console's answer to the callback."""
    login = http.get(server.url + "/console/login")
    assert 'id="sso"' in login.text and 'id="login"' not in login.text  # SSO only
    start = http.get(server.url + f"/console/oidc/login?next={next_path}", allow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["client_id"] == [CLIENT_ID]
    assert asked["redirect_uri"] == [server.url + "/console/oidc/callback"]
    back = http.get(authorize, allow_redirects=False)
    assert back.status_code == 302
    return http.get(back.headers["location"], allow_redirects=False)


def test_an_operator_signs_in_through_the_provider_and_is_named(server: Running,
                                                                provider: LoopbackProvider) -> None:
    entry = dead_letter(server, 9101)
    http = browser()
    done = sign_in(server, http)
    assert done.status_code == 303 and done.headers["location"] == "/console/dlq"
    assert provider.verifiers_checked == 1  # the token endpoint saw the right PKCE verifier
    page = http.get(server.url + f"/console/dlq/{entry.id}")
    assert "olga · operator" in page.text
    discard = http.post(server.url + f"/console/dlq/{entry.id}/discard", data={
        "csrf_token": csrf_of(page.text), "reason": "sent twice"}, allow_redirects=False)
    assert discard.status_code == 303
    kept = server.app.store.get_dead_letter(entry.id)
    assert kept is not None and kept.audit[-1]["who"] == "console:olga"


def test_the_highest_mapped_group_wins_and_a_reader_is_a_viewer(server: Running,
                                                                provider: LoopbackProvider) -> None:
    provider.user = {"preferred_username": "ada", "groups": ["flowrun-read", "flowrun-admins"]}
    http = browser()
    assert sign_in(server, http).status_code == 303
    assert "ada · admin" in http.get(server.url + "/console/").text
    provider.user = {"preferred_username": "vera", "groups": "flowrun-read"}
    http = browser()
    assert sign_in(server, http).status_code == 303
    assert "vera · viewer" in http.get(server.url + "/console/").text


@pytest.mark.parametrize(("misbehave", "expected"), [
    ("forge", "the ID token was refused: bad_signature"),
    ("wrong_nonce", "the ID token was refused: invalid_claim: Invalid claim: &#39;nonce&#39;"),
    ("no_group", "has no console role"),
    ("list_answer", "the identity provider did not issue an ID token: its answer is not a "
                    "JSON object"),
])
def test_a_bad_login_is_refused_with_the_reason_and_no_session(
        server: Running, provider: LoopbackProvider, misbehave: str, expected: str) -> None:
    if misbehave == "no_group":
        provider.user = {"preferred_username": "mallory", "groups": ["sales"]}
    else:
        setattr(provider, misbehave, True)
    http = browser()
    refused = sign_in(server, http)
    assert refused.status_code == 403 and expected in refused.text, refused.text
    assert "flowrun_console" not in http.cookies
    assert http.get(server.url + "/console/", allow_redirects=False).status_code == 303


@pytest.mark.parametrize("claims", [
    {"aud": [CLIENT_ID, "payroll-app"], "azp": "payroll-app"},  # issued to another client
    {"aud": [CLIENT_ID, "payroll-app"]},  # several audiences and no authorized party
])
def test_an_id_token_issued_to_another_client_is_refused(
        server: Running, provider: LoopbackProvider, claims: dict[str, object]) -> None:
    provider.user = {"preferred_username": "olga", "groups": ["flowrun-ops"], **claims}
    http = browser()
    refused = sign_in(server, http)
    assert refused.status_code == 403 and "issued to another client" in refused.text, \
        refused.text
    assert "flowrun_console" not in http.cookies
    provider.user = {"preferred_username": "olga", "groups": ["flowrun-ops"],
                     "aud": [CLIENT_ID, "payroll-app"], "azp": CLIENT_ID}
    assert sign_in(server, browser()).status_code == 303  # for this client, beside another


def test_a_key_the_provider_withdrew_is_not_trusted_past_the_key_cache_age(
        server: Running, provider: LoopbackProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.console import oidc

    assert sign_in(server, browser()).status_code == 303  # the provider's keys are now cached
    leaked = provider.key
    # the provider withdraws the leaked key (same key id, a new key in the JWKS); a token
    # signed with the leaked one must stop being accepted once the cached set is old
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig",
                                                         "alg": "RS256"})
    provider.signing_key = leaked
    now = time.monotonic()
    monkeypatch.setattr(oidc, "clock", lambda: now + oidc.KEYS_MAX_AGE + 1)
    refused = sign_in(server, browser())
    assert refused.status_code == 403 and "bad_signature" in refused.text, refused.text
    provider.signing_key = None  # tokens signed with the new key are accepted
    assert sign_in(server, browser()).status_code == 303


def test_a_callback_not_started_in_this_browser_is_refused(server: Running,
                                                           provider: LoopbackProvider) -> None:
    victim = browser()
    start = victim.get(server.url + "/console/oidc/login", allow_redirects=False)
    back = victim.get(start.headers["location"], allow_redirects=False)
    attacker = browser()  # the callback URL, opened without the login's cookie
    refused = attacker.get(back.headers["location"], allow_redirects=False)
    assert refused.status_code == 403 and "not started here" in refused.text
    assert "flowrun_console" not in attacker.cookies


@pytest.mark.parametrize("cookie", [
    {"state": 1, "nonce": "n", "verifier": "v", "next": "/console/"},
    {"state": "s", "nonce": "n", "verifier": "v", "next": ["/console/"]},
    ["not", "an", "object"], "not base64 json", {"state": "s"},
])
def test_a_login_cookie_that_is_not_ours_is_a_refused_login(
        server: Running, provider: LoopbackProvider, cookie: object) -> None:
    http = browser()
    text = cookie if isinstance(cookie, str) else base64.urlsafe_b64encode(
        json.dumps(cookie).encode()).decode()
    http.cookies.set("flowrun_oidc", text, path="/console/oidc")
    refused = http.get(server.url + "/console/oidc/callback?code=c&state=s",
                       allow_redirects=False)
    assert refused.status_code == 403 and "not started here" in refused.text, refused.text


def test_an_unreachable_provider_is_a_clear_page(tmp_path: Path) -> None:
    app = console_app(tmp_path, token=None, user=None, password=None)
    app.settings.console_oidc_issuer = "http://127.0.0.1:9/realm"  # nothing listens there
    app.settings.console_oidc_client_id = CLIENT_ID
    app.settings.console_oidc_roles = {"flowrun-ops": "operator"}
    with serving(app) as running:
        page = browser().get(running.url + "/console/oidc/login", allow_redirects=False)
        assert page.status_code == 502
        assert "could not be read at http://127.0.0.1:9/realm/.well-known" in page.text


@pytest.mark.parametrize(("given", "expected"), [
    ({"console_oidc_issuer": "https://sso.example.com"}, "CLIENT_ID together"),
    ({"console_oidc_issuer": "https://sso.example.com", "console_oidc_client_id": "c"},
     "FLOWRUN_CONSOLE_OIDC_ROLES is empty"),
    ({"console_oidc_issuer": "https://sso.example.com", "console_oidc_client_id": "c",
      "console_oidc_roles": {"ops": "superuser"}}, "console_oidc_roles.ops"),
])
def test_half_an_oidc_setting_is_refused_when_the_settings_load(given: dict[str, object],
                                                               expected: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**given)  # type: ignore[arg-type]
    assert expected in str(raised.value)
