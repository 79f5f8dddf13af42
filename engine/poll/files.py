"""The ``files`` poll source: take files dropped in a local folder, one message per file.

A file is taken only once it is complete: either its size and modification time held between
two looks at least ``stable_for`` apart (a second look is asked for at that time, sooner than the
next slot), or its marker ``FILE+marker_suffix`` exists. Taken files move to ``archive/`` beside
them; a file that cannot be taken in (unreadable, not UTF-8 text, too large) moves to ``error/``
with ``FILE.reason.txt`` saying why. The body is the text; the headers are name, size, mtime,
path and ``file_id`` (name:size:mtime), on which intake deduplicates — so a crash between intake
and the move costs a second look, never a second run. A store that cannot take the file in
fails the poll and leaves the file where it is, for the retry.

``sftp://connection/path`` folders are refused at load for now: ``connectors/sftp_client``
exists, but named connections (host, user, host key) do not yet.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any

from engine.dsl.base import ExprSpec
from engine.dsl.triggers import FileSource, PollTrigger
from engine.poll.source import Outcome, PollRun
from engine.problems import Path
from engine.types import BuildContext, StepError

log = logging.getLogger("flowrunner.scheduler")

MAX_FILE_BYTES = 50 * 1024 * 1024
ARCHIVE, ERROR = "archive", "error"
REASON_SUFFIX = ".reason.txt"
#: intake deduplicates files on this header unless the trigger names its own idempotency_key
IDEMPOTENCY = ExprSpec("jsonata", '$headers."file_id"')


@dataclass
class _Look:
    size: int
    mtime_ns: int
    at: float


class FilePoll:
    def __init__(self, trigger: PollTrigger, ctx: BuildContext, path: Path):
        assert trigger.files is not None
        self.config: FileSource = trigger.files
        for name in ("items", "cursor", "paginate"):
            if getattr(trigger, name) is not None:
                ctx.problem((*path, name), f"'{name}:' applies to http sources; a files source "
                            "takes each file as one message", key=True)
        if self.config.dir.startswith("sftp://"):
            # connectors/sftp_client can talk SFTP, but a connection name has nowhere to
            # resolve to yet (host, user, host key): refuse at load rather than fail each poll
            ctx.problem((*path, "files", "dir"), "sftp:// drop folders are not supported by the "
                        "files poll source yet (named SFTP connections do not exist); use a "
                        "local folder")
        self.folder = FsPath(self.config.dir)
        self._looks: dict[str, _Look] = {}

    def poll(self, run: PollRun) -> Outcome:
        if not self.folder.is_dir():
            raise StepError(f"the drop folder {self.folder} does not exist (or is not a "
                            "folder)", kind="connection", retryable=True)
        now = run.now()
        outcome = Outcome()
        present: set[str] = set()
        for path in sorted(self.folder.glob(self.config.pattern)):
            name = path.name
            if not path.is_file() or self._is_marker(name):
                continue
            present.add(name)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            ready, again_at = self._ready(path, stat, now)
            if again_at is not None:
                outcome.again_at = min(outcome.again_at or again_at, again_at)
            if ready and self._take(path, stat, run, outcome):
                self._looks.pop(name, None)
        for gone in set(self._looks) - present:
            del self._looks[gone]
        return outcome

    # -- the partial-file guard ----------------------------------------------------------------
    def _is_marker(self, name: str) -> bool:
        suffix = self.config.marker_suffix
        return bool(suffix) and name.endswith(suffix)  # type: ignore[arg-type]

    def _ready(self, path: FsPath, stat: os.stat_result, now: float) -> tuple[bool, float | None]:
        if self.config.marker_suffix:
            return path.with_name(path.name + self.config.marker_suffix).exists(), None
        look = self._looks.get(path.name)
        if look is None or (look.size, look.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            # first look, or it changed since: it may still be being written
            self._looks[path.name] = _Look(stat.st_size, stat.st_mtime_ns, now)
            return False, now + self.config.stable_for
        if now - look.at < self.config.stable_for:
            return False, look.at + self.config.stable_for
        return True, None

    # -- intake and the moves ------------------------------------------------------------------
    def _take(self, path: FsPath, stat: os.stat_result, run: PollRun, outcome: Outcome) -> bool:
        if stat.st_size > MAX_FILE_BYTES:
            self._reject(path, f"the file has {stat.st_size} bytes; files larger than "
                         f"{MAX_FILE_BYTES} bytes are not taken in")
            return True
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._reject(path, f"the file cannot be read: {exc.strerror}")
            return True
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            return False  # written to while we read it: not complete after all
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self._reject(path, f"the file is not UTF-8 text (byte {exc.start}: "
                         f"{raw[exc.start:exc.start + 1]!r})")
            return True
        headers: dict[str, Any] = {
            "name": path.name, "size": stat.st_size,
            "mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat().replace(
                "+00:00", "Z"),
            "path": str(path), "file_id": f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"}
        try:
            accepted = run.take(text, headers)
        except StepError:
            raise  # the store did not take it: the poll fails, the file stays for the retry
        except Exception as exc:
            self._reject(path, f"intake failed: {type(exc).__name__}: {exc}")
            return True
        outcome.records += 1
        outcome.duplicates += bool(getattr(accepted, "duplicate", False))
        self._move(path, ARCHIVE)
        return True

    def _reject(self, path: FsPath, reason: str) -> None:
        log.warning("%s moved to %s/: %s", path, ERROR, reason)
        target = self._move(path, ERROR)
        if target is not None:
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            target.with_name(target.name + REASON_SUFFIX).write_text(
                f"{path.name}: {reason}\nmoved from {path.parent} at {stamp}\n", encoding="utf-8")

    def _move(self, path: FsPath, folder: str) -> FsPath | None:
        where = self.folder / folder
        where.mkdir(exist_ok=True)
        target = where / path.name
        if target.exists():  # the same name dropped again: keep both
            target = where / f"{path.stem}.{time.time_ns()}{path.suffix}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        if self.config.marker_suffix:
            marker = path.with_name(path.name + self.config.marker_suffix)
            if marker.exists():
                os.replace(marker, target.with_name(target.name + self.config.marker_suffix))
        return target


def build(trigger: PollTrigger, ctx: BuildContext, path: Path) -> FilePoll:
    return FilePoll(trigger, ctx, path)
