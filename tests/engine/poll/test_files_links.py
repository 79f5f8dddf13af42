"""Symbolic links in drop folders are never followed: a link to a file outside the folder, to
/proc/self/environ (every secret of the process), a dangling link or a link to a folder goes to
error/ unread, with its reason, for a local folder and for one on an SFTP server. These are the
regression guard of the file-drop trigger reading files it was never given.

The folders, the links, the SFTP server (the sandbox on loopback) and the state database are
real; the clock is the test's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app import App
from engine.poll.files import LINK_REFUSED, SPECIAL_REFUSED, LocalDrop
from engine.sandbox_sftp import SftpSandbox
from tests.conftest import make_app
from tests.connectors.test_sftp_drop import drop_app as sftp_drop_app
from tests.engine.poll.support import T0, Clock, runs, scheduler

SECRET = "fake-secret-4b1d9e"
FLOW = """
flow: edi-drop
trigger:
  poll:
    every: 1m
    files: {{dir: "{dir}", pattern: "*", stable_for: 10s}}
steps:
  - id: keep
    set: {{name: $headers.name}}
"""


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder beside the drop folder holding a file the flow must never see."""
    monkeypatch.setenv("FLOWRUN_SECRET_PARTNER_TOKEN", SECRET)
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(f"token={SECRET}\n", encoding="utf-8")
    return folder


def plant_links(inbox: Path, outside: Path) -> dict[str, str]:
    """The links of the attack run, each named for what it points at; returns name -> target."""
    climb = os.path.relpath(outside, inbox)  # ../outside, or further up on the SFTP server
    targets = {"outside.edi": f"{climb}/secret.txt", "absolute.edi": str(outside / "secret.txt"),
               "environ.edi": "/proc/self/environ", "dangling.edi": f"{climb}/nothing-here",
               "folder.edi": str(outside)}
    for name, target in targets.items():
        (inbox / name).symlink_to(target)
    return targets


def everything_stored(app: App, home: Path) -> bytes:
    """The state database's bytes, WAL included: a secret read anywhere would be in there."""
    app.store.close()
    return b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("state.db"))


def assert_refused(inbox: Path, targets: dict[str, str]) -> None:
    error = inbox / "error"
    for name, target in targets.items():
        moved = error / name
        assert moved.is_symlink() and os.readlink(moved) == target  # the link itself, moved
        reason = (error / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert f"{name}: {LINK_REFUSED}" in reason
        assert SECRET not in reason
    assert not any(p.is_symlink() for p in inbox.iterdir())


def test_links_in_a_local_drop_folder_go_to_error_unread(tmp_path: Path, outside: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    app = make_app(tmp_path, {"edi-drop": FLOW.format(dir=inbox)})
    targets = plant_links(inbox, outside)
    (inbox / "good.edi").write_text("ST*850~", encoding="utf-8")
    clock = Clock(T0.timestamp())
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 10
        sched.tick()
    assert [e["body"] for e in runs(app, "edi-drop")] == ["ST*850~"]
    assert_refused(inbox, targets)
    assert (outside / "secret.txt").read_text(encoding="utf-8") == f"token={SECRET}\n"
    stored = everything_stored(app, tmp_path / "home")
    assert b"ST*850~" in stored and SECRET.encode() not in stored


def test_a_file_swapped_for_a_link_after_the_listing_is_not_read(tmp_path: Path,
                                                                  outside: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop = LocalDrop(inbox)
    (inbox / "a.edi").write_text("ST*850~", encoding="utf-8")
    [listed] = drop.files("*")
    assert listed.refused is None
    (inbox / "a.edi").unlink()
    (inbox / "a.edi").symlink_to(outside / "secret.txt")
    with pytest.raises(Exception, match="symbolic link") as caught:
        drop.read(listed, 1024)
    assert SECRET not in str(caught.value)


def test_a_link_in_place_of_the_error_folder_fails_the_poll_writing_nothing_there(
        tmp_path: Path, outside: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "error").symlink_to(outside)
    (inbox / "bad.edi").write_bytes(b"\xff\xfe")
    drop = LocalDrop(inbox)
    with pytest.raises(Exception, match="is not a folder"):
        drop.move("bad.edi", "error")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (inbox / "bad.edi").exists()


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SftpSandbox]:
    with SftpSandbox(tmp_path / "remote") as sandbox:
        (sandbox.root / "outbound" / "asn").mkdir(parents=True)
        monkeypatch.setenv("FLOWRUN_SECRET_ACME_SFTP_PASSWORD", sandbox.password)
        yield sandbox


def test_links_on_an_sftp_server_go_to_error_unread(tmp_path: Path, outside: Path,
                                                    box: SftpSandbox) -> None:
    inbox = box.root / "outbound" / "asn"
    # the server serves whatever its account may read, the link's target included: only the
    # client's refusal keeps these out of the flow
    targets = plant_links(inbox, outside)
    (inbox / "good.edi").write_text("ST*856~", encoding="utf-8")
    app = sftp_drop_app(tmp_path, box)
    clock = Clock(T0.timestamp())
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 10
        sched.tick()
    assert [e["body"] for e in runs(app, "asn-drop")] == ["ST*856~"]
    assert_refused(inbox, targets)
    stored = everything_stored(app, tmp_path / "home")
    assert b"ST*856~" in stored and SECRET.encode() not in stored


def test_a_fifo_in_a_drop_folder_goes_to_error_unread(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "pipe.edi")  # reading it would block the poll for good
    app = make_app(tmp_path, {"edi-drop": FLOW.format(dir=inbox)})
    with scheduler(app, Clock(T0.timestamp())) as sched:
        sched.tick()
    assert runs(app, "edi-drop") == []
    assert (inbox / "error" / "pipe.edi").is_fifo()
    reason = (inbox / "error" / "pipe.edi.reason.txt").read_text(encoding="utf-8")
    assert f"pipe.edi: {SPECIAL_REFUSED}" in reason
