"""The ``files`` poll source: take files dropped in a folder, one message per file.

The folder is local (``dir: /data/edi/in``) or on a partner's server
(``dir: sftp://3pl_acme/outbound/asn``: the kind and name of a connection, then the absolute
folder on the server; the connection kind's ``drop`` opens it, e.g. `connectors.sftp_drop`).
Both behave the same; only the `Drop` differs.

A file is taken only once it is complete: either its size and modification time held between
two looks at least ``stable_for`` apart (a second look is asked for at that time, sooner than the
next slot), or its marker ``FILE+marker_suffix`` exists. Taken files move to ``archive/`` beside
them; a file that cannot be taken in (unreadable, not UTF-8 text, too large) moves to ``error/``
with ``FILE.reason.txt`` saying why. The body is the text; the headers are name, size, mtime,
path and ``file_id`` (name:size:mtime), on which intake deduplicates — so a crash between intake
and the move costs a second look, never a second run. A store or a server that cannot be reached
fails the poll and leaves the file where it is, for the retry. A file larger than
``MAX_FILE_BYTES`` goes to ``error/`` without being read at all.

Only regular files are read. A symbolic link in the drop folder is never followed — whoever can
write to the folder could otherwise make flowrunner read ``/proc/self/environ`` (every secret) or
any file outside it — and goes to ``error/`` unread, as do FIFOs, sockets and devices; a local
file is opened with ``O_NOFOLLOW`` and checked to be a regular file once open, so a file swapped
for a link after the listing is refused too. Hard links are taken like any file: on Linux
(``fs.protected_hardlinks=1``, the default) a user can hard-link only files they own or may read
and write, so one reveals nothing its maker could not copy in. ``archive/`` and ``error/`` must be
real folders, not links, or the poll fails.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import logging
import os
import re
import stat as st
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any, Protocol

from engine.dsl.base import ExprSpec
from engine.dsl.triggers import FileSource, PollTrigger
from engine.poll.source import PollOutcome, PollRun
from engine.problems import Path, did_you_mean
from engine.registry import registry
from engine.types import BuildContext, PollSourceKind, StepError

log = logging.getLogger("flowrunner.scheduler")

MAX_FILE_BYTES = 50 * 1024 * 1024
ARCHIVE, ERROR = "archive", "error"
REASON_SUFFIX = ".reason.txt"
#: a remote folder: <connection kind>://<connection name>/<folder>
REMOTE = re.compile(r"(?P<kind>[a-z][a-z0-9_]*)://(?P<name>[^/]*)(?P<folder>.*)")
#: intake deduplicates files on this header unless the trigger names its own idempotency_key
IDEMPOTENCY = ExprSpec("jsonata", '$headers."file_id"')


@dataclass(frozen=True)
class DropFile:
    name: str
    size: int
    mtime_ns: int
    #: where the file is, for the ``path`` header: a local path or sftp://connection/path
    where: str
    #: why the entry is never read (a symbolic link, a FIFO...): it goes to error/ at once
    refused: str | None = None


LINK_REFUSED = ("the entry is a symbolic link; links are never followed out of a drop folder "
                "(drop the file itself)")
SPECIAL_REFUSED = "the entry is not a regular file (a FIFO, socket or device); it is not read"


def refusal(mode: int) -> str | None:
    """Why an entry of this ``st_mode`` (as lstat gives it) is not taken in, or None."""
    if st.S_ISLNK(mode):
        return LINK_REFUSED
    return None if st.S_ISREG(mode) else SPECIAL_REFUSED


class Vanished(Exception):
    """The file went away between two looks (taken by someone else): not an error."""


class Unreadable(Exception):
    """The file is there but cannot be read: it goes to error/ with this reason."""


class Drop(Protocol):
    """One look at a drop folder, open for the length of one poll."""

    def files(self, pattern: str) -> list[DropFile]: ...

    def stat(self, name: str) -> DropFile | None: ...

    def read(self, file: DropFile, max_bytes: int) -> bytes: ...

    def move(self, name: str, folder: str) -> str | None: ...

    def write_text(self, folder: str, name: str, text: str) -> None: ...


class LocalDrop:
    def __init__(self, folder: FsPath):
        self.folder = folder

    def files(self, pattern: str) -> list[DropFile]:
        if not self.folder.is_dir():
            raise StepError(f"the drop folder {self.folder} does not exist (or is not a "
                            "folder)", kind="connection", retryable=True)
        # folders (archive/, error/, a partner's own) are not files to take; links to anything are
        found = (self.stat(p.name) for p in sorted(self.folder.glob(pattern))
                 if p.is_symlink() or not p.is_dir())
        return [f for f in found if f is not None]

    def stat(self, name: str) -> DropFile | None:
        path = self.folder / name
        try:
            info = path.lstat()  # the entry itself: a link is never followed
        except FileNotFoundError:
            return None
        return DropFile(name, info.st_size, info.st_mtime_ns, str(path), refusal(info.st_mode))

    def read(self, file: DropFile, max_bytes: int) -> bytes:
        path = self.folder / file.name
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise Vanished() from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link since the listing
                raise Unreadable(LINK_REFUSED) from None
            raise Unreadable(f"the file cannot be read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            try:
                if not st.S_ISREG(os.fstat(fd).st_mode):
                    raise Unreadable(SPECIAL_REFUSED)
                return handle.read(max_bytes + 1)
            except OSError as exc:
                raise Unreadable(f"the file cannot be read: {exc.strerror}") from None

    def move(self, name: str, folder: str) -> str | None:
        where = self._own_folder(folder)
        target = where / name
        if os.path.lexists(target):  # the same name dropped again: keep both
            target = where / f"{target.stem}.{time.time_ns()}{target.suffix}"
        try:
            os.replace(self.folder / name, target)  # renames a link itself, never its target
        except FileNotFoundError:
            return None
        return target.name

    def write_text(self, folder: str, name: str, text: str) -> None:
        path = self._own_folder(folder) / name
        # O_NOFOLLOW: a link planted under the reason file's name is not written through
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)

    def _own_folder(self, folder: str) -> FsPath:
        """archive/ or error/, made if missing; a link in their place would send the moved
        files and reason files elsewhere, so it fails the poll."""
        where = self.folder / folder
        with contextlib.suppress(FileExistsError):
            where.mkdir()
        if where.is_symlink() or not where.is_dir():
            raise StepError(f"{where} is not a folder (a link or a file is in its place); "
                            "move it away so files can be moved there", kind="config",
                            retryable=False)
        return where


@dataclass
class _Look:
    size: int
    mtime_ns: int
    at: float


class FilePoll:
    def __init__(self, trigger: PollTrigger, ctx: BuildContext, path: Path):
        self.config: FileSource = trigger.source_config
        for name in ("items", "cursor", "paginate"):
            if getattr(trigger, name) is not None:
                ctx.problem((*path, name), f"'{name}:' applies to http sources; a files source "
                            "takes each file as one message", key=True)
        self._open = _opener(self.config.dir, ctx, (*path, "files", "dir"))
        self._looks: dict[str, _Look] = {}

    def poll(self, run: PollRun) -> PollOutcome:
        now = run.now()
        outcome = PollOutcome()
        present: set[str] = set()
        with self._open(run) as drop:
            for file in drop.files(self.config.pattern):
                if self._is_marker(file.name):
                    continue
                present.add(file.name)
                if file.refused is not None:
                    self._reject(drop, file, file.refused)
                    continue
                ready, again_at = self._ready(drop, file, now)
                if again_at is not None:
                    outcome.again_at = min(outcome.again_at or again_at, again_at)
                if ready and self._take(drop, file, run, outcome):
                    self._looks.pop(file.name, None)
        for gone in set(self._looks) - present:
            del self._looks[gone]
        return outcome

    # -- the partial-file guard ----------------------------------------------------------------
    def _is_marker(self, name: str) -> bool:
        suffix = self.config.marker_suffix
        return bool(suffix) and name.endswith(suffix)  # type: ignore[arg-type]

    def _ready(self, drop: Drop, file: DropFile, now: float) -> tuple[bool, float | None]:
        if self.config.marker_suffix:
            return drop.stat(file.name + self.config.marker_suffix) is not None, None
        look = self._looks.get(file.name)
        if look is None or (look.size, look.mtime_ns) != (file.size, file.mtime_ns):
            # first look, or it changed since: it may still be being written
            self._looks[file.name] = _Look(file.size, file.mtime_ns, now)
            return False, now + self.config.stable_for
        if now - look.at < self.config.stable_for:
            return False, look.at + self.config.stable_for
        return True, None

    # -- intake and the moves ------------------------------------------------------------------
    def _take(self, drop: Drop, file: DropFile, run: PollRun, outcome: PollOutcome) -> bool:
        if file.size > MAX_FILE_BYTES:
            self._reject(drop, file, f"the file has {file.size} bytes; files larger than "
                         f"{MAX_FILE_BYTES} bytes are not taken in")
            return True
        try:
            raw = drop.read(file, MAX_FILE_BYTES)
        except Vanished:
            return False
        except Unreadable as exc:
            self._reject(drop, file, str(exc))
            return True
        if len(raw) > MAX_FILE_BYTES:
            return False  # grew past the limit while read: the next look rejects it by size
        after = drop.stat(file.name)
        if after is None or (after.size, after.mtime_ns) != (file.size, file.mtime_ns):
            return False  # written to while we read it: not complete after all
        try:
            text = _decode(raw, self.config.encoding)
        except UnicodeDecodeError as exc:
            self._reject(drop, file, f"the file is not {self.config.encoding.upper()} text "
                         f"(byte {exc.start}: {raw[exc.start:exc.start + 1]!r})")
            return True
        try:
            accepted = run.take(text, headers(file))
        except StepError:
            raise  # the store did not take it: the poll fails, the file stays for the retry
        except Exception as exc:
            self._reject(drop, file, f"intake failed: {type(exc).__name__}: {exc}")
            return True
        outcome.records += 1
        outcome.duplicates += bool(getattr(accepted, "duplicate", False))
        self._move(drop, file.name, ARCHIVE)
        return True

    def _reject(self, drop: Drop, file: DropFile, reason: str) -> None:
        log.warning("%s moved to %s/: %s", file.where, ERROR, reason)
        target = self._move(drop, file.name, ERROR)
        if target is not None:
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            drop.write_text(ERROR, target + REASON_SUFFIX,
                            f"{file.name}: {reason}\nmoved from {self.config.dir} at {stamp}\n")

    def _move(self, drop: Drop, name: str, folder: str) -> str | None:
        target = drop.move(name, folder)
        suffix = self.config.marker_suffix
        if target is not None and suffix and drop.stat(name + suffix) is not None:
            drop.move(name + suffix, folder)
        return target


def _decode(raw: bytes, encoding: str) -> str:
    """A UTF-8 byte-order mark says what the file is, whatever the trigger's encoding says."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8")
    return raw.decode(encoding)


