"""Run a command on a pseudo-terminal, as a person at a terminal would, and read what it shows.

Colour, progress bars and prompts depend on whether the output is a terminal; subprocess pipes
never are, so these tests give the command a real pty (stdin, stdout and stderr alike) and may
type an answer once a prompt appears.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


def in_terminal(args: list[str], env: dict[str, str], cwd: str, *, answer: str | None = None,
                prompt: bytes = b"[y/N]", timeout: float = 90.0) -> tuple[int, str]:
    """(exit status, everything shown) of *args*; *answer* is typed after *prompt* appears."""
    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                               env={**env, "TERM": "xterm", "COLUMNS": "100"})
    os.close(slave)
    shown, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{args} did not finish in {timeout:g} s:\n{shown!r}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed: the process is done writing
                break
            if not chunk:
                break
            shown += chunk
            if answer is not None and not answered and prompt in shown:
                os.write(master, answer.encode() + b"\n")
                answered = True
        return process.wait(timeout=30), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
