"""`flowrun poll FLOW --once`: one poll cycle of a polling flow now, and what it took in.

The same poll the scheduler makes at a slot (`PollJob`: the flow's poll lease, read from the
cursor, take records in, commit the cursor), started by hand — to see a new flow work, or to
catch up. ``--from CURSOR`` is a backfill: it reads from that cursor instead of the stored one;
records already taken in are deduplicated by their idempotency key, and the stored cursor only
ever moves forward. On the embedded store the runs are run here and their outcome shown; with
Redis the Celery workers run them, and ``--wait`` waits for them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.cli_style import paint, progress
from engine.poll.job import PollJob

WAIT = 600.0


class _Recording(PollJob):
    """A poll that keeps what it took in, to show it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.taken: list[Any] = []

    def _take(self, body: Any, headers: dict[str, Any]) -> Any:
        accepted = super()._take(body, headers)
        self.taken.append(accepted)
        return accepted


@click.command()
@click.argument("flow")
@click.option("--once", is_flag=True, help="One poll cycle now (required: the schedule is "
                                            "`flowrun scheduler`'s business).")
@click.option("--from", "start_from", metavar="CURSOR",
              help="Backfill: read from this cursor (as the partner writes it, e.g. "
                   "2026-11-01T00:00:00Z) instead of the stored one.")
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False),
              help="Folder of flow files (default: FLOWRUN_FLOWS or ./flows).")
@click.option("--wait/--no-wait", default=None,
              help="Wait for the runs taken in to finish (default: on the embedded store).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def poll(flow: str, once: bool, start_from: str | None, flows_dir: str | None,
         wait: bool | None, as_json: bool) -> None:
    """Poll FLOW's partner or drop folder once now, and show the records it took in."""
    from engine.cli_scheduler import checked_app
    from engine.problems import did_you_mean
    from engine.settings import load_settings

    if not once:
        raise click.UsageError("add --once: `flowrun poll` makes one poll cycle now (polling on "
                               "the flows' schedules is `flowrun scheduler`)")
    settings = load_settings(flows=Path(flows_dir) if flows_dir else None)
    app = checked_app(settings)
    compiled = app.flows.flows.get(flow)
    polling = sorted(f.id for f in app.flows.flows.values() if f.poll is not None)
    if compiled is None or compiled.poll is None:
        app.store.close()
        what = "is not a polling flow" if compiled is not None else "does not exist"
        raise click.ClickException(f"flow '{flow}' {what} in {settings.flows}"
                                   + (did_you_mean(flow, polling) or
                                      f"; polling flows: {', '.join(polling) or 'none'}"))
    if start_from is not None and compiled.poll.trigger.http is None:
        app.store.close()
        raise click.ClickException(f"--from: flow '{flow}' polls a drop folder, which keeps no "
                                   "cursor; its files are taken as they come")
    job = _Recording(app, compiled, owner=f"flowrun-poll:{os.getpid()}", lease_ttl=30.0)
    embedded = not settings.redis_url
    if embedded:
        app.executor.start(resume=False)
    try:
        result = job.run(time.time(), start_from=start_from)
        runs = _outcomes(app, job.taken, embedded if wait is None else wait)
    finally:
        if embedded:
            app.executor.stop()
        app.store.close()
    if result.busy:
        raise click.ClickException(f"another process is polling '{flow}' right now; try again "
                                   "in a moment")
    _report(flow, result, runs, as_json)
    failed = result.error is not None or any(r["status"] in ("dead_lettered", "failed")
                                             for r in runs)
    sys.exit(1 if failed else 0)


def _outcomes(app: Any, taken: list[Any], wait: bool) -> list[dict[str, Any]]:
    rows = []
    # a backfill may take in many records: a progress bar while their runs finish (terminal)
    with progress(taken, "waiting for the runs" if wait else "reading the runs") as bar:
        for accepted in bar:
            state = (app.wait_for(accepted.run_id, timeout=WAIT)[:1] if wait and not
                     accepted.duplicate else [app.store.get_run(accepted.run_id)])[0]
            rows.append({"run_id": accepted.run_id, "duplicate": accepted.duplicate,
                         "key": state.key if state else None,
                         "status": "duplicate" if accepted.duplicate else
                         (state.status if state else "unknown")})
    return rows


def _report(flow: str, result: Any, runs: list[dict[str, Any]], as_json: bool) -> None:
    outcome = result.outcome
    if as_json:
        click.echo(json.dumps({
            "flow": flow, "ok": result.error is None,
            "error": result.error.as_dict() if result.error else None,
            "records": outcome.records if outcome else 0,
            "pages": outcome.pages if outcome else 0,
            "duplicates": outcome.duplicates if outcome else 0,
            "cursor": outcome.cursor if outcome else None, "runs": runs}, indent=2))
        return
    if result.error is not None:
        click.echo(f"poll of {flow} failed: {result.error.message}", err=True)
    for run in runs:
        kind = "error" if run["status"] in ("dead_lettered", "failed") else (
            "ok" if run["status"] == "succeeded" else "note")
        click.echo(f"  {run['run_id'][:12]}  {run['key'] or '-'}  {paint(run['status'], kind)}")
    if outcome is not None:
        cursor = f"; cursor now {outcome.cursor}" if outcome.cursor else ""
        click.echo(f"{flow}: {outcome.records} record(s) taken in, {outcome.duplicates} "
                   f"duplicate(s), {outcome.pages} page(s){cursor}")
