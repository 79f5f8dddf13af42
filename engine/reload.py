"""Hot reload: a changed flow file is validated, then new runs use the new version.

A watcher thread compares the flow folder's files (name, size, mtime) every
``FLOWRUN_RELOAD_INTERVAL`` seconds (default 2; 0 turns it off) — polling needs no dependency and
works on network file systems where inotify does not. On a change the whole folder is loaded
again, exactly as at start-up. If any file has errors the change is refused as a whole: each
problem is logged with its file, line and column, and the flows loaded before keep running (a
half-applied change could leave a hand-off pointing at a flow that no longer loads). Otherwise
the new set replaces the old one at once.

Runs in flight are not affected: each run records its flow version, and `FlowVersions.get`
serves that version — kept in memory, or rebuilt from the text the store keeps of every version
that ever took a run. Webhook paths, signature settings and poll schedules are read when the
server or scheduler starts; changing those needs a restart (everything a run executes reloads).
Consume triggers follow a reload: their consumers start, restart or stop (engine/consumers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.loader import FLOW_SUFFIXES
from engine.periodic import Periodic
from engine.problems import Problem

if TYPE_CHECKING:
    from engine.loader import Loader
    from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.reload")

Signature = tuple[tuple[str, int, int], ...]


class ReloadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWRUN_RELOAD_", extra="ignore")

    interval: float = Field(2.0, ge=0, description="Seconds between checks of the flow files "
                                                   "for changes; 0 turns hot reload off.")


@dataclass
class Reload:
    """What one reload did: versions now in use, flows removed, or the problems that refused it."""

    changed: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused


def signature(folder: Path) -> Signature:
    """The flow files under *folder* as (path, size, mtime); the loader's selection of files."""
    found = []
    for path in folder.rglob("*"):
        if path.suffix not in FLOW_SUFFIXES or path.name.endswith((".test.yaml", ".test.yml")):
            continue
        try:
            stat = path.stat()
        except OSError:  # removed between listing and stat: the next check sees it gone
            continue
        found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def reload_flows(loader: Loader, versions: FlowVersions, folder: Path) -> Reload:
    """Load the flow folder again and use it if it has no errors; log what happened."""
    loaded = loader.load_paths([folder])
    if not loaded.ok:
        problems = sorted(loaded.problems.errors, key=lambda p: (p.file, p.line, p.column))
        log.error("flow change refused (%d problem%s); still running the flows loaded before",
                  len(problems), "" if len(problems) == 1 else "s")
        for problem in problems:
            log.error("  %s", problem)
        return Reload(refused=problems)
    before = {flow_id: flow.version for flow_id, flow in versions.flows.flows.items()}
    versions.use(loaded)
    result = Reload(
        changed={i: (before.get(i), f.version) for i, f in loaded.flows.items()
                 if before.get(i) != f.version},
        removed=sorted(set(before) - set(loaded.flows)))
    for flow_id, (old, new) in sorted(result.changed.items()):
        log.info("flow %s reloaded: new runs use version %s (was %s)", flow_id, new,
                 old or "not loaded")
    for flow_id in result.removed:
        log.info("flow %s removed: no new runs; runs in flight finish on their version", flow_id)
    return result


class FlowWatcher(Periodic):
    """Polls the flow folder and reloads on a change; one per process."""

    duty = "flow-file watcher"

    def __init__(self, loader: Loader, versions: FlowVersions, folder: Path,
                 interval: float | None = None):
        super().__init__(ReloadSettings().interval if interval is None else interval)
        self.loader, self.versions = loader, versions
        self.folder = Path(folder)
        self._seen = signature(self.folder)
        #: called after a reload was applied (the consumers follow their flows' triggers)
        self.listeners: list[Callable[[Reload], None]] = []

    def check(self) -> Reload | None:
        """Reload if a flow file changed since the last check; None when nothing changed."""
        now = signature(self.folder)
        if now == self._seen:
            return None
        self._seen = now  # a refused change is reported once, not on every check
        result = reload_flows(self.loader, self.versions, self.folder)
        if result.ok:
            for listener in self.listeners:
                listener(result)
        return result

    def tick(self) -> None:
        self.check()  # a failing check (folder unreadable for a moment) is logged, tried again
