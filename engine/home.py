"""The state folder (``FLOWRUN_HOME``, default ``.flowrun/``) is private to its owner.

It holds run records, dead-letter entries (whole messages: customers' addresses, prices), the
kept flow texts and X12 control numbers: nothing another local user should read. The folder is
made 0700 and each database file 0600 before SQLite opens it; SQLite gives its ``-wal`` and
``-shm`` files the mode of the database file, so they are 0600 too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FOLDER_MODE, FILE_MODE = 0o700, 0o600


def private_file(path: Path) -> None:
    """Make *path*'s folder private and the file itself (created empty if missing) 0600."""
    private_folder(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:  # an older file, made before this
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def private_folder(folder: Path) -> None:
    """Create *folder* (and its parents) 0700, or tighten an existing one that is ours.

    A shared folder given as the home by mistake (``/tmp``: sticky, or not ours) is left as it
    is: closing it would break everyone else using it; the files inside are private anyway."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=FOLDER_MODE, parents=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX \
            and stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(FOLDER_MODE)
