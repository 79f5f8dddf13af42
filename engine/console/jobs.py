"""Bulk replay as a background job, so a request never waits for a thousand replays.

A job replays the entries a dead-letter filter selected when it started, one after another in
its own thread, and records the run each replay started (or why it was refused). Its progress
counts replays submitted; the outcome of the replayed runs is read from the store each time the
job is looked at. Jobs live in this process's memory: the replays themselves are ordinary runs
and audit entries in the store, so a restart loses only the progress view.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.app import App
from engine.dlq import ReplayRefused
from engine.store.base import DeadLetterFilter, StoreError

MAX_JOBS = 100  # finished jobs beyond this are forgotten, oldest first
BULK_LIMIT = 10_000


@dataclass
class Job:
    id: str
    who: str
    entry_ids: list[str]
    start_from: str
    version: str
    created_at: float = field(default_factory=time.time)
    processed: int = 0
    started: dict[str, str] = field(default_factory=dict)  # entry id → run id
    refused: dict[str, str] = field(default_factory=dict)  # entry id → reason
    state: str = "running"
    finished_at: float | None = None


class Jobs:
    def __init__(self, app: App):
        self.app = app
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, query: DeadLetterFilter, *, who: str, start_from: str = "failed-step",
              version: str = "original") -> Job:
        query.limit = BULK_LIMIT
        ids = list(dict.fromkeys(e.id for e in self.app.store.list_dead_letters(query)))
        job = Job(uuid.uuid4().hex[:12], who, ids, start_from, version)
        with self._lock:
            done = [j for j in self._jobs.values() if j.state != "running"]
            for old in sorted(done, key=lambda j: j.created_at)[:max(0, len(self._jobs)
                                                                     - MAX_JOBS + 1)]:
                del self._jobs[old.id]
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"flowrun-bulk-{job.id}",
                         daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job) -> None:
        for entry_id in job.entry_ids:
            try:
                state = self.app.replay(entry_id, start_from=job.start_from,
                                        version=job.version, who=job.who)
                job.started[entry_id] = state.run_id
            except ReplayRefused as exc:
                job.refused[entry_id] = str(exc)
            except StoreError as exc:  # the store went away: the rest would fail the same way
                job.refused[entry_id] = str(exc)
                job.state = "failed"
                break
            finally:
                job.processed += 1
        if job.state == "running":
            job.state = "done"
        job.finished_at = time.time()

    def progress(self, job: Job) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for run_id in list(job.started.values()):
            state = self.app.store.get_run(run_id)
            status = state.status if state is not None else "unknown"
            outcomes[status] = outcomes.get(status, 0) + 1
        return {"id": job.id, "state": job.state, "who": job.who, "total": len(job.entry_ids),
                "processed": job.processed, "started": len(job.started),
                "refused": [{"entry": k, "reason": v} for k, v in list(job.refused.items())],
                "runs": outcomes, "start_from": job.start_from, "version": job.version,
                "created_at": job.created_at, "finished_at": job.finished_at,
                "percent": round(100 * job.processed / len(job.entry_ids), 1)
                if job.entry_ids else 100.0}
