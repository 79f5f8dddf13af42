"""Helpers for the named-connection tests: a project folder with ``connections/``, ``flows/``
and a secrets file, and a real `App` over it (embedded executor, SQLite store).

Flows find their connections the way they do in production: the loader looks for the nearest
``connections/`` folder above each flow file. Secrets come from a mode-0600 secrets file, so
the tests go through the same redaction as a deployed worker.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.app import App
from engine.records import RunState
from engine.settings import Settings
from engine.store.base import DeadLetterFilter
from tests.conftest import ROOT

#: a flow that gives up at the first failure, so a failing call lands in the DLQ at once
NO_RETRY = "defaults:\n  retry: {max_attempts: 1}\n"


def one_call(http: str, *, flow_id: str = "t", extra: str = NO_RETRY) -> str:
    """A flow with one call step ``send`` whose ``http:`` block is *http*; output in vars."""
    return (f"flow: {flow_id}\n{extra}steps:\n  - id: send\n    call:\n      http: {http}\n"
            "    output: vars.resp\n")


class Project:
    """A folder as an analyst lays it out, and the App a worker would build over it."""

    def __init__(self, root: Path):
        self.root = root
        self.connections = root / "connections"
        self.flows = root / "flows"
        self.connections.mkdir(parents=True, exist_ok=True)
        self.flows.mkdir(exist_ok=True)
        self.secrets_file = root / "secrets.env"
        self.secrets: dict[str, str] = {}
        self._apps: list[App] = []

    def connection(self, name: str, text: str) -> Path:
        path = self.connections / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def flow(self, text: str, flow_id: str = "t") -> Path:
        path = self.flows / f"{flow_id}.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def secret(self, **values: str) -> None:
        self.secrets.update(values)
        self.secrets_file.write_text("".join(f"{k}={v}\n" for k, v in self.secrets.items()),
                                     encoding="utf-8")
        self.secrets_file.chmod(0o600)

    def app(self, *, start: bool = True) -> App:
        if not self.secrets_file.exists():
            self.secret()
        made = App(Settings(home=self.root / "home", flows=self.flows, schemas=ROOT / "schemas",
                            secrets_file=self.secrets_file, workers=4))
        self._apps.append(made)
        assert made.flows.ok, [str(p) for p in made.flows.problems]
        if start:
            made.executor.start()
        return made

    def run(self, app: App, body: Any = None, flow_id: str = "t") -> RunState:
        accepted = app.accept(app.flows.flows[flow_id], body)
        state, = app.wait_for(accepted.run_id, timeout=30)
        assert state.done, state
        return state

    def everything_kept(self, app: App, state: RunState) -> str:
        """The run record and its dead-letter entries as stored, as one text to search."""
        stored = app.store.get_run(state.run_id)
        assert stored is not None
        entries = [e.to_dict() for e in app.store.list_dead_letters(DeadLetterFilter(status=None))
                   if e.run_id == state.run_id]
        return json.dumps({"run": stored.to_dict(), "dlq": entries}, default=str)

    def close(self) -> None:
        for made in self._apps:
            made.executor.stop(timeout=2)
            made.loader.close()  # broker clients: none left reconnecting after the test
            made.store.close()


@contextmanager
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path)
    try:
        yield made
    finally:
        made.close()


def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture everything at DEBUG, urllib3's request lines (URL and query) included."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "flowrunner"):
        caplog.set_level(logging.DEBUG, logger=name)


def our_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured line but the test servers' own access logs (werkzeug prints the URL
    it received, key and all: that is the partner's log, not ours)."""
    return "\n".join(caplog.handler.format(r) for r in caplog.records
                     if not r.name.startswith("werkzeug"))
