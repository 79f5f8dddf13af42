"""Console login through an OpenID Connect provider: the authorization code flow with PKCE.

The login page links to ``/console/oidc/login``, which sends the browser to the provider's
authorization endpoint with a fresh ``state``, ``nonce`` and PKCE verifier (S256). Those three
ride in a short-lived HttpOnly cookie of their own (SameSite=Lax: the provider's redirect back
is a top-level navigation from another site), not in this server's memory, so the callback may
land on any server of the deployment. ``/console/oidc/callback`` checks the state, exchanges the
code at the token endpoint (with the verifier, and the client secret if there is one), and
verifies the ID token: RS256/ES256 signature against the provider's JWKS, issuer, audience
(and the authorized party, with several audiences), expiry and nonce. The user claim names
the operator; the role claim's values are mapped to a role by ``FLOWRUN_CONSOLE_OIDC_ROLES``
(the highest match wins; none, no login). Then an ordinary console session begins
(`ConsoleAuth.login`).

HTTP is ``requests``; JOSE (JWKS, JWS, claims) is ``joserfc``, a maintained library that does
only that — Authlib's Starlette client would bring httpx and a cookie-signed session middleware
of its own beside the console's sessions. Discovery and keys are fetched on first use and
cached; an unknown key id fetches the keys again once (the provider rotated them), and keys
older than `KEYS_MAX_AGE` are fetched again (a key the provider withdrew is not trusted on).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

from engine.console.users import RANK, Role

if TYPE_CHECKING:
    from engine.settings import Settings

COOKIE = "flowrun_oidc"
COOKIE_TTL = 600  # seconds an operator has to get through the provider's login
TIMEOUT = 10.0
ALGORITHMS = ["RS256", "ES256", "PS256"]
#: seconds the provider's keys are trusted before they are fetched again: a key the provider
#: withdrew (leaked, rotated out) stops being accepted within this time
KEYS_MAX_AGE = 3600.0
clock = time.monotonic  # the key cache's clock; tests move it through this name


class OidcError(Exception):
    """A login through the provider failed; the message says why, for the operator's page."""


