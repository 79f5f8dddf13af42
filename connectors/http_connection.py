"""Named HTTP connections: the ``http:`` of a connection file, and its runtime side.

`HttpConnection` is what a connection file may say under ``http:``, registered as the
connection kind ``http`` (`CONNECTION`). The runtime side is one pooled Session and its
credentials, made once per connection (`Connections.runtime`) and shared by every step and
poll that names it, in every thread. The Session carries the TLS options (CA bundle, client
certificate for mTLS); `HttpClient.send` adds the default headers and the credentials. An OAuth2
token is fetched once, shared under a lock, kept until ``refresh_before`` its expiry, and fetched
again ONCE when the server answers 401 — the request is then sent once more (unless the
provider handed back the same token), and a second 401 fails the step with kind ``auth``,
which no retry policy repeats. Tokens are registered with the secrets' redactor as soon as
they arrive, so no log line or run record shows one.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import requests
from pydantic import Field, model_validator
from requests.structures import CaseInsensitiveDict

from connectors.http_errors import NOT_RETRYABLE, classify
from engine.plugin import (
    REF,
    BuildContext,
    ConnectionContext,
    ConnectionKind,
    Duration,
    HttpAdapter,
    HttpTransport,
    Model,
    Path,
    Secret,
    StepError,
    UnresolvedReference,
    interpolate,
    interpolate_url,
    one_of,
    resolve_file,
    secret_ref,
)

monotonic = time.monotonic  # the token cache's clock; tests move it through this name
ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: header names whose value is a credential, whatever auth: says
CREDENTIAL_HEADER = re.compile(r"authorization|api-?key|token|secret|password", re.IGNORECASE)




class Timeouts(Model):
    connect: Duration = Field(5.0, description="Longest wait for the connection.")
    read: Duration = Field(30.0, description="Longest wait for the response.")


class Basic(Model):
    username: str = Field(description="User name; may use ${secret:...}.")
    password: Secret = Field(description="Password: '${secret:NAME}'.")


class ApiKey(Model):
    header: str | None = Field(None, description="Header carrying the key, e.g. X-Api-Key.")
    query: str | None = Field(None, description="Query parameter carrying the key.")
    value: Secret = Field(description="The key: '${secret:NAME}'.")

    @model_validator(mode="after")
    def _where(self) -> ApiKey:
        one_of(self, ("header", "query"), "api_key")
        return self


class OAuth2(Model):
    """OAuth2 client credentials: a token fetched once and shared until shortly before expiry."""

    token_url: str = Field(description="Token endpoint, e.g. '${env:ERP_URL}/oauth/token'.")
    client_id: str = Field(description="Client id; may use ${secret:...}.")
    client_secret: Secret = Field(description="Client secret: '${secret:NAME}'.")
    scope: str | None = Field(None, description="Space-separated scopes to ask for.")
    audience: str | None = Field(None, description="Audience parameter some providers need.")
    client_auth: Literal["basic", "body"] = Field(
        "basic", description="Send the client credentials as HTTP basic (default) or in the "
                             "form body.")
    refresh_before: Duration = Field(60.0, description="Fetch a new token this long before "
                                                       "the old one expires.")


class ConnectionAuth(Model):
    basic: Basic | None = Field(None, description="HTTP basic authentication.")
    bearer: Secret | None = Field(None, description="A fixed bearer token: '${secret:NAME}'.")
    api_key: ApiKey | None = Field(None, description="An API key in a header or the query.")
    oauth2: OAuth2 | None = Field(None, description="OAuth2 client credentials.")

    @model_validator(mode="after")
    def _one(self) -> ConnectionAuth:
        one_of(self, ("basic", "bearer", "api_key", "oauth2"), "auth")
        return self


class Tls(Model):
    verify: bool = Field(True, description="Check the server certificate (leave on).")
    ca_bundle: str | None = Field(None, description="PEM file of the CAs to trust instead of "
                                                    "the system's.")
    client_cert: str | None = Field(None, description="PEM client certificate for mTLS.")
    client_key: str | None = Field(None, description="PEM key of the client certificate.")

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self


class HttpConnection(Model):
    """The ``http:`` part of a connection file: an HTTP API."""

    base_url: str = Field(description="Base URL a call's path: is joined to.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent on every request; a credential header "
                                          "(Authorization, X-Api-Key, ...) must use "
                                          "${secret:...}.")
    timeout: Timeouts = Field(default_factory=Timeouts, description="Default timeouts.")
    tls: Tls = Field(default_factory=Tls, description="Certificates: CA bundle, mTLS.")
    auth: ConnectionAuth | None = Field(None, description="Credentials: basic, bearer, "
                                                          "api_key or oauth2.")


def check(config: HttpConnection, ctx: ConnectionContext) -> None:
    """Default headers that carry a credential (Authorization, X-Api-Key, ...) written out,
    and certificate files that do not exist — warnings for those, since the files may be
    deployed only where the workers run; a call fails by name if one is still missing then."""
    for name, value in config.headers.items():
        if CREDENTIAL_HEADER.search(name):
            try:
                secret_ref(value)
            except ValueError as exc:
                ctx.problem(("headers", name), str(exc))
    for key in ("ca_bundle", "client_cert", "client_key"):
        value = getattr(config.tls, key)
        where = ("tls", key)
        if value is None:
            continue
        if any(m["kind"] == "secret" for m in REF.finditer(value)):
            ctx.problem(where, "a certificate file name is not a secret; write the path, or "
                               "use ${env:NAME}")
        elif not REF.search(value) and not resolve_file(value, ctx.folder).is_file():
            ctx.problem(where, f"no such file {resolve_file(value, ctx.folder)}; a relative "
                               "name is read from the connections folder", severity="warning")


CONNECTION = ConnectionKind(name="http", config=HttpConnection, check=check,
                            description="An HTTP API: base URL, default headers, timeouts, "
                                        "TLS and credentials (basic, bearer, api_key, oauth2).")


class HttpClient:
    def __init__(self, name: str, config: HttpConnection, folder: FsPath | None = None):
        self.name, self.config = name, config
        self.timeout = (config.timeout.connect, config.timeout.read)
        session = requests.Session()
        adapter = HttpAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False  # a proxy or CA bundle from the environment must not apply
        self._tls(session, config.tls, folder)
        self.session = session
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.token_requests = 0

    def _tls(self, session: requests.Session, tls: Tls, folder: FsPath | None) -> None:
        """Certificates on the session; a missing file fails the step by name here, where
        requests would raise a bare OSError at send time."""
        files: dict[str, str] = {}
        for key in ("ca_bundle", "client_cert", "client_key"):
            value = getattr(tls, key)
            if value is None:
                continue
            try:
                path = resolve_file(interpolate(value, _no_secret), folder)
            except UnresolvedReference as exc:
                raise StepError(f"connection '{self.name}': tls.{key}: {exc}",
                                kind="config") from None
            if not path.is_file():
                raise StepError(f"connection '{self.name}': tls.{key}: no such file {path}",
                                kind="config")
            files[key] = str(path)
        session.verify = files.get("ca_bundle", True) if tls.verify else False
        if "client_cert" in files:
            session.cert = (files["client_cert"], files["client_key"]) \
                if "client_key" in files else files["client_cert"]

    def url(self, path: str, secrets: Callable[[str], str]) -> str:
        """*path* joined to the base URL: one slash between them, the base URL's query kept
        and the path's own query added. An absolute URL is refused, since the connection's
        credentials would go to whatever host it names."""
        if ABSOLUTE.match(path):
            raise StepError(f"connection '{self.name}': path '{path}' is a full URL; give a path "
                            "relative to the connection's base_url, or use url: without "
                            "connection:", kind="config")
        try:
            base = urlsplit(interpolate_url(self.config.base_url, secrets))
        except UnresolvedReference as exc:
            raise StepError(f"connection '{self.name}': base_url: {exc}", kind="config") \
                from None
        path, _, fragment = path.partition("#")
        own_path, _, own_query = path.partition("?")
        joined = base.path.rstrip("/") + "/" + own_path.lstrip("/") if own_path else base.path
        query = "&".join(q for q in (base.query, own_query) if q)
        return urlunsplit((base.scheme, base.netloc, joined or "/", query, fragment))

    def owns(self, url: str, secrets: Callable[[str], str]) -> bool:
        """Whether *url* is on the connection's own scheme, host and port — the only place
        its credentials may go (a partner's next-page link could name any host)."""
        base = urlsplit(interpolate_url(self.config.base_url, secrets))
        target = urlsplit(url)
        return (target.scheme, target.netloc) == (base.scheme, base.netloc)

    def send(self, method: str, url: str, *, secrets: Callable[[str], str],
             session: HttpTransport, **kwargs: Any) -> requests.Response:
        """Send through *session* (the connection's own `session`, or a transport handed to
        the step) with the connection's headers and credentials; see the module docstring."""
        kwargs.setdefault("timeout", self.timeout)
        # the step's own headers win over the connection's, whatever their letter case
        headers = kwargs["headers"] = CaseInsensitiveDict(kwargs.get("headers") or {})
        try:
            for key, value in self.config.headers.items():
                headers.setdefault(key, interpolate(value, secrets))
            token = self._authorize(kwargs, secrets, session)
        except UnresolvedReference as exc:
            raise StepError(f"connection '{self.name}': {exc}", kind="config") from None
        response = session.request(method, url, **kwargs)
        if response.status_code == 401 and token is not None:
            # the token may have been revoked before its expiry: one fresh token, one retry
            fresh = self._bearer(secrets, session, stale=token)
            if fresh == token:  # the provider gave the same token again: no use resending
                return response
            response.close()
            headers["Authorization"] = "Bearer " + fresh
            response = session.request(method, url, **kwargs)
            if response.status_code == 401:
                response.close()
                raise StepError(f"connection '{self.name}': {method} {url} answered 401 "
                                "Unauthorized even with a freshly fetched OAuth2 token; check "
                                "the client's permissions (scope, audience) at the provider",
                                kind="auth", status=401)
        return response

    def _authorize(self, kwargs: dict[str, Any], secrets: Callable[[str], str],
                   session: HttpTransport) -> str | None:
        auth = self.config.auth
        headers = kwargs["headers"]
        if auth is None:
            return None
        if auth.basic is not None:
            if "Authorization" not in headers:  # requests' auth= would replace the step's own
                kwargs.setdefault("auth", (interpolate(auth.basic.username, secrets),
                                           interpolate(auth.basic.password, secrets)))
        elif auth.bearer is not None:
            headers.setdefault("Authorization", "Bearer " + interpolate(auth.bearer, secrets))
        elif auth.api_key is not None:
            key = interpolate(auth.api_key.value, secrets)
            if auth.api_key.header:
                headers.setdefault(auth.api_key.header, key)
            else:
                params = dict(kwargs.get("params") or {})
                params[str(auth.api_key.query)] = key
                kwargs["params"] = params
        elif auth.oauth2 is not None and "Authorization" not in headers:
            token = self._bearer(secrets, session)
            headers["Authorization"] = f"Bearer {token}"
            return token
        return None

    def _bearer(self, secrets: Callable[[str], str], session: HttpTransport,
                stale: str | None = None) -> str:
        # one fetch for all threads: the others wait on the lock and take the fresh token
        with self._lock:
            if self._token is not None and self._token != stale and \
                    monotonic() < self._expires_at:
                return self._token
            token, lifetime = self._fetch(secrets, session)
            redactor = getattr(secrets, "redactor", None)
            if redactor is not None:
                redactor.add(token)
            assert self.config.auth is not None and self.config.auth.oauth2 is not None
            self._token = token
            if lifetime is None:  # no expires_in: kept until the server answers 401
                self._expires_at = float("inf")
            else:  # half the lifetime at most, so a short-lived token is still reused
                margin = min(self.config.auth.oauth2.refresh_before, lifetime / 2)
                self._expires_at = monotonic() + lifetime - margin
            return token

    def _fetch(self, secrets: Callable[[str], str],
               session: HttpTransport) -> tuple[str, float | None]:
        assert self.config.auth is not None and self.config.auth.oauth2 is not None
        oauth = self.config.auth.oauth2
        url = interpolate(oauth.token_url, secrets)
        client_id = interpolate(oauth.client_id, secrets)
        client_secret = interpolate(oauth.client_secret, secrets)
        form = {"grant_type": "client_credentials"}
        form.update({k: v for k, v in (("scope", oauth.scope), ("audience", oauth.audience))
                     if v})
        kwargs: dict[str, Any] = {"data": form, "timeout": self.timeout,
                                  "headers": {"Accept": "application/json"},
                                  "allow_redirects": False}
        if oauth.client_auth == "basic":
            kwargs["auth"] = (client_id, client_secret)
        else:
            form.update(client_id=client_id, client_secret=client_secret)
        what = f"OAuth2 token request of connection '{self.name}'"
        self.token_requests += 1
        try:
            response = session.post(url, **kwargs)
        except (requests.RequestException, ValueError) as exc:
            kind, message = classify(exc)
            raise StepError(f"{what}: {message}", kind=kind,
                            retryable=kind not in NOT_RETRYABLE) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not 200 <= response.status_code < 300:
            # the provider's error code helps ('invalid_client'); its description may echo input
            code = body.get("error") if isinstance(body, dict) else None
            raise StepError(f"{what}: {url} answered {response.status_code}"
                            + (f" ({code})" if isinstance(code, str) else ""),
                            kind="auth" if response.status_code in (400, 401, 403) else "http",
                            status=response.status_code,
                            retryable=response.status_code == 429 or response.status_code >= 500)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise StepError(f"{what}: the answer has no access_token", kind="invalid_response",
                            retryable=True)
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        return token, float(lifetime) if isinstance(lifetime, int | float | str) and \
            str(lifetime).replace(".", "", 1).isdigit() else None


def client_for(ctx: BuildContext, name: str, path: Path) -> Callable[[], HttpClient] | None:
    """At load: check that *name* is an HTTP connection (a problem at *path* if not); returns
    how to get its one shared client at run time."""
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(path, f"no connection '{name}': named connections are not loaded here")
        return None
    config = connections.lookup(name, "http", ctx, path)
    if config is None:
        return None
    return lambda: connections.runtime(name, "http",
                                       lambda: HttpClient(name, config, connections.folder))


def _no_secret(name: str) -> str:
    raise UnresolvedReference("secret", name)
