"""A flowrunner project folder with one bus-triggered flow, and `flowrun consume` (or `flowrun
serve --consume`) run on it.

Shared by the tests of each bus: the flow, the connection file and the secrets are written into
a temporary folder, the consumer is a real subprocess (so it can be SIGKILLed), and the runs are
read from its SQLite state file.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.records import RunState
from engine.store.base import DeadLetterFilter, RunFilter
from engine.store.sqlite import SqliteStore
from tests.conftest import ROOT, size, wait_until

#: messages of the per-key ordering proofs: 10,000 with FLOWRUN_RELIABILITY=full
ORDERED = size(2000, 10_000)
#: keys they are spread over (message i has key i % KEYS)
KEYS = 10


def ordered_timeout(count: int) -> float:
    """How long the ordering proofs wait for *count* runs (a shared 2-core box is slow)."""
    return 60 + count * 0.09


def check_per_key_order(bus: str, runs: list[RunState], started: float) -> None:
    """Each key's runs were created in the order of their ``seq``; prints the figures."""
    by_key: dict[str, list[int]] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        body = run.original["body"]
        by_key.setdefault(body["k"], []).append(body["seq"])
    violations = sum(1 for seqs in by_key.values() for a, b in itertools.pairwise(seqs)
                     if b < a)
    print(f"ordering: bus={bus} messages={len(runs)} keys={len(by_key)} "
          f"seconds={time.monotonic() - started:.1f} order_violations={violations}")
    assert len(runs) == ORDERED and len(by_key) == KEYS
    assert violations == 0
    for seqs in by_key.values():
        assert seqs == sorted(seqs) and len(seqs) == ORDERED // KEYS


class Project:
    def __init__(self, folder: Path, flow: str, connection: str, flow_id: str, *,
                 command: tuple[str, ...] = ("consume",)):
        self.folder, self.flow_id, self.command = folder, flow_id, command
        (folder / "flows").mkdir()
        (folder / "connections").mkdir()
        (folder / "flows" / f"{flow_id}.yaml").write_text(flow, encoding="utf-8")
        name = connection.split("connection:", 1)[1].split()[0]
        (folder / "connections" / f"{name}.yaml").write_text(connection, encoding="utf-8")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWRUN_HOME": str(folder / "home"),
                    "FLOWRUN_SECRET_BUS_PASSWORD": "guest", "FLOWRUN_WORKERS": "2"}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "consume.log"

    def start(self) -> subprocess.Popen[bytes]:
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *self.command, "--flows",
             str(self.folder / "flows")],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM, and the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"flowrun {self.command[0]} did not stop on SIGTERM:\n"
                                 f"{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def store(self) -> SqliteStore:
        return SqliteStore(self.folder / "home" / "state.db")

    def runs(self, status: str | None = None) -> list[RunState]:
        if not (self.folder / "home" / "state.db").exists():
            return []
        store = self.store()
        try:
            return store.list_runs(RunFilter(flow=self.flow_id, status=status, limit=100_000))
        finally:
            store.close()

    def wait_runs(self, count: int, status: str = "succeeded", timeout: float = 60.0
                  ) -> list[RunState]:
        def enough() -> list[RunState] | None:
            assert self.process is None or self.process.poll() is None, self.output()
            found = self.runs(status)
            return found if len(found) >= count else None
        return wait_until(enough, timeout, f"{count} {status} runs")

    def dead_letters(self) -> list:
        if not (self.folder / "home" / "state.db").exists():
            return []
        store = self.store()
        try:
            return store.list_dead_letters(DeadLetterFilter(flow=self.flow_id, limit=1000))
        finally:
            store.close()
