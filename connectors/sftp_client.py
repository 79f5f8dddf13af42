"""A small SFTP client over paramiko, for the ``sftp`` step and file-drop polling.

The whole API::

    from connectors.sftp_client import connect, SftpError

    with connect("sftp.supplier.example", username="dist", password=pw,
                 host_key="SHA256:3q2+7w...") as sftp:        # or known_hosts="~/.ssh/known_hosts"
        for f in sftp.list("/out", "*.edi"):                  # RemoteFile(name, path, size, mtime)
            data = sftp.get(f.path)                           # bytes
            sftp.move(f.path, f"/out/done/{f.name}")
        sftp.put("/in/PO_1001.edi", b"ISA*00*...")            # atomic: temp name, then rename
        sftp.remove("/in/old.edi")

``open_named(name, config, secrets)`` connects with a named connection (a
`connectors.sftp_config.SftpConnection`), substituting its ``${env:…}``/``${secret:…}``
references; its errors name the connection and host, never a credential.

``connect(host, port=22, *, username, password=None, private_key=None, passphrase=None,
known_hosts=None, host_key=None, timeout=10.0)`` returns an `SftpClient` (a context manager;
``close()`` otherwise). ``private_key`` is the key's PEM/OpenSSH text. ``host_key`` pins the
server key by its OpenSSH SHA256 fingerprint (``ssh-keygen -lf``); ``known_hosts`` names an
OpenSSH known_hosts file. One of the two is required: an unknown or changed server key is
NEVER accepted; `HostKeyError` names the host and the fingerprint the server showed, so an
operator can check it with the partner and pin it.

Every failure is an `SftpError` whose ``kind`` is ``host_key``, ``auth``, ``connection``,
``timeout``, ``not_found``, ``permission``, ``not_regular``, ``io`` or ``config``;
``retryable`` says whether trying again later may help (a refused connection may; a wrong
password or host key will not).

``put`` writes ``.NAME.<random>.part`` in the target folder and renames it over NAME, so a
reader never sees a partial file under the final name; ``list`` skips such temp names, so a
poller never takes an upload in progress.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import functools
import hashlib
import io
import posixpath
import socket
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import paramiko

from engine.plugin import UnresolvedReference, interpolate, port_number

if TYPE_CHECKING:
    from connectors.sftp_config import SftpConnection

TEMP_PREFIX = "."
TEMP_SUFFIX = ".part"
T = TypeVar("T")
MAX_GET_BYTES = 256 * 1024 * 1024
#: kinds worth another attempt later: the server or the network may be back by then
RETRYABLE = frozenset({"connection", "timeout"})


class SftpError(Exception):
    """An SFTP operation failed; ``kind`` classifies it for the retry policy."""

    def __init__(self, message: str, kind: str = "io"):
        super().__init__(message)
        self.message, self.kind = message, kind

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class HostKeyError(SftpError):
    def __init__(self, message: str, fingerprint: str):
        super().__init__(message, "host_key")
        self.fingerprint = fingerprint


@dataclass(frozen=True)
class RemoteFile:
    name: str
    path: str
    size: int
    mtime: float
    #: the entry's ``st_mode`` as the server's lstat gives it (0 when the server sends none)
    mode: int = 0

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint of *key*, as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _same_fingerprint(pinned: str, seen: str) -> bool:
    pinned = pinned.strip()
    if not pinned.startswith("SHA256:"):
        pinned = "SHA256:" + pinned
    return pinned.rstrip("=") == seen


def _load_key(text: str, passphrase: str | None) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError):
            continue
    raise SftpError("the private key cannot be read (expected an OpenSSH or PEM ed25519, "
                    "ECDSA or RSA key; a wrong passphrase reads the same)", "auth")


def _check_host_key(host: str, port: int, key: paramiko.PKey, known_hosts: str | None,
                    pinned: str | None) -> None:
    seen = fingerprint(key)
    where = host if port == 22 else f"[{host}]:{port}"
    if pinned is not None:
        if _same_fingerprint(pinned, seen):
            return
        raise HostKeyError(f"host key of {where} does not match the pinned fingerprint: the "
                           f"server showed {key.get_name()} {seen}, the connection pins "
                           f"{pinned}; check with the partner before changing the pin", seen)
    if known_hosts is None:
        raise HostKeyError(f"host key of {where} cannot be checked: give host_key (the server "
                           f"showed {key.get_name()} {seen}) or known_hosts", seen)
    path = Path(known_hosts).expanduser()
    try:
        keys = paramiko.HostKeys(str(path))
    except OSError as exc:
        raise HostKeyError(f"known_hosts file {path} cannot be read ({exc.strerror}); the "
                           f"server {where} showed {key.get_name()} {seen}", seen) from None
    entry = keys.lookup(where)
    if entry is None:
        raise HostKeyError(f"unknown host key: {where} is not in {path}; the server showed "
                           f"{key.get_name()} {seen}", seen)
    known = entry.get(key.get_name())
    if known is None or known.asbytes() != key.asbytes():
        raise HostKeyError(f"host key of {where} differs from {path}: the server showed "
                           f"{key.get_name()} {seen}", seen)


def _io_error(exc: OSError, what: str) -> SftpError:
    if isinstance(exc, TimeoutError):
        return SftpError(f"{what}: the server stopped answering", "timeout")
    code = exc.errno
    if code == errno.ENOENT:
        return SftpError(f"{what}: no such file", "not_found")
    if code == errno.EACCES:
        return SftpError(f"{what}: permission denied", "permission")
    return SftpError(f"{what}: {exc.strerror or exc}", "io")


def connect(host: str, port: int = 22, *, username: str, password: str | None = None,
            private_key: str | None = None, passphrase: str | None = None,
            known_hosts: str | None = None, host_key: str | None = None,
            timeout: float = 10.0) -> SftpClient:
    """Open an SFTP session after checking the server's key; see the module docstring."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise SftpError(f"{host}:{port}: connect timeout", "timeout") from None
    except OSError as exc:
        raise SftpError(f"{host}:{port}: {exc.strerror or exc}", "connection") from None
    transport = paramiko.Transport(sock)
    started = time.monotonic()
    try:
        transport.banner_timeout = transport.auth_timeout = timeout
        transport.start_client(timeout=timeout)
        _check_host_key(host, port, transport.get_remote_server_key(), known_hosts, host_key)
        if private_key:
            transport.auth_publickey(username, _load_key(private_key, passphrase))
        elif password is not None:
            transport.auth_password(username, password)
        else:
            raise SftpError("give a password or a private_key", "auth")
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:  # pragma: no cover - paramiko returns None only for a closed channel
            raise SftpError(f"{host}:{port}: the server opened no SFTP channel", "connection")
        sftp.get_channel().settimeout(timeout)
        return SftpClient(sftp, transport, f"{host}:{port}")
    except SftpError:
        transport.close()
        raise
    except paramiko.AuthenticationException:
        transport.close()
        raise SftpError(f"{host}:{port}: authentication as '{username}' failed", "auth") \
            from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        # paramiko reports a silent server as "No existing session": tell it by the time taken
        silent = time.monotonic() - started >= timeout * 0.9
        kind = "timeout" if silent or isinstance(exc, TimeoutError) else "connection"
        if silent:
            raise SftpError(f"{host}:{port}: no SSH answer within {timeout:g} s", kind) from None
        raise SftpError(f"{host}:{port}: SSH negotiation failed ({exc})", kind) from None


