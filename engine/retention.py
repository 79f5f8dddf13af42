"""Retention in a running process: the policy of the loaded flows, and the pruner that applies it.

`flowrun serve` and `flowrun scheduler` run a `Pruner` every ``FLOWRUN_PRUNE_INTERVAL``; of
several processes on one store, the one holding the ``prune`` lock prunes, the others skip that
tick. `flowrun prune` runs the same pass by hand. What goes is decided in engine/store/pruning.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from engine.periodic import Periodic
from engine.store.base import Keep, PruneReport, RetentionPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.compiled import FlowSet
    from engine.settings import Settings
    from engine.store.base import Store

log = logging.getLogger("flowrunner.retention")

LOCK = "prune"


def policy(settings: Settings, flows: FlowSet) -> RetentionPolicy:
    """The settings' retention, with each loaded flow's ``retention:`` block over it. A flow
    that is no longer loaded keeps its records by the settings."""
    default = Keep(runs=settings.retention_runs, bodies=settings.retention_bodies,
                   dead_letters=settings.retention_dead_letters)
    own = {}
    for flow_id, flow in flows.flows.items():
        spec = getattr(flow.model, "retention", None)
        if spec is not None and spec.given():
            own[flow_id] = Keep(**{**default.__dict__, **spec.given()})
    return RetentionPolicy(default, own)


def summary(report: PruneReport, dry_run: bool = False) -> str:
    """One log line: what went, by kind."""
    kinds: dict[str, int] = {}
    for (_, kind), n in report.counts.items():
        kinds[kind] = kinds.get(kind, 0) + n
    what = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
    verb = "would remove" if dry_run else "removed"
    return f"retention {verb} {what or 'nothing'} ({report.bytes_freed / 1e6:.1f} MB of records)"


class Pruner(Periodic):
    """Applies the retention of today's flows to the store, one pass per interval."""

    duty = "retention pruning"

    def __init__(self, store: Store, settings: Settings, flows: Callable[[], FlowSet], *,
                 interval: float | None = None, first: float = 60.0):
        interval = settings.prune_interval if interval is None else interval
        super().__init__(interval, first=min(first, interval))
        self.store, self.settings, self.flows = store, settings, flows
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    def prune(self, *, flow: str | None = None, dry_run: bool = False) -> PruneReport | None:
        """One pass now (of *flow* only, if given), unless another process is pruning this
        store (then None); its report."""
        if not self.store.acquire_lock(LOCK, self.owner, self.settings.prune_lease):
            return None
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(done,), daemon=True,
                                   name="flowrun prune lease")
        renewer.start()
        try:
            report = self.store.prune(policy(self.settings, self.flows()), time.time(),
                                      batch=self.settings.prune_batch, flow=flow,
                                      dry_run=dry_run)
        finally:
            done.set()
            renewer.join()
            self.store.release_lock(LOCK, self.owner)
        if report.total and not dry_run:
            log.info("%s", summary(report))
        return report

    def _renew(self, done: threading.Event) -> None:
        # a pass over a long history takes minutes; the lease is renewed while it runs
        lease = self.settings.prune_lease
        while not done.wait(lease / 3):
            try:
                self.store.acquire_lock(LOCK, self.owner, lease)
            except Exception:  # the next renewal tries again; the pass goes on meanwhile
                log.warning("prune lease not renewed", exc_info=True)

    def tick(self) -> None:
        self.prune()
