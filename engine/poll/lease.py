"""A lock with a lease in the store, renewed in the background while the holder works.

A holder that dies or is paused (SIGSTOP) stops renewing, so its lease runs out and another
process may take over; `held` renews on the spot and tells the holder whether it still may
commit what it did.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from engine.store.base import Store

log = logging.getLogger("flowrunner.scheduler")


class Lease:
    def __init__(self, store: Store, name: str, owner: str, ttl: float):
        self.store, self.name, self.owner, self.ttl = store, name, owner, ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.store.acquire_lock(self.name, self.owner, self.ttl):
            return False
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def held(self) -> bool:
        """Renew now; False when another owner has the lock (our lease ran out meanwhile)."""
        try:
            return self.store.acquire_lock(self.name, self.owner, self.ttl)
        except Exception:
            log.warning("lease %s could not be renewed", self.name, exc_info=True)
            return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.store.release_lock(self.name, self.owner)
        except Exception:  # it expires by itself
            log.warning("lease %s not released", self.name, exc_info=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if not self.held():
                log.error("lost the lease %s; another scheduler may take over", self.name)
