"""Console sessions and the failed-login throttle: the contract every backend keeps (`Session`,
`Sessions`, `Throttles`) and the backend of a single process (`MemorySessions`). Which backend a
server uses is chosen by `engine.console.state.shared_state`.

A session id is a random 256-bit value in the browser's cookie; the store keeps only its
SHA-256, so a copy of the store (a backup, a replica) holds no session anyone can use.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Protocol

from engine.console import throttle

MAX_SESSIONS = 10_000  # in-process sessions: the oldest are dropped first


@dataclass
class Session:
    user: str
    role: str
    # token, settings (FLOWRUN_CONSOLE_USER), file (the users file) or oidc, then ':' and a
    # mark of the credential used (engine.console.auth): a changed token or password ends it
    source: str
    csrf: str
    expires_at: float  # Unix seconds, on the throttle's clock


class Sessions(Protocol):
    """Sessions by the SHA-256 of their id; an expired one is never returned."""

    def put(self, key: str, session: Session) -> None: ...

    def get(self, key: str) -> Session | None: ...

    def delete(self, key: str) -> None: ...


class Throttles(Protocol):
    """The interface of `engine.console.throttle.Throttle`, which every backend keeps."""

    def blocked(self, keys: list[str]) -> int | None: ...

    def failed(self, keys: list[str]) -> None: ...

    def succeeded(self, keys: list[str]) -> None: ...


def session_key(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


class MemorySessions:
    """Sessions of this process only (a store that keeps none)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def put(self, key: str, session: Session) -> None:
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires_at)
                del self._sessions[oldest]
            self._sessions[key] = session

    def get(self, key: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at < throttle.clock():
                del self._sessions[key]
                return None
            return session

    def delete(self, key: str) -> None:
        with self._lock:
            self._sessions.pop(key, None)
