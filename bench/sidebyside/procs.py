"""The bench's own processes: each server in a process group of its own, all of them stopped on
the way out (an error, Ctrl-C or SIGTERM included), and their CPU read from /proc.

A server is measured as its whole process tree (a Celery worker's pool processes, a server's
own workers), so a redesign that moves work into child processes is still counted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


class Processes:
    """Every process the bench started; `stop_all` ends their process groups, newest first."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start *args* in a new session (its own process group), output to logs/<name>.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(args, cwd=cwd, env=dict(env) if env else None,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after *grace* seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                # the leader is gone; pool processes of its group may linger a moment
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue
        self.started = [(n, p) for n, p in self.started if p is not process]

    def stop_pids(self, pids: Iterable[int]) -> None:
        for process in [p for _, p in self.started if p.pid in set(pids)]:
            self.stop(process)

    def stop_all(self) -> None:
        """Stop everything; a second Ctrl-C or SIGTERM does not cut the clean-up short."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for _, process in reversed(list(self.started)):
                self.stop(process)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the bench like Ctrl-C does: through its ``finally`` blocks."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- /proc -------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces


def tree(roots: Iterable[int]) -> set[int]:
    """*roots* and all their descendants alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid for pid in roots if Path(f"/proc/{pid}").exists()]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(parents.get(pid, []))
    return found


def tree_cpu(roots: Iterable[int]) -> float:
    """CPU seconds (user + system) the process trees of *roots* have used so far, counting the
    children they already reaped (cutime, cstime) too."""
    total = 0
    for pid in tree(roots):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / _TICK


def settle(roots: Iterable[int], window: float = 0.3, idle_share: float = 0.05,
           limit: float = 120.0) -> float:
    """Wait until the trees of *roots* use under *idle_share* of a core over *window* seconds
    (work queued by the last measurement is done), at most *limit* seconds; the seconds waited."""
    roots = list(roots)
    started = time.monotonic()
    before = tree_cpu(roots)
    while time.monotonic() - started < limit:
        time.sleep(window)
        now = tree_cpu(roots)
        if now - before < idle_share * window:
            break
        before = now
    return time.monotonic() - started


def wait_until(ready: Callable[[], bool], what: str, alive: Callable[[], bool],
               limit: float = 90.0, log: Callable[[], str] = lambda: "") -> None:
    """Poll *ready* every 0.1 s until true; fail when *alive* says the process died, or after
    *limit* seconds, with the end of its log."""
    deadline = time.monotonic() + limit
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited while starting:\n{log()}")
        try:
            if ready():
                return
        except Exception as exc:  # not listening yet: refused, reset, a client library's own
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready after {limit:.0f} s ({last}):\n{log()}")
