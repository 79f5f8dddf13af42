"""SFTP drop folders for the ``files`` poll source: ``dir: sftp://<connection>/<folder>``.

The connection is a named SFTP connection (``connections/<name>.yaml``), checked when the flow
is loaded; the folder is absolute on the server. Each poll opens one SFTP session (host key
checked, never auto-accepted), lists, reads the complete files, moves them to ``archive/`` or
``error/`` beside them, and closes the session. Files still being uploaded under the
``.NAME.<random>.part`` convention are never listed. A server that cannot be reached fails the
poll as a retryable ``connection``/``timeout`` error; a refused login or changed host key fails
it for good (the scheduler logs it; the files stay where they are).

Entries are looked at with lstat: a symbolic link on the server is never read (it could point at
any file the SFTP account may read) and goes to ``error/`` with its reason, like a local one.
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections.abc import Iterator
from typing import Any

from connectors.sftp_client import RemoteFile, SftpClient, SftpError, open_named
from connectors.sftp_config import SftpConnection
from engine.plugin import DropFile, PollRun, StepError, Unreadable, Vanished, refusal


def _failed(exc: SftpError) -> StepError:
    return StepError(exc.message, kind=exc.kind, retryable=exc.retryable)


class SftpDrop:
    def __init__(self, client: SftpClient, url: str, folder: str):
        self.client, self.url, self.folder = client, url, folder

    def _file(self, remote: RemoteFile) -> DropFile:
        # a server that sends no mode (rare) is read as a regular file: get() checks again
        return DropFile(remote.name, remote.size, int(remote.mtime) * 1_000_000_000,
                        f"{self.url}/{remote.name}",
                        refusal(remote.mode) if remote.mode else None)

    def files(self, pattern: str) -> list[DropFile]:
        try:
            return [self._file(f) for f in self.client.list(self.folder, pattern, links=True)]
        except SftpError as exc:
            raise _failed(exc) from None

    def stat(self, name: str) -> DropFile | None:
        try:
            return self._file(self.client.stat(posixpath.join(self.folder, name),
                                               follow=False))
        except SftpError as exc:
            if exc.kind == "not_found":
                return None
            raise _failed(exc) from None

    def read(self, file: DropFile, max_bytes: int) -> bytes:
        try:
            return self.client.get(posixpath.join(self.folder, file.name), max_bytes,
                                   regular_only=True)
        except SftpError as exc:
            if exc.kind == "not_found":
                raise Vanished() from None
            if exc.kind == "not_regular":
                raise Unreadable(f"the entry is not read: {exc.message}") from None
            if exc.retryable:
                raise _failed(exc) from None
            raise Unreadable(f"the file cannot be read: {exc.message}") from None

    def move(self, name: str, folder: str) -> str | None:
        where = posixpath.join(self.folder, folder)
        try:
            self.client.ensure_folder(where)
            target = name
            if self.stat(posixpath.join(folder, name)) is not None:  # keep both
                stem, dot, suffix = name.rpartition(".")
                target = f"{stem}.{time.time_ns()}.{suffix}" if dot else f"{name}.{time.time_ns()}"
            self.client.move(posixpath.join(self.folder, name), posixpath.join(where, target))
        except SftpError as exc:
            if exc.kind == "not_found":
                return None
            raise _failed(exc) from None
        return target

    def write_text(self, folder: str, name: str, text: str) -> None:
        try:
            self.client.put(posixpath.join(self.folder, folder, name), text.encode("utf-8"))
        except SftpError as exc:
            raise _failed(exc) from None


def opener(name: str, config: SftpConnection, folder: str, label: str) -> Any:
    """How each poll opens the drop *folder* of connection *name* (checked at load)."""

    @contextlib.contextmanager
    def sftp(run: PollRun) -> Iterator[SftpDrop]:
        try:
            client = open_named(name, config, run.secrets)
        except SftpError as exc:
            raise _failed(exc) from None
        with client:
            yield SftpDrop(client, label, folder)

    return sftp