def open_named(name: str, config: SftpConnection,
               secrets: Callable[[str], str]) -> SftpClient:
    """Connect with named connection *name*; see the module docstring."""
    def value(text: str | None) -> str | None:
        return None if text is None else interpolate(text, secrets)

    try:
        host, username = str(value(config.host)), str(value(config.username))
        port = port_number(config.port, lambda text: interpolate(text, secrets))
        options = {"password": value(config.password), "private_key": value(config.private_key),
                   "passphrase": value(config.passphrase),
                   "known_hosts": value(config.known_hosts), "host_key": value(config.host_key)}
    except (UnresolvedReference, ValueError) as exc:
        raise SftpError(f"connection '{name}': {exc}", "config") from None
    try:
        return connect(host, port, username=username, timeout=config.timeout, **options)
    except SftpError as exc:
        exc.message = f"connection '{name}': {exc.message}"
        exc.args = (exc.message,)
        raise


def _lost(method: Callable[..., T]) -> Callable[..., T]:
    """A session that drops mid-operation fails as a (retryable) ``connection`` error."""
    @functools.wraps(method)
    def guarded(self: SftpClient, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (paramiko.SSHException, EOFError) as exc:
            raise SftpError(f"{self.where}: the connection was lost ({exc or type(exc).__name__})",
                            "connection") from None
    return guarded


class SftpClient:
    """One SFTP session; not for use by several threads at once."""

    def __init__(self, sftp: paramiko.SFTPClient, transport: paramiko.Transport, where: str):
        self._sftp, self._transport, self.where = sftp, transport, where
        self._plain_rename = False

    def __enter__(self) -> SftpClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._sftp.close()
        self._transport.close()

    @_lost
    def list(self, folder: str, pattern: str = "*", *, links: bool = False) -> list[RemoteFile]:
        """Regular files in *folder* whose name matches the glob *pattern*, by name; with
        *links*, symbolic links too (``is_link``), so a caller can set them aside."""
        try:
            entries = self._sftp.listdir_attr(folder)
        except OSError as exc:
            raise _io_error(exc, f"list {folder}") from None
        found = []
        for entry in entries:
            name = entry.filename
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                continue  # an upload in progress (ours or a partner's using the same scheme)
            mode = entry.st_mode or 0
            if entry.st_mode is not None and not stat.S_ISREG(mode) \
                    and not (links and stat.S_ISLNK(mode)):
                continue
            if fnmatch.fnmatchcase(name, pattern):
                found.append(RemoteFile(name, posixpath.join(folder, name), entry.st_size or 0,
                                        float(entry.st_mtime or 0), mode))
        return sorted(found, key=lambda f: f.name)

    @_lost
    def stat(self, path: str, *, follow: bool = True) -> RemoteFile:
        """Size, modification time and mode of *path*; of a link itself unless *follow*."""
        try:
            attrs = self._sftp.stat(path) if follow else self._sftp.lstat(path)
        except OSError as exc:
            raise _io_error(exc, f"stat {path}") from None
        return RemoteFile(posixpath.basename(path), path, attrs.st_size or 0,
                          float(attrs.st_mtime or 0), attrs.st_mode or 0)

    @_lost
    def get(self, path: str, max_bytes: int = MAX_GET_BYTES, *,
            regular_only: bool = False) -> bytes:
        """The whole content of *path*. With *regular_only*, a symbolic link (or anything
        but a regular file) is refused with kind ``not_regular`` and never opened.

        SFTP v3 has no O_NOFOLLOW: the entry is lstat'ed, opened, and the open file must be
        the same regular file (mode, size and mtime) — a link swapped in between is refused."""
        try:
            before = self._sftp.lstat(path) if regular_only else None
            if before is not None and not stat.S_ISREG(before.st_mode or 0):
                raise SftpError(f"get {path}: not a regular file (a symbolic link is never "
                                "followed)", "not_regular")
            with self._sftp.open(path, "rb") as remote:
                opened = remote.stat()
                if before is not None and (opened.st_mode, opened.st_size, opened.st_mtime) != (
                        before.st_mode, before.st_size, before.st_mtime):
                    raise SftpError(f"get {path}: the entry changed while it was opened (a "
                                    "symbolic link is never followed)", "not_regular")
                size = opened.st_size or 0
                if size > max_bytes:
                    raise SftpError(f"get {path}: {size} bytes, more than {max_bytes}", "io")
                remote.prefetch(size)
                return remote.read()
        except OSError as exc:
            raise _io_error(exc, f"get {path}") from None

    @_lost
    def put(self, path: str, data: bytes) -> None:
        """Write *data* to *path* atomically: a temp name in the same folder, then a rename."""
        folder, name = posixpath.split(path)
        temp = posixpath.join(folder, f"{TEMP_PREFIX}{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
        try:
            with self._sftp.open(temp, "wb") as remote:
                remote.set_pipelined(True)
                remote.write(data)
            self._replace(temp, path)
        except OSError as exc:
            self._discard(temp)
            raise _io_error(exc, f"put {path}") from None
        except BaseException:
            self._discard(temp)
            raise

    @_lost
    def move(self, source: str, target: str) -> None:
        """Rename *source* to *target*, replacing a file already there."""
        try:
            self._replace(source, target)
        except OSError as exc:
            raise _io_error(exc, f"move {source} to {target}") from None

    @_lost
    def ensure_folder(self, folder: str) -> None:
        """Create *folder* and its missing parents (``mkdir -p``)."""
        missing: list[str] = []
        while folder not in ("", "/", "."):
            try:
                self._sftp.stat(folder)
                break
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise _io_error(exc, f"stat {folder}") from None
                missing.append(folder)
                folder = posixpath.dirname(folder)
        for path in reversed(missing):
            try:
                self._sftp.mkdir(path)
            except OSError as exc:
                try:
                    self._sftp.stat(path)  # made meanwhile by another worker: fine
                except OSError:
                    raise _io_error(exc, f"mkdir {path}") from None

    @_lost
    def remove(self, path: str) -> None:
        try:
            self._sftp.remove(path)
        except OSError as exc:
            raise _io_error(exc, f"remove {path}") from None

    def _replace(self, source: str, target: str) -> None:
        if not self._plain_rename:
            try:
                self._sftp.posix_rename(source, target)
                return
            except OSError as exc:
                if exc.errno is not None or "unsupported" not in str(exc).lower():
                    raise
                self._plain_rename = True  # the server lacks posix-rename@openssh.com
        # plain SFTP rename refuses an existing target: remove it first (a reader may then
        # briefly find no file, but never a partial one)
        try:
            self._sftp.remove(target)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        self._sftp.rename(source, target)

    def _discard(self, temp: str) -> None:
        with contextlib.suppress(OSError):  # never written, or already gone
            self._sftp.remove(temp)
