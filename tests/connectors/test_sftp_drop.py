"""File-drop polling from an SFTP folder (``dir: sftp://connection/folder``) against the SFTP
sandbox on loopback: the partial-file guard, one message per file, archive/ and error/ on the
server, no second run for a file seen again, a server that is down failing the poll for a retry.
The clock is the test's; the server, the files and the connection file are real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app import App
from engine.poll import cursor as cursors
from engine.sandbox_sftp import SftpSandbox
from tests.conftest import make_app
from tests.engine.poll.support import T0, Clock, runs, scheduler

FLOW = """
flow: asn-drop
trigger:
  poll:
    every: 1m
    files: {{dir: "sftp://acme_3pl/outbound/asn", pattern: "*.edi", stable_for: 10s{extra}}}
    retry: {{max_attempts: 2, backoff: {{initial: 30s, jitter: none}}}}
steps:
  - id: keep
    set: {{name: $headers.name}}
"""


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SftpSandbox]:
    with SftpSandbox(tmp_path / "remote") as sandbox:
        (sandbox.root / "outbound" / "asn").mkdir(parents=True)
        monkeypatch.setenv("FLOWRUN_SECRET_ACME_SFTP_PASSWORD", sandbox.password)
        yield sandbox


def drop_app(tmp_path: Path, box: SftpSandbox, extra: str = "", port: int | None = None) -> App:
    connections = tmp_path / "connections"
    connections.mkdir(exist_ok=True)
    (connections / "acme_3pl.yaml").write_text(
        f"connection: acme_3pl\nsftp:\n  host: 127.0.0.1\n  port: {port or box.port}\n"
        f"  username: {box.username}\n  password: '${{secret:ACME_SFTP_PASSWORD}}'\n"
        f"  known_hosts: {box.known_hosts}\n  timeout: 2s\n", encoding="utf-8")
    return make_app(tmp_path, {"asn-drop": FLOW.format(extra=extra)})


def test_a_complete_file_is_taken_once_and_archived_on_the_server(
        tmp_path: Path, box: SftpSandbox) -> None:
    inbox = box.root / "outbound" / "asn"
    app = drop_app(tmp_path, box)
    clock = Clock(T0.timestamp())
    (inbox / "ASN-1.edi").write_text("ST*856*0001~", encoding="utf-8")
    (inbox / ".ASN-2.edi.1a2b3c.part").write_text("ST*85", encoding="utf-8")  # uploading
    (inbox / "notes.txt").write_text("not matched", encoding="utf-8")
    with scheduler(app, clock) as sched:
        assert [f.reason for f in sched.tick()] == ["slot"]  # first look
        assert runs(app, "asn-drop") == []
        assert sched.next_poll() == clock.now + 10
        clock.now += 10
        assert [f.reason for f in sched.tick()] == ["recheck"]
    [envelope] = runs(app, "asn-drop")
    assert envelope["body"] == "ST*856*0001~"
    archived = inbox / "archive" / "ASN-1.edi"
    mtime = int(archived.stat().st_mtime)
    assert envelope["headers"] == {
        "name": "ASN-1.edi", "size": 12, "path": "sftp://acme_3pl/outbound/asn/ASN-1.edi",
        "mtime": envelope["headers"]["mtime"], "file_id": f"ASN-1.edi:12:{mtime * 10**9}"}
    assert envelope["headers"]["mtime"].endswith("Z")
    assert sorted(os.listdir(inbox)) == [".ASN-2.edi.1a2b3c.part", "archive", "notes.txt"]


def test_a_growing_file_waits_and_a_marker_file_releases_one(tmp_path: Path,
                                                             box: SftpSandbox) -> None:
    inbox = box.root / "outbound" / "asn"
    app = drop_app(tmp_path, box, ', marker_suffix: ".ok"')
    clock = Clock(T0.timestamp())
    (inbox / "ASN-7.edi").write_text("ST*856*0007~", encoding="utf-8")
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 3600  # no marker, however long it sits: not complete
        sched.tick()
        assert runs(app, "asn-drop") == []
        (inbox / "ASN-7.edi.ok").touch()
        clock.now += 60
        sched.tick()
    assert [e["body"] for e in runs(app, "asn-drop")] == ["ST*856*0007~"]
    assert sorted(os.listdir(inbox / "archive")) == ["ASN-7.edi", "ASN-7.edi.ok"]
    assert os.listdir(inbox) == ["archive"]


def test_a_bad_file_goes_to_error_with_a_reason_and_a_resent_file_runs_once(
        tmp_path: Path, box: SftpSandbox) -> None:
    inbox = box.root / "outbound" / "asn"
    app = drop_app(tmp_path, box)
    clock = Clock(T0.timestamp())
    (inbox / "good.edi").write_text("ST*856~", encoding="utf-8")
    (inbox / "bad.edi").write_bytes(b"ST*856*\xff~")
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 10
        sched.tick()
        assert [e["body"] for e in runs(app, "asn-drop")] == ["ST*856~"]
        reason = (inbox / "error" / "bad.edi.reason.txt").read_text(encoding="utf-8")
        assert reason.startswith("bad.edi: the file is not UTF-8 text (byte 7: b'\\xff')\n"
                                 "moved from sftp://acme_3pl/outbound/asn at ")
        assert (inbox / "error" / "bad.edi").read_bytes() == b"ST*856*\xff~"

        # the 3PL sends the same file again (same name, size and mtime): no second run
        archived = inbox / "archive" / "good.edi"
        again = inbox / "good.edi"
        again.write_text("ST*856~", encoding="utf-8")
        os.utime(again, ns=(archived.stat().st_atime_ns, archived.stat().st_mtime_ns))
        clock.now += 60
        sched.tick()
        clock.now += 10
        sched.tick()
    assert len(runs(app, "asn-drop")) == 1
    assert not again.exists()
    assert len(list((inbox / "archive").glob("good*.edi"))) == 2  # kept both, nothing lost


def test_a_server_that_is_down_fails_the_poll_for_a_retry_and_keeps_the_file(
        tmp_path: Path, box: SftpSandbox) -> None:
    inbox = box.root / "outbound" / "asn"
    (inbox / "ASN-9.edi").write_text("ST*856*0009~", encoding="utf-8")
    down = SftpSandbox(tmp_path / "elsewhere")
    closed_port = down.port
    down.close()  # nothing listens there any more: connection refused
    app = drop_app(tmp_path, box, port=closed_port)
    clock = Clock(T0.timestamp())
    with scheduler(app, clock) as sched:
        assert [(f.reason, f.attempt) for f in sched.tick()] == [("slot", 1)]
        error = cursors.read_status(app.store, "asn-drop")["last_error"]
        assert error["kind"] == "connection"
        assert f"connection 'acme_3pl': 127.0.0.1:{closed_port}" in error["message"]
        assert sched.next_poll() == clock.now + 30  # the retry, scheduled, not slept
    assert runs(app, "asn-drop") == []
    assert (inbox / "ASN-9.edi").exists()
