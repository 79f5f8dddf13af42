"""Console bulk jobs (`BulkJob`) in a SQL store: the statements SQLite and PostgreSQL both run,
each call inside the store's own transaction.

``console_jobs`` holds a job's description and state (JSON) with its state and times as
columns; ``console_job_entries`` one row per entry handled, so recording an entry writes one
small row however many entries the job has. SQLite creates both tables itself; PostgreSQL by
migration 0006.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.store.base import JOBS_KEPT, BulkJob

#: runs one statement (``?`` placeholders) in the caller's transaction; returns the cursor
Execute = Callable[[str, tuple[Any, ...]], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_jobs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS console_jobs_created ON console_jobs (created_at);
CREATE TABLE IF NOT EXISTS console_job_entries (
    job_id TEXT NOT NULL, entry_id TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (job_id, entry_id));
"""


def put(execute: Execute, job: BulkJob) -> None:
    new = execute("SELECT 1 FROM console_jobs WHERE id = ?", (job.id,)).fetchone() is None
    execute("INSERT INTO console_jobs (id, state, created_at, updated_at, data) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at, data = excluded.data "
            "WHERE console_jobs.state <> 'interrupted'",
            (job.id, job.state, job.created_at, job.updated_at, job.header()))
    if not new:
        return
    finished = execute("SELECT id FROM console_jobs WHERE state <> 'running' "
                       "ORDER BY created_at DESC", ()).fetchall()
    for (old,) in finished[JOBS_KEPT:]:
        execute("DELETE FROM console_job_entries WHERE job_id = ?", (old,))
        execute("DELETE FROM console_jobs WHERE id = ?", (old,))


def add_outcome(execute: Execute, job_id: str, entry_id: str, outcome: str, detail: str,
                at: float) -> bool:
    alive = execute("UPDATE console_jobs SET updated_at = ? WHERE id = ? AND state = 'running'",
                    (at, job_id)).rowcount
    if not alive:
        return False
    execute("INSERT INTO console_job_entries (job_id, entry_id, outcome, detail) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (job_id, entry_id) DO UPDATE SET "
            "outcome = excluded.outcome, detail = excluded.detail",
            (job_id, entry_id, outcome, detail))
    return True


def get(execute: Execute, job_id: str) -> BulkJob | None:
    row = execute("SELECT data, state, updated_at FROM console_jobs WHERE id = ?",
                  (job_id,)).fetchone()
    if row is None:
        return None
    rows = execute("SELECT entry_id, outcome, detail FROM console_job_entries "
                   "WHERE job_id = ?", (job_id,)).fetchall()
    job = BulkJob.from_header(row[0], {r[0]: (r[1], r[2]) for r in rows})
    job.state, job.updated_at = row[1], row[2]  # the columns are what entries keep current
    return job
