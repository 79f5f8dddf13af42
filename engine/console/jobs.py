"""Bulk replay and discard as a background job, so a request never waits for a thousand replays.

A job acts on the entries an operator selected (by id, or every entry a dead-letter filter
matched when it started), one after another in a thread of the process that started it: it
replays each — with the body rewritten by a patch expression when one was given
(engine/dlq_patch) — and records the run each replay started or why it was refused (a patch
that failed on an entry is counted apart), or it discards each.

The job and what it did to each entry live in the store (`BulkJob`), written entry by entry,
so every server process answers for any job. A job with no progress for `console_job_stale`
seconds is shown as interrupted — its process died or hangs — and can be resumed: a new job
over the entries it left, less the one it may have been in the middle of, which is named for
the operator to check (a replay recorded its run before it marked its entry, so replaying
that entry blindly could replay it twice). A resumed job records nothing more: its process,
were it still alive, stops at its next entry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from engine.app import App
from engine.dlq import ReplayRefused
from engine.dlq_patch import Patch, PatchError
from engine.dlq_patch import replay as patched_replay
from engine.records import TERMINAL
from engine.store.base import BulkJob, DeadLetterFilter, StoreError

BULK_LIMIT = 10_000
SETTLED_KEPT = 100_000  # final statuses of replayed runs remembered (a few MB at most)

log = logging.getLogger("flowrun.console")


class NotResumable(Exception):
    """A job that is running, finished with everything handled, or already resumed."""


class Jobs:
    def __init__(self, app: App):
        self.app = app
        self.stale = app.settings.console_job_stale
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._settled: dict[str, str] = {}  # run id → its final status

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
              action: str = "replay", patch: Patch | None = None, reason: str = "",
              job_id: str | None = None, resumed_from: str | None = None) -> BulkJob:
        """A job over the entries *query* matches, or over the ids it lists; recorded in the
        store before it starts (a store that fails raises `StoreError`, and nothing runs)."""
        ids = (list(dict.fromkeys(query))[:BULK_LIMIT] if isinstance(query, list)
               else self.matching(query))
        now = time.time()
        job = BulkJob(job_id or uuid.uuid4().hex[:12], who, ids, action, start_from, version,
                      patch.source if patch else None, reason, self.owner, now, now,
                      resumed_from=resumed_from)
        self.app.store.put_job(job)
        threading.Thread(target=self._run, args=(job, patch), name=f"flowrun-bulk-{job.id}",
                         daemon=True).start()
        return job

    def get(self, job_id: str) -> BulkJob | None:
        return self.app.store.get_job(job_id)

    def resume(self, job_id: str, *, who: str) -> BulkJob:
        """A new job over what an interrupted or failed job left; the old one points to it."""
        job = self.get(job_id)
        if job is None:
            raise NotResumable(f"no replay job '{job_id}'")
        shown = self.state(job)
        if shown not in ("interrupted", "failed") or job.resumed_as:
            raise NotResumable(f"job {job_id} is {shown}" + (
                f" and was resumed as job {job.resumed_as}" if job.resumed_as else
                f" (its last progress {time.time() - job.updated_at:.0f} s ago)"
                if shown == "running" else ""))
        left, uncertain = self._left(job)
        if not left:
            raise NotResumable(f"job {job_id} left no entry untouched")
        # one resume even when two operators ask at once, on two servers
        if not self.app.store.acquire_lock(f"console-job-resume:{job_id}", self.owner, 86400):
            raise NotResumable(f"job {job_id} is being resumed already")
        new_id = uuid.uuid4().hex[:12]
        job.state, job.resumed_as = "interrupted" if shown == "interrupted" else job.state, new_id
        self.app.store.put_job(job)  # first: were its process alive, it stops recording now
        return self.start([e for e in left if e != uncertain], who=who,
                          start_from=job.start_from, version=job.version, action=job.action,
                          patch=Patch(job.patch) if job.patch else None, reason=job.reason,
                          job_id=new_id, resumed_from=job.id)

    def state(self, job: BulkJob) -> str:
        """running, done, failed or interrupted: a running job without progress for
        `stale` seconds (its process stopped), or one a resume took over."""
        if job.state == "running" and time.time() - job.updated_at > self.stale:
            return "interrupted"
        return job.state

    @staticmethod
    def _left(job: BulkJob) -> tuple[list[str], str | None]:
        """The entries not handled, and of them the one a replay job may have been in the
        middle of (entries are handled in order): its run may be recorded already."""
        left = [e for e in job.entry_ids if e not in job.outcomes]
        return left, (left[0] if left and job.action == "replay" else None)

    def _run(self, job: BulkJob, patch: Patch | None) -> None:
        try:
            if not self._each(job, patch):
                return  # taken over by a resume: that job says the rest
        except Exception as exc:
            # a bug ends the job instead of leaving it running forever: the traceback goes to
            # the log once, the operator sees the message with secrets masked
            log.exception("bulk %s job %s stopped after %d of %d entries", job.action, job.id,
                          len(job.outcomes), len(job.entry_ids))
            job.error = self.app.secrets.redactor.text(f"{type(exc).__name__}: {exc}")
            job.state = "failed"
        if job.state == "running":
            job.state = "done"
        job.finished_at = job.updated_at = time.time()
        try:
            self.app.store.put_job(job)
        except StoreError as exc:  # it shows as interrupted once stale, and can be resumed
            log.warning("bulk %s job %s ended but could not say so: %s", job.action, job.id, exc)

    def _each(self, job: BulkJob, patch: Patch | None) -> bool:
        """Handle every entry; False if a resume took the job over meanwhile."""
        for entry_id in job.entry_ids:
            try:
                if job.action == "discard":
                    self.app.discard(entry_id, who=job.who, reason=job.reason)
                    outcome, detail = "discarded", ""
                else:
                    state = patched_replay(self.app, entry_id, patch,
                                           start_from=job.start_from, version=job.version,
                                           who=job.who)
                    outcome, detail = "started", state.run_id
            except PatchError as exc:
                outcome, detail = "patch_failed", str(exc)
            except ReplayRefused as exc:
                outcome, detail = "refused", str(exc)
            except StoreError as exc:  # the store went away: the rest would fail the same way
                job.outcomes[entry_id] = ("refused", str(exc))
                job.state = "failed"
                job.error = self.app.secrets.redactor.text(str(exc))
                with contextlib.suppress(StoreError):
                    self.app.store.add_job_outcome(job.id, entry_id, "refused", str(exc),
                                                   time.time())
                return True
            # an unexpected error ends the job (in `_run`): the entry it hit is not handled
            job.outcomes[entry_id] = (outcome, detail)
            if not self.app.store.add_job_outcome(job.id, entry_id, outcome, detail,
                                                  time.time()):
                return False
        return True

    def _status(self, run_id: str) -> str:
        """A replayed run's status; a finished run's is remembered, so following a long job
        reads only the runs still under way."""
        status = self._settled.get(run_id)
        if status is None:
            run = self.app.store.get_run(run_id)
            status = run.status if run is not None else "unknown"
            if status in TERMINAL:
                if len(self._settled) >= SETTLED_KEPT:
                    self._settled.clear()
                self._settled[run_id] = status
        return status

    def progress(self, job: BulkJob) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        by_kind: dict[str, list[dict[str, str]]] = {"refused": [], "patch_failed": []}
        started = discarded = 0
        for entry_id, (outcome, detail) in list(job.outcomes.items()):
            if outcome == "started":
                started += 1
                status = self._status(detail)
                outcomes[status] = outcomes.get(status, 0) + 1
            elif outcome == "discarded":
                discarded += 1
            else:
                by_kind.setdefault(outcome, []).append({"entry": entry_id, "reason": detail})
        state = self.state(job)
        processed = len(job.outcomes)
        left, uncertain = self._left(job)
        return {"id": job.id, "state": state, "who": job.who, "total": len(job.entry_ids),
                "action": job.action, "patch": job.patch, "processed": processed,
                "started": started, "error": job.error, "untouched": len(left),
                "discarded": discarded, "refused": by_kind["refused"],
                "patch_failed": by_kind["patch_failed"], "runs": outcomes,
                "start_from": job.start_from, "version": job.version,
                "created_at": job.created_at, "updated_at": job.updated_at,
                "finished_at": job.finished_at, "owner": job.owner,
                "uncertain": uncertain if state in ("interrupted", "failed") else None,
                "resumable": state in ("interrupted", "failed") and not job.resumed_as
                and bool(left),
                "resumed_from": job.resumed_from, "resumed_as": job.resumed_as,
                "percent": round(100 * processed / len(job.entry_ids), 1)
                if job.entry_ids else 100.0}
