"""The SFTP client against a real SFTP server on loopback (the SFTP sandbox).

The sandbox is paramiko's own server side, serving a temp folder over a real TCP socket; it
records what the folder looked like on every write, so the atomic put can be checked while the
upload is in progress, not only after it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.sftp_client import HostKeyError, SftpError, connect, fingerprint
from engine.sandbox_sftp import SftpSandbox
from engine.sandbox_sftp import new_key as ed25519_key

USER, PASSWORD = "dist", "sftp-pass-4711"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpSandbox]:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    with SftpSandbox(root, username=USER, password=PASSWORD) as srv:
        yield srv


def pinned(server: SftpSandbox, **kwargs: Any) -> Any:
    return connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                   host_key=server.fingerprint, **kwargs)


# -- host keys ---------------------------------------------------------------------------------

def test_a_host_without_pin_or_known_hosts_is_refused_naming_host_and_fingerprint(
        server: SftpSandbox) -> None:
    with pytest.raises(HostKeyError) as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD)
    assert caught.value.kind == "host_key"
    assert f"[127.0.0.1]:{server.port}" in caught.value.message
    assert server.fingerprint in caught.value.message
    assert caught.value.fingerprint == server.fingerprint


def test_a_wrong_pin_is_refused(server: SftpSandbox) -> None:
    other, _ = ed25519_key()
    with pytest.raises(HostKeyError) as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                host_key=fingerprint(other))
    assert server.fingerprint in caught.value.message
    assert fingerprint(other) in caught.value.message


def test_a_host_missing_from_known_hosts_is_refused(server: SftpSandbox, tmp_path: Path) -> None:
    other, _ = ed25519_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"sftp.elsewhere.example {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="unknown host key") as caught:
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                known_hosts=str(known))
    assert server.fingerprint in caught.value.message


def test_a_changed_key_in_known_hosts_is_refused(server: SftpSandbox, tmp_path: Path) -> None:
    other, _ = ed25519_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {other.get_name()} {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="differs"):
        connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                known_hosts=str(known))


def test_known_hosts_and_pinned_key_are_accepted(server: SftpSandbox, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    key = server.host_key
    known.write_text(f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n")
    with connect("127.0.0.1", server.port, username=USER, password=PASSWORD,
                 known_hosts=str(known)) as sftp:
        assert sftp.list("/in") == []
    with pinned(server) as sftp:
        assert sftp.list("/out") == []


def test_private_key_login_and_bad_password(server: SftpSandbox) -> None:
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

def test_put_is_atomic_no_partial_file_under_the_final_name(server: SftpSandbox) -> None:
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
        server: SftpSandbox, posix_rename: bool) -> None:
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


def test_list_get_move_remove(server: SftpSandbox) -> None:
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
