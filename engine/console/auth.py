"""Who may use the console and its API, with which role, and proof that a state change was meant.

Operators are named. A users file (``FLOWRUN_CONSOLE_USERS``, `engine.console.users`) gives each
one a password and a role — viewer, operator or admin; ``FLOWRUN_CONSOLE_TOKEN`` (the principal
``token``) and ``FLOWRUN_CONSOLE_USER`` with ``FLOWRUN_CONSOLE_PASSWORD`` still work, each as an
admin. A browser logs in once through the login form and gets a random session id in an
HttpOnly, SameSite=Strict cookie; the session lives in the shared store
(`engine.console.sessions`), so any ``flowrun serve`` of the deployment knows it and a logout on
one ends it on all. A session of a users-file user takes its role from the file at every
request: a user removed or demoted there loses the access at once. A session also keeps a
mark of the credential it was made with, so a new password, a rotated token or a changed
settings password ends the sessions made with the old one. Scripts send the
credentials on every request instead (``Authorization: Bearer TOKEN`` or ``Basic``).

CSRF: a cookie rides along with requests that other sites make the browser send, so every
state-changing request authenticated by the session cookie must also carry the session's CSRF
token (a form field or the ``X-CSRF-Token`` header), compared in constant time. A request
authenticated by an ``Authorization`` header needs none: browsers never add that header on
their own — the server never answers with a ``WWW-Authenticate: Basic`` challenge that would
teach a browser to. The login form has a token of its own, in a short-lived cookie.

Guessing is throttled (`engine.console.throttle`, shared like the sessions): every credential
checked — at the login form or in an ``Authorization`` header — counts against the client's
address and the user name it names; too many failures and `Throttled` is raised before the
credential is looked at, which the pages and the API answer with 429 and ``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from engine.console import throttle
from engine.console.sessions import Session, session_key
from engine.console.state import shared_state
from engine.console.users import Role, Users, allows

if TYPE_CHECKING:
    from engine.console.oidc import Provider
    from engine.settings import Settings
    from engine.store.base import Store

SESSION_COOKIE = "flowrun_console"
LOGIN_COOKIE = "flowrun_login"
SESSION_TTL = 8 * 3600.0  # a working day; then the operator logs in again
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass
class Principal:
    """An authenticated caller: by session cookie (needs CSRF tokens) or by header."""

    user: str
    role: Role
    source: str  # token, settings, file (the users file) or oidc
    session: Session | None = None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def may(self, needed: Role) -> bool:
        return allows(self.role, needed)


class Throttled(Exception):
    """Too many failed credentials from this caller: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed attempts; try again in {retry_after} s")
        self.retry_after = retry_after


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _mark(*credential: str) -> str:
    """A short, slow digest of a configured credential that a session keeps, so a session made
    with a token or password that was since changed ends; slow (scrypt, once per process) so
    a copy of the store does not make a weak password quick to guess."""
    return hashlib.scrypt("\0".join(credential).encode("utf-8"),
                          salt=b"flowrunner console session", n=1 << 14, r=8, p=1,
                          dklen=8).hex()


