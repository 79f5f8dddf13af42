"""An OpenID Connect provider of the tests' own, on loopback: discovery document, authorization
endpoint (which logs in whoever the test says, at once), token endpoint checking the client's
secret and the PKCE verifier, and a JWKS with a real RSA key. It can be told to misbehave:
sign with another key, or answer with another nonce."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

CLIENT_ID, CLIENT_SECRET = "flowrun-console", "client-secret-0123456789"


@dataclass
class Grant:
    challenge: str
    nonce: str
    redirect_uri: str
    claims: dict[str, Any]


@dataclass
class LoopbackProvider:
    server: HTTPServer
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={
        "kid": "test-key-1", "use": "sig", "alg": "RS256"}))
    #: who logs in at the authorization endpoint
    user: dict[str, Any] = field(default_factory=lambda: {"preferred_username": "olga",
                                                          "groups": ["flowrun-ops"]})
    forge: bool = False  # sign with a key the JWKS does not hold
    signing_key: RSAKey | None = None  # sign with this key instead (one the JWKS dropped)
    wrong_nonce: bool = False
    list_answer: bool = False  # the token endpoint answers 200 with a JSON list
    grants: dict[str, Grant] = field(default_factory=dict)
    verifiers_checked: int = 0

    @property
    def issuer(self) -> str:
        return self.server.url_for("/realm").rstrip("/")

    def install(self) -> LoopbackProvider:
        route = self.server.expect_request
        route("/realm/.well-known/openid-configuration").respond_with_json({
            "issuer": self.issuer, "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"]})
        route("/realm/jwks").respond_with_handler(
            lambda _: Response(json.dumps({"keys": [self.key.as_dict(private=False)]}),
                               content_type="application/json"))
        route("/realm/authorize").respond_with_handler(self.authorize)
        route("/realm/token", method="POST").respond_with_handler(self.token)
        return self

    def authorize(self, request: Request) -> Response:
        q = request.args
        if (q.get("client_id") != CLIENT_ID or q.get("response_type") != "code"
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")):
            return Response("bad authorization request", status=400)
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(q["code_challenge"], q["nonce"], q["redirect_uri"],
                                  dict(self.user))
        back = {"code": code, "state": q["state"]}
        return Response(status=302, headers={"Location": f"{q['redirect_uri']}?"
                                                         f"{urlencode(back)}"})

    def token(self, request: Request) -> Response:
        if self.list_answer:
            return Response('["not", "an", "object"]', content_type="application/json")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _error(401, "invalid_client")
        form = request.form
        grant = self.grants.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or form.get("grant_type") != "authorization_code":
            return _error(400, "invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error(400, "invalid_grant")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if digest.decode().rstrip("=") != grant.challenge:
            return _error(400, "invalid_grant")  # PKCE: not the browser that started
        self.verifiers_checked += 1
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "user-" + str(grant.claims.get(
            "preferred_username")), "iat": now, "exp": now + 300,
            "nonce": "another" if self.wrong_nonce else grant.nonce, **grant.claims}
        key = (RSAKey.generate_key(2048, parameters={"kid": "test-key-1"}) if self.forge
               else self.signing_key or self.key)
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key-1"}, claims, key)
        return Response(json.dumps({"access_token": "at", "token_type": "Bearer",
                                    "id_token": id_token}), content_type="application/json")


def _error(status: int, error: str) -> Response:
    return Response(json.dumps({"error": error}), status=status, content_type="application/json")
