"""Named console operators: the users file (FLOWRUN_CONSOLE_USERS), password hashes and roles.

The file is YAML, written by ``flowrun users``: each user has a role and a password hash.

    users:
      alice: {role: operator, password: "scrypt$15$8$3$<salt>$<key>"}

Roles are ordered: a *viewer* reads, an *operator* also replays, discards, edits and replays,
and replays in bulk; an *admin* may do everything, including what only affects users or is
dangerous. Passwords are hashed with the standard library's scrypt (a memory-hard function,
no C extension to build): N=2**15, r=8, p=3 — one of OWASP's recommended settings, 32 MiB and a
few tenths of a second per check, which is what makes a stolen file slow to guess. The
parameters are stored in each hash, so they can be raised later without breaking old ones.

The file is read again when it changes, so ``flowrun users add`` takes effect without a restart;
a file that stops being valid keeps the last good version in use and is reported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("flowrun.console")

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}
# scrypt cost: log2(N), r, p (OWASP Password Storage Cheat Sheet: N=2^15, r=8, p=3)
LOG_N, R, P = 15, 8, 3
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
RESERVED = {"token"}  # the principal of FLOWRUN_CONSOLE_TOKEN
REMEMBER_FOR = 60.0  # seconds a checked password is remembered (see `Users`)
REMEMBERED = 1000  # most remembered at once


class UsersError(ValueError):
    """The users file or a user name cannot be used; the message names the file and why."""


def allows(role: str, needed: Role) -> bool:
    return RANK.get(role, -1) >= RANK[needed]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r * p + (1 << 20), dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${LOG_N}${R}${P}${_b64(salt)}${_b64(_scrypt(password, salt, LOG_N, R, P))}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        kind, log_n, r, p, salt, key = encoded.split("$")
        if kind != "scrypt" or not (10 <= int(log_n) <= 20 and 1 <= int(r) <= 32
                                    and 1 <= int(p) <= 16):
            return False
        got = _scrypt(password, _unb64(salt), int(log_n), int(r), int(p))
        return hmac.compare_digest(got, _unb64(key))
    except ValueError:
        return False


# checked against when the user does not exist, so the time taken does not tell
_DUMMY = f"scrypt${LOG_N}${R}${P}${_b64(b'0' * 16)}${_b64(b'0' * 32)}"


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(description="viewer, operator or admin.")
    password: str = Field(pattern=r"^scrypt\$", description="scrypt hash (flowrun users).")


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, User] = Field(default_factory=dict)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsersError(f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    if name in RESERVED:
        raise UsersError(f"user name {name!r} is reserved for FLOWRUN_CONSOLE_TOKEN")
    return name


def read(path: Path) -> UsersFile:
    """The users in *path* (none if it does not exist yet); `UsersError` if it is not valid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UsersFile()
    except OSError as exc:
        raise UsersError(f"{path}: cannot read the users file: {exc.strerror}") from None
    try:
        found = UsersFile.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        raise UsersError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsersError(f"{path}: {problems}") from None
    for name in found.users:
        try:
            check_name(name)
        except UsersError as exc:
            raise UsersError(f"{path}: {exc}") from None
    return found


def write(path: Path, users: UsersFile) -> None:
    """Replace *path* atomically (a reader sees the old file or the new one), mode 0600."""
    data = {"users": {name: u.model_dump() for name, u in sorted(users.users.items())}}
    text = ("# flowrunner console users: edit with `flowrun users` (passwords are scrypt "
            "hashes)\n" + yaml.safe_dump(data, sort_keys=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Users:
    """The users file as the server sees it: re-read when its modification time changes.

    A script calling the API with Basic auth sends the password with every request, and each
    scrypt check costs a quarter of a second of CPU; so a password that checked out is
    remembered for a minute, in this process only, as an HMAC under a key that never leaves it
    (never the password), and only while the user's hash in the file is the same one."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users = read(path).users  # a bad file stops the server from starting, named
        self._stamp = self._stat()
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._checked: dict[bytes, tuple[str, float]] = {}  # HMAC -> (hash, until)
        if self._stamp is None:
            log.warning("console users file %s does not exist yet: add a user with "
                        "`flowrun users add NAME --role ROLE`", path)
        elif self.path.stat().st_mode & 0o077:
            log.warning("console users file %s can be read by other users of this machine: "
                        "chmod 600 it (flowrun users writes it so)", path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _current(self) -> dict[str, User]:
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._users = read(self.path).users
                except UsersError as exc:
                    log.error("console users file not reloaded, the last good one stays in "
                              "use: %s", exc)
                self._stamp = stamp
        return self._users

    def check(self, name: str, password: str) -> Role | None:
        """The role of *name* if *password* is theirs, else None (as slow either way, unless
        the same pair checked out within the last minute)."""
        user = self._current().get(name)
        mac = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        remembered = self._checked.get(mac)
        if user and remembered and remembered[0] == user.password and remembered[1] > now:
            return user.role
        ok = verify_password(password, user.password if user else _DUMMY)
        if not (ok and user):
            return None
        with self._lock:
            if len(self._checked) >= REMEMBERED:
                self._checked = {k: v for k, v in self._checked.items() if v[1] > now}
            if len(self._checked) < REMEMBERED:
                self._checked[mac] = (user.password, now + REMEMBER_FOR)
        return user.role

    def role_of(self, name: str) -> Role | None:
        user = self._current().get(name)
        return user.role if user else None

    def mark_of(self, name: str) -> str | None:
        """A short digest of *name*'s password hash (itself salted and slow, so the digest
        tells nothing of the password): a session keeps it, and a new password ends it."""
        user = self._current().get(name)
        return hashlib.sha256(user.password.encode()).hexdigest()[:16] if user else None
