"""Bulk replay and discard as a background job, so a request never waits for a thousand replays.

A job acts on the entries an operator selected (by id, or every entry a dead-letter filter
matched when it started), one after another in its own thread: it replays each — with the body
rewritten by a patch expression when one was given (engine/dlq_patch) — and records the run
each replay started or why it was refused (a patch that failed on an entry is counted apart),
or it discards each. Its progress counts entries handled; the outcome of the replayed runs is
read from the store each time the job is looked at. Jobs live in this process's memory: the
replays themselves are ordinary runs and audit entries in the store, so a restart loses only
the progress view.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.app import App
from engine.dlq import ReplayRefused
from engine.dlq_patch import Patch, PatchError
from engine.dlq_patch import replay as patched_replay
from engine.store.base import DeadLetterFilter, StoreError

MAX_JOBS = 100  # finished jobs beyond this are forgotten, oldest first
BULK_LIMIT = 10_000

log = logging.getLogger("flowrun.console")


@dataclass
class Job:
    id: str
    who: str
    entry_ids: list[str]
    start_from: str
    version: str
    action: str = "replay"  # or "discard"
    patch: Patch | None = None
    reason: str = ""
    created_at: float = field(default_factory=time.time)
    processed: int = 0
    started: dict[str, str] = field(default_factory=dict)  # entry id → run id
    refused: dict[str, str] = field(default_factory=dict)  # entry id → reason
    patch_failed: dict[str, str] = field(default_factory=dict)  # entry id → expression error
    discarded: int = 0
    state: str = "running"
    error: str | None = None  # why the job stopped early, secrets masked
    finished_at: float | None = None


class Jobs:
    def __init__(self, app: App):
        self.app = app
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def matching(self, query: DeadLetterFilter) -> list[str]:
        """The ids of every entry *query* selects (at most `BULK_LIMIT`), each once."""
        query.limit = BULK_LIMIT
        return list(dict.fromkeys(e.id for e in self.app.store.list_dead_letters(query)))

    def count_matching(self, query: DeadLetterFilter) -> int:
        """How many entries a job over *query* would take; from the store's counts when only
        the flow and status are asked for, else by listing them."""
        if query.status and not (query.step or query.error or query.since or query.until
                                 or query.kind or query.http_status):
            counts = self.app.store.count_dead_letters(query.status)
            found = counts.get(query.flow, 0) if query.flow else sum(counts.values())
            return min(found, BULK_LIMIT)
        return len(self.matching(query))

    def start(self, query: DeadLetterFilter | list[str], *, who: str,
              start_from: str = "failed-step", version: str = "original",
              action: str = "replay", patch: Patch | None = None, reason: str = "") -> Job:
        """A job over the entries *query* matches, or over the ids it lists."""
        ids = (list(dict.fromkeys(query))[:BULK_LIMIT] if isinstance(query, list)
               else self.matching(query))
        job = Job(uuid.uuid4().hex[:12], who, ids, start_from, version, action, patch, reason)
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
        try:
            self._each(job)
        except Exception as exc:
            # a bug ends the job instead of leaving it running forever: the traceback goes to
            # the log once, the operator sees the message with secrets masked
            log.exception("bulk %s job %s stopped after %d of %d entries", job.action, job.id,
                          job.processed, len(job.entry_ids))
            job.error = self.app.secrets.redactor.text(f"{type(exc).__name__}: {exc}")
            job.state = "failed"
        if job.state == "running":
            job.state = "done"
        job.finished_at = time.time()

    def _each(self, job: Job) -> None:
        for entry_id in job.entry_ids:
            try:
                if job.action == "discard":
                    self.app.discard(entry_id, who=job.who, reason=job.reason)
                    job.discarded += 1
                else:
                    state = patched_replay(self.app, entry_id, job.patch,
                                           start_from=job.start_from, version=job.version,
                                           who=job.who)
                    job.started[entry_id] = state.run_id
            except PatchError as exc:
                job.patch_failed[entry_id] = str(exc)
            except ReplayRefused as exc:
                job.refused[entry_id] = str(exc)
            except StoreError as exc:  # the store went away: the rest would fail the same way
                job.refused[entry_id] = str(exc)
                job.state = "failed"
                job.error = self.app.secrets.redactor.text(str(exc))
                job.processed += 1
                return
            # an unexpected error skips this: the entry it hit counts as not handled
            job.processed += 1

    def progress(self, job: Job) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for run_id in list(job.started.values()):
            state = self.app.store.get_run(run_id)
            status = state.status if state is not None else "unknown"
            outcomes[status] = outcomes.get(status, 0) + 1
        return {"id": job.id, "state": job.state, "who": job.who, "total": len(job.entry_ids),
                "action": job.action, "patch": job.patch.source if job.patch else None,
                "processed": job.processed, "started": len(job.started),
                "error": job.error, "untouched": len(job.entry_ids) - job.processed,
                "discarded": job.discarded,
                "refused": [{"entry": k, "reason": v} for k, v in list(job.refused.items())],
                "patch_failed": [{"entry": k, "reason": v}
                                 for k, v in list(job.patch_failed.items())],
                "runs": outcomes, "start_from": job.start_from, "version": job.version,
                "created_at": job.created_at, "finished_at": job.finished_at,
                "percent": round(100 * job.processed / len(job.entry_ids), 1)
                if job.entry_ids else 100.0}
