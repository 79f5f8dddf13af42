"""File-drop polling from a local folder: the partial-file guard (size held between two looks,
or a marker file), one message per file, archive/ after intake, error/ with a reason file, and
no second run for a file seen again. The clock is the test's; the files are real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.loader import Loader
from tests.conftest import make_app
from tests.engine.poll.support import T0, Clock, runs, scheduler

FLOW = """
flow: edi-drop
trigger:
  poll:
    every: 1m
    files: {{dir: "{dir}", pattern: "*.edi", stable_for: 10s{extra}}}
steps:
  - id: keep
    set: {{name: $headers.name}}
"""


def drop_app(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return inbox, make_app(tmp_path, {"edi-drop": FLOW.format(dir=inbox, extra=extra)})


def test_a_growing_file_is_taken_only_once_its_size_held(tmp_path: Path) -> None:
    inbox, app = drop_app(tmp_path)
    clock = Clock(T0.timestamp())
    growing = inbox / "PO-1.edi"
    growing.write_text("ISA*00*", encoding="utf-8")
    with scheduler(app, clock) as sched:
        assert [f.reason for f in sched.tick()] == ["slot"]  # first look: it may be growing
        assert runs(app, "edi-drop") == []
        assert sched.next_poll() == clock.now + 10  # a second look, sooner than the next slot

        with growing.open("a", encoding="utf-8") as out:  # still being written
            out.write("GS*PO~")
        clock.now += 10
        assert [f.reason for f in sched.tick()] == ["recheck"]
        assert runs(app, "edi-drop") == [] and growing.exists()

        clock.now += 10  # unchanged for 10 s now: complete
        assert [f.reason for f in sched.tick()] == ["recheck"]
    [envelope] = runs(app, "edi-drop")
    assert envelope["body"] == "ISA*00*GS*PO~"
    stat = (inbox / "archive" / "PO-1.edi").stat()
    assert envelope["headers"]["name"] == "PO-1.edi"
    assert envelope["headers"]["size"] == stat.st_size == 13
    assert envelope["headers"]["file_id"] == f"PO-1.edi:13:{stat.st_mtime_ns}"
    assert envelope["headers"]["mtime"].endswith("Z")
    assert not growing.exists()


def test_a_marker_file_says_when_a_file_is_complete(tmp_path: Path) -> None:
    inbox, app = drop_app(tmp_path, ', marker_suffix: ".done"')
    clock = Clock(T0.timestamp())
    (inbox / "ASN-7.edi").write_text("ST*856~", encoding="utf-8")
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 3600  # however long it sits, no marker means not complete
        sched.tick()
        assert runs(app, "edi-drop") == []
        (inbox / "ASN-7.edi.done").touch()
        clock.now += 60
        sched.tick()
    assert [e["body"] for e in runs(app, "edi-drop")] == ["ST*856~"]
    assert sorted(p.name for p in (inbox / "archive").iterdir()) == ["ASN-7.edi",
                                                                     "ASN-7.edi.done"]
    assert sorted(p.name for p in inbox.iterdir()) == ["archive"]


def test_archive_error_with_reason_and_no_second_run(tmp_path: Path) -> None:
    inbox, app = drop_app(tmp_path)
    clock = Clock(T0.timestamp())
    (inbox / "good.edi").write_text("ST*850~", encoding="utf-8")
    (inbox / "bad.edi").write_bytes(b"ST*850*\xff\xfe~")
    (inbox / "ignored.txt").write_text("not matched by the pattern", encoding="utf-8")
    with scheduler(app, clock) as sched:
        sched.tick()
        clock.now += 10
        sched.tick()
        assert [e["body"] for e in runs(app, "edi-drop")] == ["ST*850~"]
        assert (inbox / "archive" / "good.edi").exists()
        reason = (inbox / "error" / "bad.edi.reason.txt").read_text(encoding="utf-8")
        assert "bad.edi: the file is not UTF-8 text (byte 7: b'\\xff')" in reason
        assert (inbox / "error" / "bad.edi").read_bytes() == b"ST*850*\xff\xfe~"
        assert (inbox / "ignored.txt").exists()

        # the same file delivered again (same name, size and mtime): no second run
        archived = inbox / "archive" / "good.edi"
        again = inbox / "good.edi"
        again.write_text("ST*850~", encoding="utf-8")
        os.utime(again, ns=(archived.stat().st_atime_ns, archived.stat().st_mtime_ns))
        clock.now += 60
        sched.tick()
        clock.now += 10
        sched.tick()
    assert len(runs(app, "edi-drop")) == 1
    assert not again.exists()
    assert len(list((inbox / "archive").glob("good*.edi"))) == 2  # kept both, nothing lost


@pytest.mark.parametrize(("folder", "expected"), [
    ("sftp://acme/outbound", "5:18 no connection 'acme' in {connections}; did you mean "
                             "'acme_3pl'?"),
    ("sftp://erp/outbound", "5:18 connection 'erp' is an http connection; this needs sftp"),
    ("sftp:///outbound", "5:18 'sftp:///outbound' names no connection; write "
                         "sftp://<connection>/<folder>, e.g. sftp://3pl_acme/outbound/asn"),
])
def test_sftp_drop_folders_name_a_known_sftp_connection(tmp_path: Path, loader: Loader,
                                                        folder: str, expected: str) -> None:
    connections = tmp_path / "connections"
    connections.mkdir()
    (connections / "acme_3pl.yaml").write_text(
        "connection: acme_3pl\nsftp: {host: sftp.acme.example, username: dist, "
        "password: '${secret:ACME_SFTP}', host_key: 'SHA256:abc'}\n", encoding="utf-8")
    (connections / "erp.yaml").write_text("connection: erp\nhttp: {base_url: 'http://erp'}\n",
                                          encoding="utf-8")
    (tmp_path / "flows").mkdir()
    path = tmp_path / "flows" / "edi-drop.yaml"
    path.write_text(FLOW.format(dir=folder, extra="").lstrip(), encoding="utf-8")
    flow, problems = loader.load_file(path)
    messages = [f"{p.line}:{p.column} {p.message}" for p in problems if p.severity == "error"]
    assert flow is None
    assert messages == [expected.format(connections=connections)]