def headers(file: DropFile) -> dict[str, Any]:
    """The message headers of one file; ``file_id`` is what intake deduplicates on."""
    mtime = datetime.fromtimestamp(file.mtime_ns / 1e9, UTC)
    return {"name": file.name, "size": file.size,
            "mtime": mtime.isoformat().replace("+00:00", "Z"), "path": file.where,
            "file_id": f"{file.name}:{file.size}:{file.mtime_ns}"}


def _opener(folder: str, ctx: BuildContext, path: Path) -> Any:
    """How each poll opens the folder: a local one as it is, a remote one through the
    connection kind that owns its ``kind://``."""
    remote = REMOTE.fullmatch(folder)
    if remote is not None:
        return _remote(remote, ctx, path)

    @contextlib.contextmanager
    def local(run: PollRun) -> Iterator[Drop]:
        yield LocalDrop(FsPath(folder))

    return local


def _remote(url: re.Match[str], ctx: BuildContext, path: Path) -> Any:
    """At load: resolve ``<kind>://<connection>/<folder>`` (a problem at *path* if it does
    not); returns how each poll opens the drop."""
    kinds = {n: k for n, k in registry().connections.items() if k.drop is not None}
    kind, name = url["kind"], url["name"]
    if kind not in kinds:
        ctx.problem(path, f"'{kind}://' is no kind of remote folder"
                    + (did_you_mean(kind, kinds) or f"; known: {', '.join(sorted(kinds))}"))
        return None
    if not name:
        ctx.problem(path, f"'{url[0]}' names no connection; write {kind}://<connection>/"
                          "<folder>, e.g. sftp://3pl_acme/outbound/asn")
        return None
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(path, f"no connection '{name}': named connections are not loaded here")
        return None
    config = connections.lookup(name, kind, ctx, path)
    if config is None:
        return None
    folder = "/" + url["folder"].strip("/")
    drop = kinds[kind].drop
    assert drop is not None
    return drop(name, config, folder, f"{kind}://{name}{folder.rstrip('/')}")


def build(trigger: PollTrigger, ctx: BuildContext, path: Path) -> FilePoll:
    return FilePoll(trigger, ctx, path)


SOURCE = PollSourceKind(name="files", config=FileSource, build=build,
                        description="Take files dropped in a local folder, or in a remote one "
                                    "through a connection (sftp://connection/folder): one "
                                    "message per complete file.",
                        idempotency_key=IDEMPOTENCY)