@dataclass
class Pending:
    state: str
    nonce: str
    verifier: str
    next: str

    def cookie(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self)).encode()).decode()

    @classmethod
    def from_cookie(cls, value: str) -> Pending | None:
        """The pending login in *value*, or None for a cookie this server did not write."""
        try:
            fields = json.loads(base64.urlsafe_b64decode(value.encode()))
        except ValueError:
            return None
        if not (isinstance(fields, dict) and set(fields) == {"state", "nonce", "verifier", "next"}
                and all(isinstance(v, str) for v in fields.values())):
            return None
        return cls(**fields)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class Provider:
    def __init__(self, settings: Settings):
        try:
            import joserfc  # noqa: F401  # the optional extra: refused at start, not at login
        except ImportError:
            raise OidcError("FLOWRUN_CONSOLE_OIDC_ISSUER needs flowrunner-ipaas[oidc]: pip "
                            "install 'flowrunner-ipaas[oidc]'") from None
        assert settings.console_oidc_issuer and settings.console_oidc_client_id
        self.issuer = settings.console_oidc_issuer.rstrip("/")
        self.client_id = settings.console_oidc_client_id
        self.secret = (settings.console_oidc_client_secret.get_secret_value()
                       if settings.console_oidc_client_secret else None)
        self.scopes = settings.console_oidc_scopes
        self.user_claim = settings.console_oidc_user_claim
        self.role_claim = settings.console_oidc_role_claim
        self.roles = dict(settings.console_oidc_roles)
        self.redirect_url = settings.console_oidc_redirect_url
        self.http = requests.Session()
        self.http.trust_env = False
        self._meta: dict[str, Any] | None = None
        self._keys: Any = None
        self._keys_at = 0.0
        self._lock = threading.Lock()

    # -- the provider's documents ------------------------------------------------------------
    def _get(self, url: str) -> Any:
        try:
            response = self.http.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(f"the identity provider could not be read at {url}: "
                            f"{type(exc).__name__}") from None

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None:
                meta = self._get(self.issuer + "/.well-known/openid-configuration")
                if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
                    raise OidcError(f"the provider's discovery document names the issuer "
                                    f"{meta.get('issuer')!r}, not {self.issuer!r}")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(meta.get(key), str):
                        raise OidcError(f"the provider's discovery document has no {key}")
                self._meta = meta
            return self._meta

    def _key_set(self, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            if self._keys is None or refresh or clock() - self._keys_at > KEYS_MAX_AGE:
                assert self._meta is not None
                self._keys = KeySet.import_key_set(self._get(self._meta["jwks_uri"]))
                self._keys_at = clock()
            return self._keys

    # -- the flow ------------------------------------------------------------------------------
    def start(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """The authorization URL to send the browser to, and what its cookie keeps."""
        meta = self.metadata()
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                          secrets.token_urlsafe(48), next_path)
        query = urlencode({"response_type": "code", "client_id": self.client_id,
                           "redirect_uri": redirect_uri, "scope": self.scopes,
                           "state": pending.state, "nonce": pending.nonce,
                           "code_challenge": _challenge(pending.verifier),
                           "code_challenge_method": "S256"})
        endpoint = meta["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", pending

    def finish(self, params: dict[str, str], pending: Pending | None,
               redirect_uri: str) -> tuple[str, Role]:
        """The operator's name and role after the provider sent the browser back."""
        if "error" in params:
            raise OidcError(f"the identity provider refused the login: "
                            f"{params.get('error_description') or params['error']}")
        state = params.get("state", "")
        if pending is None or not state or not hmac.compare_digest(state, pending.state):
            raise OidcError("the login went stale or was not started here; log in again")
        code = params.get("code")
        if not code:
            raise OidcError("the identity provider sent no authorization code")
        claims = self._verify(self._exchange(code, pending.verifier, redirect_uri),
                              pending.nonce)
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise OidcError(f"the ID token has no {self.user_claim!r} claim to name you by")
        return user, self.role_of(user, claims.get(self.role_claim))

    def role_of(self, user: str, values: Any) -> Role:
        given = [values] if isinstance(values, str) else values if isinstance(values,
                                                                               list) else []
        matched = [self.roles[v] for v in given if isinstance(v, str) and v in self.roles]
        if not matched:
            raise OidcError(f"{user} has no console role: none of the values of the "
                            f"{self.role_claim!r} claim is in FLOWRUN_CONSOLE_OIDC_ROLES")
        return max(matched, key=lambda r: RANK[r])

    def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": verifier,
                "client_id": self.client_id}
        auth = (self.client_id, self.secret) if self.secret else None  # client_secret_basic
        try:
            response = self.http.post(self.metadata()["token_endpoint"], data=form, auth=auth,
                                      timeout=TIMEOUT, headers={"Accept": "application/json"})
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(f"the identity provider's token endpoint failed: "
                            f"{type(exc).__name__}") from None
        if not isinstance(body, dict):
            raise OidcError("the identity provider did not issue an ID token: its answer is "
                            "not a JSON object")
        if response.status_code != 200 or not isinstance(body.get("id_token"), str):
            reason = body.get("error_description") or body.get("error") or response.status_code
            raise OidcError(f"the identity provider did not issue an ID token: {reason}")
        return str(body["id_token"])

    def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=ALGORITHMS)
            except JoseError:  # perhaps a rotated key: fetch the set again, once
                token = jwt.decode(id_token, self._key_set(refresh=True), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.metadata()["issuer"]},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce}).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise OidcError(f"the ID token was refused: {exc}") from None
        # OpenID Connect Core 3.1.3.7: with several audiences the authorized party must be
        # this client, and an authorized party given is this client
        aud, azp = token.claims.get("aud"), token.claims.get("azp")
        several = isinstance(aud, list) and len(aud) > 1
        if (azp is not None or several) and azp != self.client_id:
            raise OidcError("the ID token was refused: it was issued to another client "
                            f"(azp {azp!r})")
        return dict(token.claims)
