"""`flowrun consume`: read the message buses of the flows' consume triggers and run what arrives.

One process serves every flow with a ``consume:`` trigger (or only ``--flow``), one consumer
thread per flow (flows reloaded while it runs start, restart or stop theirs), and runs the
runs it takes in like `flowrun serve` does (embedded workers, or
Celery workers when Redis is configured). It is a process of its own, so consumers are
scaled, deployed and restarted apart from the webhook server; on one box, `flowrun serve
--consume` runs them in the server process instead.

SIGTERM or Ctrl-C: the consumers stop reading, acknowledge the messages whose runs intake has
recorded, and close; unacknowledged messages go back to the broker, which delivers them again.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from engine import gc_tuning
from engine.store.base import StoreError


@click.command()
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False),
              help="Folder of flow files (default: FLOWRUN_FLOWS or ./flows).")
@click.option("--flow", "only", help="Consume for this flow only.")
def consume(flows_dir: str | None, only: str | None) -> None:
    """Consume the message buses (AMQP, MQTT, Redis streams) of the flows' consume triggers."""
    from engine import consume as bus
    from engine.app import App
    from engine.consumers import Consumers
    from engine.settings import load_settings

    settings = load_settings(flows=Path(flows_dir) if flows_dir else None)
    try:
        app = App(settings)
    except (StoreError, PermissionError) as exc:
        raise click.ClickException(str(exc)) from None
    problems = sorted(app.flows.problems.errors, key=lambda p: (p.file, p.line, p.column))
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException("the flows have errors; fix them and start again "
                                   "(see `flowrun validate`)")
    flows = bus.consume_flows(app, only)
    if not flows:
        raise click.ClickException(f"no flow '{only}' with a consume trigger" if only else
                                   "no flow has a consume trigger")
    where = "Redis" if settings.redis_url else str(settings.state_db)
    click.echo(f"flowrun consume: {len(flows)} flow(s), state in {where}", err=True)
    for flow in flows:
        trigger = flow.trigger
        source = next(iter(getattr(trigger, trigger.bus).model_dump().values()))  # queue...
        click.echo(f"  {flow.id}: {trigger.bus} {trigger.connection} {source}", err=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gc_tuning.settle(settings.gc_tuning)
    # runs this process took in and did not finish (it was killed) go on here
    app.executor.start(resume=True)
    consumers = Consumers(app, only)
    try:
        consumers.start()
        stop.wait()
    finally:
        consumers.stop()  # every acknowledgement sent before the executor stops
        app.executor.stop()
        app.store.close()
        click.echo("flowrun consume: stopped; unfinished runs resume on the next start",
                   err=True)