class ConsoleAuth:
    def __init__(self, settings: Settings, store: Store | None = None):
        self.token = settings.console_token.get_secret_value() if settings.console_token else None
        self.user = settings.console_user
        self.password = (settings.console_password.get_secret_value()
                         if settings.console_password else None)
        # a users file that cannot be read stops the server here, named (UsersError)
        self.users = Users(settings.console_users) if settings.console_users else None
        self.oidc: Provider | None = None
        if settings.console_oidc_issuer:
            from engine.console.oidc import Provider

            self.oidc = Provider(settings)  # OidcError without the optional extra
        self.sessions, self.throttle = shared_state(store)
        # what a session made with each configured credential keeps (see `login`)
        self._token_mark = _mark(self.token) if self.token else ""
        self._settings_mark = (_mark(self.user, self.password) if self.user and self.password
                               else "")

    @property
    def enabled(self) -> bool:
        return (bool(self.token) or bool(self.user and self.password) or self.users is not None
                or self.oidc is not None)

    # -- credentials ---------------------------------------------------------------------------
    def check(self, *, token: str = "", user: str = "", password: str = "") -> Principal | None:
        """Who these credentials log in as, or None."""
        if self.token and token and _same(token, self.token):
            return Principal("token", "admin", "token")
        if not (user and password):
            return None
        if self.user and self.password:
            # both compared, always: the time taken does not tell which one was wrong
            ok_user, ok_password = _same(user, self.user), _same(password, self.password)
            if ok_user and ok_password:
                return Principal(self.user, "admin", "settings")
        if self.users is not None:
            role = self.users.check(user, password)
            if role is not None:
                return Principal(user, role, "file")
        return None

    def attempt(self, request: Request, *, token: str = "", user: str = "",
                password: str = "") -> Principal | None:
        """`check` under the throttle: raises `Throttled` for a caller with too many recent
        failures (the credential is then not checked at all)."""
        client = request.client.host if request.client else "unknown"
        keys = [f"addr:{client}"] + ([f"user:{user}"] if user else [])
        wait = self.throttle.blocked(keys)
        if wait is not None:
            raise Throttled(wait)
        who = self.check(token=token, user=user, password=password)
        if who is None:
            self.throttle.failed(keys)
        else:
            self.throttle.succeeded(keys)
        return who

    def _header(self, request: Request) -> Principal | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self.attempt(request, token=value.strip())
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except ValueError:
                user = password = ""  # unreadable: a failed attempt all the same
            return self.attempt(request, user=user, password=password)
        return self.attempt(request)  # another scheme: a failed attempt

    def principal(self, request: Request) -> Principal | None:
        """Who sent *request*, or None; raises `Throttled` (see `attempt`)."""
        if not self.enabled:
            return None
        if "authorization" in request.headers:
            return self._header(request)
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = self.sessions.get(session_key(sid)) if sid else None
        if session is None:
            return None
        role: Role | None = session.role  # type: ignore[assignment]
        source, _, mark = session.source.partition(":")
        if source == "file":  # the file decides now: removed, demoted or a new password
            role = (self.users.role_of(session.user) if self.users
                    and _same(mark, self.users.mark_of(session.user) or "") else None)
        elif not self._still_configured(session.user, source, mark):
            role = None
        if role is None:
            self.sessions.delete(session_key(sid))
            return None
        return Principal(session.user, role, source, session)

    def _still_configured(self, user: str, source: str, mark: str) -> bool:
        """Whether the credential a session was made with is still the configured one."""
        if source == "token":
            return bool(self.token) and _same(mark, self._token_mark)
        if source == "settings":
            return user == self.user and bool(self._settings_mark) \
                and _same(mark, self._settings_mark)
        return source == "oidc" and self.oidc is not None

    def _mark_of(self, who: Principal) -> str:
        if who.source == "file":
            return (self.users.mark_of(who.user) if self.users else None) or ""
        return {"token": self._token_mark, "settings": self._settings_mark}.get(who.source, "")

    # -- sessions ------------------------------------------------------------------------------
    def login(self, response: Response, who: Principal, secure: bool) -> Session:
        sid = secrets.token_urlsafe(32)
        # the source keeps a mark of the credential used: a session ends when it changes
        session = Session(who.user, who.role, f"{who.source}:{self._mark_of(who)}",
                          secrets.token_urlsafe(32), throttle.clock() + SESSION_TTL)
        self.sessions.put(session_key(sid), session)
        response.set_cookie(SESSION_COOKIE, sid, max_age=int(SESSION_TTL), path="/",
                            httponly=True, samesite="strict", secure=secure)
        response.delete_cookie(LOGIN_COOKIE, path="/console/login")
        return session

    def logout(self, request: Request, response: Response) -> None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        if sid:
            self.sessions.delete(session_key(sid))
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    # -- CSRF ----------------------------------------------------------------------------------
    @staticmethod
    def csrf_ok(principal: Principal, given: str) -> bool:
        if principal.session is None:
            return True  # header-authenticated: no ambient credential to abuse
        return bool(given) and _same(given, principal.session.csrf)

    @staticmethod
    def login_token(request: Request) -> str:
        """The login form's CSRF token: the one in its cookie, or a new one (no session yet)."""
        return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)

    @staticmethod
    def set_login_token(request: Request, response: Response, token: str) -> None:
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/console/login",
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    @staticmethod
    def login_token_ok(request: Request, given: str) -> bool:
        expected = request.cookies.get(LOGIN_COOKIE, "")
        return bool(expected) and bool(given) and _same(given, expected)
