"""The flows runs execute: today's set, and every version a run was started on.

Hot reload swaps today's set (`use`); runs in flight keep their version, served from memory or
rebuilt from the text the store keeps of every version that ever took a run (`remember`), so a
worker that never loaded that file can still resume the run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.compiled import CompiledFlow, FlowSet
from engine.problems import Problem

if TYPE_CHECKING:
    from engine.store.base import Store


class FlowFiles(Protocol):
    """What rebuilding a kept version asks of the loader (`engine.loader.Loader`): the runs
    need a flow compiled from its text, not the loader that compiles it."""

    def load_file(self, file: str | os.PathLike[str],
                  raw: bytes | None = None) -> tuple[CompiledFlow | None, list[Problem]]: ...


class FlowVersions:
    def __init__(self, flows: FlowSet, *, store: Store | None = None,
                 loader: FlowFiles | None = None, folder: Path | None = None):
        self.flows = flows
        self._store, self._loader, self._folder = store, loader, folder
        self._versions: dict[tuple[str, str], CompiledFlow] = {
            (f.id, f.version): f for f in flows.flows.values()}
        self._saved: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def use(self, flows: FlowSet) -> None:
        """New runs use *flows* from now on; runs in flight keep their versions."""
        with self._lock:
            for flow in flows.flows.values():
                self._versions.setdefault((flow.id, flow.version), flow)
        for flow in flows.flows.values():
            self.remember(flow)  # other processes can rebuild the version from its text
        self.flows = flows

    def current(self, flow_id: str) -> CompiledFlow | None:
        """Today's version of the flow (a hand-off starts it), or None if it is not loaded."""
        return self.flows.flows.get(flow_id)

    def remember(self, flow: CompiledFlow) -> None:
        """Keep the flow's text in the store, once per version and process."""
        key = (flow.id, flow.version)
        if key in self._saved or self._store is None:
            return
        self._store.save_flow_version(flow.id, flow.version, flow.text)
        self._saved.add(key)

    def get(self, flow_id: str, version: str) -> CompiledFlow | None:
        """The compiled flow of that version: loaded now, or rebuilt from the kept text."""
        with self._lock:
            found = self._versions.get((flow_id, version))
        if found is not None or self._store is None or self._loader is None:
            return found
        text = self._store.get_flow_version(flow_id, version)
        if text is None:
            return None
        # named beside today's flow file, so it finds the same connections/ folder
        current = self.current(flow_id)
        folder = Path(current.file).parent if current else (self._folder or Path("."))
        flow, _ = self._loader.load_file(folder / f"{flow_id}@{version}.yaml",
                                         text.encode("utf-8"))
        if flow is None:
            return None
        flow.version = version  # the kept text hashes to it; the name must not change that
        with self._lock:
            self._versions[(flow_id, version)] = flow
        return flow
