"""Who may use the console and its API, and proof that a state change was meant.

Credentials come from settings: ``FLOWRUN_CONSOLE_TOKEN``, or ``FLOWRUN_CONSOLE_USER`` with
``FLOWRUN_CONSOLE_PASSWORD`` (either, or both). A browser logs in once through the login form
and gets a random session id in an HttpOnly, SameSite=Strict cookie; sessions live in this
process's memory, so a restart asks operators to log in again. Scripts send the credentials
on every request instead (``Authorization: Bearer TOKEN`` or ``Basic``).

CSRF: a cookie rides along with requests that other sites make the browser send, so every
state-changing request authenticated by the session cookie must also carry the session's CSRF
token (a form field or the ``X-CSRF-Token`` header), compared in constant time. A request
authenticated by an ``Authorization`` header needs none: browsers never add that header on
their own — the server never answers with a ``WWW-Authenticate: Basic`` challenge that would
teach a browser to. The login form has a token of its own, in a short-lived cookie.

Guessing is throttled (`engine.console.throttle`): every credential checked — at the login form
or in an ``Authorization`` header — counts against the client's address and the user name it
names; too many failures and `Throttled` is raised before the credential is looked at, which
the pages and the API answer with 429 and ``Retry-After``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from engine.console.throttle import Throttle
from engine.settings import Settings

SESSION_COOKIE = "flowrun_console"
LOGIN_COOKIE = "flowrun_login"
SESSION_TTL = 8 * 3600.0  # a working day; then the operator logs in again
MAX_SESSIONS = 10_000  # the oldest are dropped first; only successful logins create sessions
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass
class Session:
    user: str
    csrf: str
    expires_at: float


@dataclass
class Principal:
    """An authenticated caller: by session cookie (needs CSRF tokens) or by header."""

    user: str
    session: Session | None = None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


class Throttled(Exception):
    """Too many failed credentials from this caller: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed attempts; try again in {retry_after} s")
        self.retry_after = retry_after


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class ConsoleAuth:
    def __init__(self, settings: Settings):
        self.token = settings.console_token.get_secret_value() if settings.console_token else None
        self.user = settings.console_user
        self.password = (settings.console_password.get_secret_value()
                         if settings.console_password else None)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.throttle = Throttle()

    @property
    def enabled(self) -> bool:
        return bool(self.token) or bool(self.user and self.password)

    # -- credentials ---------------------------------------------------------------------------
    def check(self, *, token: str = "", user: str = "", password: str = "") -> str | None:
        """The user name these credentials log in as, or None."""
        if self.token and token and _same(token, self.token):
            return "token"
        if self.user and self.password and user and password:
            # both compared, always: the time taken does not tell which one was wrong
            ok_user, ok_password = _same(user, self.user), _same(password, self.password)
            if ok_user and ok_password:
                return self.user
        return None

    def attempt(self, request: Request, *, token: str = "", user: str = "",
                password: str = "") -> str | None:
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

    def _header(self, request: Request) -> str | None:
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
            user = self._header(request)
            return Principal(user) if user else None
        session = self._session(request.cookies.get(SESSION_COOKIE, ""))
        return Principal(session.user, session) if session else None

    # -- sessions ------------------------------------------------------------------------------
    def _session(self, sid: str) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires_at < time.time():
                del self._sessions[sid]
                return None
            return session

    def login(self, response: Response, user: str, secure: bool) -> Session:
        sid = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.time() + SESSION_TTL)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires_at)
                del self._sessions[oldest]
            self._sessions[sid] = session
        response.set_cookie(SESSION_COOKIE, sid, max_age=int(SESSION_TTL), path="/",
                            httponly=True, samesite="strict", secure=secure)
        response.delete_cookie(LOGIN_COOKIE, path="/console/login")
        return session

    def logout(self, request: Request, response: Response) -> None:
        with self._lock:
            self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
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
