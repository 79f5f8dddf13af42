"""A local SFTP server standing in for suppliers' and 3PLs' SFTP drops, on loopback.

Used by the tests of the ``sftp`` step and of SFTP drop polling, by the shipped flows' end-to-end
tests and by ``flowrun sandbox``. It is paramiko's own server side serving a folder over a real
TCP socket, so the client, its host-key check and the atomic rename are exercised exactly as
against a partner's server::

    with SftpSandbox(tmp_path / "remote") as box:   # writes box.known_hosts for its host key
        os.environ.update(box.env())                  # SFTP_SANDBOX_HOST, _KNOWN_HOSTS, ...

Paths are taken relative to the root folder (a chroot, as most partners give). One user
(``username``/``password``, or the public key of ``user_key``) may log in. ``writes`` records,
for every write, the file written and the names in its folder at that moment, so a test can
see that an upload never shows under its final name before it is complete. ``posix_rename``
False makes the server refuse the OpenSSH rename extension, as some partners' servers do.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from connectors.sftp_client import fingerprint
from engine.home import private_folder

USERNAME, PASSWORD = "flowrun", "sandbox-sftp-pass"
#: the port `flowrun sandbox` serves SFTP on, which the shipped connection file reads from
#: ${env:SFTP_SANDBOX_PORT} (connections/supplier_nordic_sftp.yaml)
SHIPPED_PORT = 2222
#: the folders the shipped flows use: the supplier's inbox (flow 3), its ASN and inventory
#: drops, the 3PL's inbox for 940s and its drop of 945s
SHIPPED_FOLDERS = ("in", "out/asn", "out/inventory", "inbound", "outbound/945")


def new_key() -> tuple[paramiko.PKey, str]:
    """A fresh ed25519 key as paramiko sees it, and its OpenSSH private key text."""
    text = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    return paramiko.Ed25519Key.from_private_key(io.StringIO(text)), text


class _Handle(paramiko.SFTPHandle):
    def __init__(self, box: SftpSandbox, path: Path, flags: int):
        super().__init__(flags)
        self.box, self.path = box, path
        mode = "r+b" if flags & os.O_RDWR else ("wb" if flags & os.O_WRONLY else "rb")
        if flags & os.O_APPEND:
            mode = "ab"
        self.readfile = self.writefile = open(path, mode)  # noqa: SIM115 - closed by paramiko

    def write(self, offset: int, data: bytes) -> int:
        result = super().write(offset, data)
        self.box.on_write(self.path)
        return result

    def stat(self) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class _Folder(paramiko.SFTPServerInterface):
    """The root folder as an SFTP file system; nothing outside it can be reached."""

    def __init__(self, server: Any, *args: Any, box: SftpSandbox, **kwargs: Any):
        super().__init__(server, *args, **kwargs)
        self.box = box

    def _real(self, path: str) -> Path:
        # canonicalize() folds '..' away before the root is prefixed: no escape from the root
        return self.box.root / self.canonicalize(path).lstrip("/")

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
            # as OpenSSH's sftp-server: a listing describes each entry itself (lstat), so a
            # symbolic link shows as one and a dangling link does not break the listing
            return [paramiko.SFTPAttributes.from_stat(os.lstat(real / n), n)
                    for n in os.listdir(real)]
        return self._errors(listing)

    def stat(self, path: str) -> Any:
        return self._errors(lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._real(path))))

    def lstat(self, path: str) -> Any:
        return self._errors(lambda: paramiko.SFTPAttributes.from_stat(os.lstat(self._real(path))))

    def open(self, path: str, flags: int, attr: Any) -> Any:
        return self._errors(lambda: _Handle(self.box, self._real(path), flags))

    def remove(self, path: str) -> Any:
        return self._done(lambda: os.remove(self._real(path)))

    def rename(self, old: str, new: str) -> Any:
        real_new = self._real(new)
        if real_new.exists():
            return paramiko.SFTP_FAILURE  # plain SFTP rename never replaces a file
        return self._done(lambda: os.rename(self._real(old), real_new))

    def posix_rename(self, old: str, new: str) -> Any:
        if not self.box.posix_rename:
            return paramiko.SFTP_OP_UNSUPPORTED
        return self._done(lambda: os.replace(self._real(old), self._real(new)))

    def mkdir(self, path: str, attr: Any) -> Any:
        return self._done(lambda: os.mkdir(self._real(path)))

    def rmdir(self, path: str) -> Any:
        return self._done(lambda: os.rmdir(self._real(path)))


class _Auth(paramiko.ServerInterface):
    def __init__(self, box: SftpSandbox):
        self.box = box

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == (self.box.username, self.box.password)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.box.username and key.asbytes() == self.box.user_key.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SftpSandbox:
    """The SFTP sandbox, accepting connections in a background thread once started."""

    def __init__(self, root: Path, *, port: int = 0, username: str = USERNAME,
                 password: str = PASSWORD, known_hosts: Path | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.username, self.password = username, password
        self.host_key, _ = new_key()
        self.user_key, self.user_key_text = new_key()
        self.posix_rename = True
        self.writes: list[tuple[str, list[str]]] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self.known_hosts = known_hosts or self.root.with_name(self.root.name + ".known_hosts")
        self.known_hosts.write_text(f"{self.host_entry} {self.host_key.get_name()} "
                                    f"{self.host_key.get_base64()}\n", encoding="utf-8")
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="flowrun-sftp-sandbox")

    @property
    def host_entry(self) -> str:
        """The host as OpenSSH's known_hosts names it (a port other than 22 in brackets)."""
        return f"[127.0.0.1]:{self.port}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key)

    def env(self) -> dict[str, str]:
        """Environment variables the shipped SFTP connections use to reach the sandbox."""
        return {"SFTP_SANDBOX_HOST": "127.0.0.1", "SFTP_SANDBOX_PORT": str(self.port),
                "SFTP_SANDBOX_USER": self.username,
                "SFTP_SANDBOX_KNOWN_HOSTS": str(self.known_hosts),
                "FLOWRUN_SECRET_SFTP_SANDBOX_PASSWORD": self.password}

    def make_shipped_folders(self) -> None:
        for folder in SHIPPED_FOLDERS:
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        """What an operator needs to use the sandbox, for ``flowrun sandbox``."""
        exports = "\n".join(f"  export {k}={v}" for k, v in self.env().items())
        return (f"SFTP sandbox on 127.0.0.1:{self.port} serving {self.root} (user "
                f"{self.username}; host key {self.fingerprint} in {self.known_hosts});\n"
                f"the shipped SFTP connections read:\n{exports}")

    def on_write(self, path: Path) -> None:
        self.writes.append((path.name, sorted(os.listdir(path.parent))))

    def start(self) -> SftpSandbox:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed: the sandbox is stopping
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Folder, box=self)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Auth(self))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()  # a client that gave up (e.g. refused our host key)

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does
        with contextlib.suppress(OSError):  # never started, or already shut
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for transport in self._transports:
            transport.close()
        if self._thread.is_alive():
            self._thread.join(5)

    @classmethod
    def for_shipped_flows(cls, home: Path, port: int = SHIPPED_PORT) -> SftpSandbox:
        """The sandbox the shipped flows expect: under *home*, on the port their connection
        files name, with the supplier's folders made."""
        private_folder(Path(home))  # the state folder: made private as the store makes it
        box = cls(Path(home) / "sftp-sandbox", port=port)
        box.make_shipped_folders()
        return box

    def __enter__(self) -> SftpSandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
