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
                prompt: bytes = b"[y/N]", timeout: float = 90.0,
                answers: list[tuple[bytes, str]] | None = None) -> tuple[int, str]:
    """(exit status, everything shown) of *args*; *answer* is typed after *prompt* appears, or
    each of *answers* (prompt, answer) in turn, each after its prompt appears (a password
    prompt discards what was typed ahead)."""
    pending = list(answers or ([(prompt, answer)] if answer is not None else []))
    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                               env={**env, "TERM": "xterm", "COLUMNS": "100"})
    os.close(slave)
    shown, seen = b"", 0  # seen: where the next prompt is looked for
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
            if pending and pending[0][0] in shown[seen:]:
                asked, typed = pending.pop(0)
                seen = shown.index(asked, seen) + len(asked)
                os.write(master, typed.encode() + b"\n")
        return process.wait(timeout=30), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
