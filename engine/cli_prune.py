"""`flowrun prune`: apply retention now, by hand — what `serve` and `scheduler` do every hour."""

from __future__ import annotations

import json
import time

import click

from engine.cli_ops import _app, _table
from engine.store.base import StoreError


@click.command()
@click.option("--dry-run", is_flag=True, help="Remove nothing; show what would be removed.")
@click.option("--flow", help="Only this flow's records (idempotency keys are left alone).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def prune(dry_run: bool, flow: str | None, as_json: bool) -> None:
    """Remove the runs, message bodies and resolved dead-letter entries that retention no
    longer keeps (FLOWRUN_RETENTION_* and each flow's retention: block; docs/retention.md)."""
    from engine.retention import summary

    app = _app()
    started = time.perf_counter()
    try:
        report = app.pruner.prune(flow=flow, dry_run=dry_run)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        app.store.close()
    if report is None:
        raise click.ClickException("another flowrun process is pruning this store now; try "
                                   "again when it has finished")
    seconds = round(time.perf_counter() - started, 3)
    rows = sorted(report.counts.items())
    if as_json:
        click.echo(json.dumps({
            "dry_run": dry_run, "removed": [{"flow": f or None, "kind": kind, "count": n}
                                            for (f, kind), n in rows],
            "total": report.total, "bytes_freed": report.bytes_freed, "seconds": seconds},
            indent=2))
        return
    if rows:
        _table([[f or "(all flows)", kind, str(n)] for (f, kind), n in rows],
               ["FLOW", "KIND", "COUNT"])
    click.echo(f"{summary(report, dry_run)} in {seconds:g} s")
