"""The SFTP client and the ``sftp`` step against a real SFTP server on loopback.

The server is paramiko's own server side, serving a temp folder over a real TCP socket; it
records what the folder looked like on every write, so the atomic put can be checked while the
upload is in progress, not only after it.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from connectors.sftp_client import HostKeyError, SftpError, connect, fingerprint

USER, PASSWORD = "dist", "sftp-pass-4711"


def ed25519_key() -> tuple[paramiko.PKey, str]:
    """A fresh ed25519 key as paramiko sees it, and its OpenSSH private key text."""
    text = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(text)), text


class _Handle(paramiko.SFTPHandle):
    def __init__(self, server: SftpServer, path: Path, flags: int):
        super().__init__(flags)
        self.server, self.path = server, path
        mode = "r+b" if flags & os.O_RDWR else ("wb" if flags & os.O_WRONLY else "rb")
        if flags & os.O_APPEND:
            mode = "ab"
        self.readfile = self.writefile = open(path, mode)  # noqa: SIM115 - closed by paramiko

    def write(self, offset: int, data: bytes) -> int:
        result = super().write(offset, data)
        self.server.on_write(self.path)
        return result

    def stat(self) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class _Folder(paramiko.SFTPServerInterface):
    """The temp folder as an SFTP file system (paths are taken relative to it)."""

    def __init__(self, server: Any, *args: Any, sftp: SftpServer, **kwargs: Any):
        super().__init__(server, *args, **kwargs)
        self.sftp = sftp

    def _real(self, path: str) -> Path:
        return self.sftp.root / self.canonicalize(path).lstrip("/")

    def _errors(self, fn: Any) -> Any:
        try:
            return fn()
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def _done(self, fn: Any) -> Any:
        return self._errors(lambda: (fn(), paramiko.SFTP_OK)[1])

    def list_folder(self, path: str) -> Any:
        def listing() -> list[paramiko.SFTPAttributes]:
            real = self._real(path)
            return [paramiko.SFTPAttributes.from_stat(os.stat(real / n), n)
                    for n in os.listdir(real)]
        return self._errors(listing)

    def stat(self, path: str) -> Any:
        return self._errors(lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._real(path))))

    lstat = stat

    def open(self, path: str, flags: int, attr: Any) -> Any:
        return self._errors(lambda: _Handle(self.sftp, self._real(path), flags))

    def remove(self, path: str) -> Any:
        return self._done(lambda: os.remove(self._real(path)))

    def rename(self, old: str, new: str) -> Any:
        real_new = self._real(new)
        if real_new.exists():
            return paramiko.SFTP_FAILURE  # plain SFTP rename never replaces a file
        return self._done(lambda: os.rename(self._real(old), real_new))

    def posix_rename(self, old: str, new: str) -> Any:
        if not self.sftp.posix_rename:
            return paramiko.SFTP_OP_UNSUPPORTED
        return self._done(lambda: os.replace(self._real(old), self._real(new)))

    def mkdir(self, path: str, attr: Any) -> Any:
        return self._done(lambda: os.mkdir(self._real(path)))


class _Auth(paramiko.ServerInterface):
    def __init__(self, user_key: paramiko.PKey):
        self.user_key = user_key

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == (USER, PASSWORD)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == USER and key.asbytes() == self.user_key.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SftpServer:
    """A paramiko SFTP server on 127.0.0.1 serving *root*; ``writes`` holds, for each write,
    the file written and the sorted names in its folder at that moment."""

    def __init__(self, root: Path):
        self.root = root
        self.host_key, _ = ed25519_key()
        self.user_key, self.user_key_text = ed25519_key()
        self.posix_rename = True
        self.writes: list[tuple[str, list[str]]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key)

    def on_write(self, path: Path) -> None:
        self.writes.append((path.name, sorted(os.listdir(path.parent))))

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed: the test is over
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Folder, sftp=self)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Auth(self.user_key))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()  # a client that gave up (e.g. refused our host key)

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for transport in self._transports:
            transport.close()
        self._thread.join(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    srv = SftpServer(root)
    yield srv
    srv.close()


def pinned(server: SftpServer, **kwargs: Any) -> Any:
    return connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                   host_key=server.fingerprint, **kwargs)


# -- host keys ---------------------------------------------------------------------------------

def test_a_host_without_pin_or_known_hosts_is_refused_naming_host_and_fingerprint(
        server: SftpServer) -> None:
    with pytest.raises(HostKeyError) as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    assert caught.value.kind == "host_key"
    assert f"[127.0.0.1]:{server.port}" in caught.value.message
    assert server.fingerprint in caught.value.message
    assert caught.value.fingerprint == server.fingerprint


def test_a_wrong_pin_is_refused(server: SftpServer) -> None:
    other, _ = ed25519_key()
    with pytest.raises(HostKeyError) as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                host_key=fingerprint(other))
    assert server.fingerprint in caught.value.message
    assert fingerprint(other) in caught.value.message


def test_a_host_missing_from_known_hosts_is_refused(server: SftpServer, tmp_path: Path) -> None:
    other, _ = ed25519_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"sftp.elsewhere.example {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="unknown host key") as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                known_hosts=str(known))
    assert server.fingerprint in caught.value.message


def test_a_changed_key_in_known_hosts_is_refused(server: SftpServer, tmp_path: Path) -> None:
    other, _ = ed25519_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="differs"):
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                known_hosts=str(known))


def test_known_hosts_and_pinned_key_are_accepted(server: SftpServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = server.host_key
    known.write_text(f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n")
    with connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                 known_hosts=str(known)) as sftp:
        assert sftp.list("/in") == []
    with pinned(server) as sftp:
        assert sftp.list("/out") == []


def test_private_key_login_and_bad_password(server: SftpServer) -> None:
    with connect("127.0.0.1", server.port, username=USER, private_key=server.user_key_text,
                 host_key=server.fingerprint) as sftp:
        sftp.put("/in/a.txt", b"by key")
    assert (server.root / "in" / "a.txt").read_bytes() == b"by key"
    with pytest.raises(SftpError) as caught:
        connect("127.0.0.1", server.port, username=USER, password="wrong",
                host_key=server.fingerprint)
    assert caught.value.kind == "auth"


def test_connection_refused_is_kind_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SftpError) as caught:
        connect("127.0.0.1", port, username=USER, password=PASSWORD, host_key="SHA256:x")
    assert caught.value.kind == "connection"


# -- files -------------------------------------------------------------------------------------

def test_put_is_atomic_no_partial_file_under_the_final_name(server: SftpServer) -> None:
    data = os.urandom(600_000)  # many SFTP write packets
    with pinned(server) as sftp:
        sftp.put("/in/PO_1001.edi", data)
    assert len(server.writes) > 3
    for written, names in server.writes:
        assert written.startswith(".PO_1001.edi.") and written.endswith(".part")
        assert "PO_1001.edi" not in names, "the final name was visible during the upload"
        assert written in names
    assert sorted(os.listdir(server.root / "in")) == ["PO_1001.edi"]
    assert (server.root / "in" / "PO_1001.edi").read_bytes() == data


@pytest.mark.parametrize("posix_rename", [True, False])
def test_put_replaces_an_existing_file_keeping_the_old_one_until_done(
        server: SftpServer, posix_rename: bool) -> None:
    server.posix_rename = posix_rename
    target = server.root / "in" / "stock.csv"
    target.write_bytes(b"old")
    seen_old = []
    original = server.on_write

    def on_write(path: Path) -> None:
        original(path)
        seen_old.append(target.read_bytes())

    server.on_write = on_write  # type: ignore[method-assign]
    with pinned(server) as sftp:
        sftp.put("/in/stock.csv", b"new" * 50_000)
    assert seen_old and set(seen_old) == {b"old"}
    assert target.read_bytes() == b"new" * 50_000
    assert os.listdir(server.root / "in") == ["stock.csv"]


def test_list_get_move_remove(server: SftpServer) -> None:
    out = server.root / "out"
    (out / "a.edi").write_bytes(b"AAA")
    (out / "b.edi").write_bytes(b"BB")
    (out / "c.txt").write_bytes(b"C")
    (out / ".d.edi.123.part").write_bytes(b"half")
    (out / "done").mkdir()
    with pinned(server) as sftp:
        files = sftp.list("/out", "*.edi")
        assert [(f.name, f.path, f.size) for f in files] == [
            ("a.edi", "/out/a.edi", 3), ("b.edi", "/out/b.edi", 2)]
        assert sftp.get("/out/a.edi") == b"AAA"
        sftp.move("/out/a.edi", "/out/done/a.edi")
        sftp.remove("/out/b.edi")
        assert [f.name for f in sftp.list("/out")] == ["c.txt"]
        with pytest.raises(SftpError) as caught:
            sftp.get("/out/a.edi")
        assert caught.value.kind == "not_found"
        with pytest.raises(SftpError) as missing:
            sftp.list("/nowhere")
        assert missing.value.kind == "not_found"
    assert (out / "done" / "a.edi").read_bytes() == b"AAA"
