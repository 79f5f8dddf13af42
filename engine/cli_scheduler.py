"""`flowrun scheduler`: fire the poll triggers of the flows at their slots, and run what they take.

Start-up refuses flows with errors (each named by file, line and key). Several schedulers may run
against one store: one is active, the others stand by and take over when its lease runs out.
SIGTERM or Ctrl-C stops it after the running polls finished; runs it took in and did not finish
resume on the next start.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from engine import gc_tuning
from engine.store.base import StoreError

if TYPE_CHECKING:
    from engine.app import App
    from engine.settings import Settings


def checked_app(settings: Settings) -> App:
    """The App of *settings*, or every error of its flows on stderr and exit status 1."""
    from engine.app import App

    try:
        app = App(settings)
    except (StoreError, PermissionError) as exc:
        raise click.ClickException(str(exc)) from None
    problems = sorted(app.flows.problems.errors, key=lambda p: (p.file, p.line, p.column))
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        app.store.close()
        raise click.ClickException("the flows have errors; fix them and start again "
                                   "(see `flowrun validate`)")
    return app


@click.command()
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False),
              help="Folder of flow files (default: FLOWRUN_FLOWS or ./flows).")
@click.option("--lease", default=15.0, show_default=True, type=click.FloatRange(min=0.5),
              help="Seconds a scheduler's leadership and poll locks last without renewal; a "
                   "stand-by takes over this long after the active scheduler stopped.")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Polls that may run at the same time (one per flow at most).")
def scheduler(flows_dir: str | None, lease: float, workers: int) -> None:
    """Poll partners and drop folders on the schedules of the flows' poll triggers."""
    from engine.app import state_location
    from engine.scheduler import Scheduler
    from engine.settings import load_settings

    settings = load_settings(flows=Path(flows_dir) if flows_dir else None)
    app = checked_app(settings)
    runner = Scheduler(app, lease=lease, workers=workers)
    where = state_location(settings)
    click.echo(f"flowrun scheduler {runner.owner}: {len(runner.jobs)} poll flow(s), state in "
               f"{where}", err=True)
    for job in runner.jobs.values():
        trigger = job.flow.poll.trigger
        when = f"cron '{trigger.cron}' {trigger.timezone}" if trigger.cron else \
            f"every {trigger.every:g}s"
        config = trigger.source_config.model_dump(exclude_defaults=True)
        source = f"{trigger.source} {json.dumps(config, separators=(', ', ': '))}"
        click.echo(f"  {job.flow.id}: {when}, {source}", err=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        runner.stop_waiting()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gc_tuning.settle(settings.gc_tuning)
    app.pruner.start()
    app.sla.start()
    try:
        runner.run(stop)
    finally:
        app.sla.stop()
        app.pruner.stop()
        runner.close()
        app.store.close()
        click.echo("flowrun scheduler: stopped; unfinished runs resume on the next start",
                   err=True)
