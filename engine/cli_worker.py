"""`flowrun worker`: start a Celery worker for the configured Redis (same as
``celery -A worker worker``), with the options platform engineers reach for most."""

from __future__ import annotations

import click


@click.command()
@click.option("--concurrency", "-c", type=int, default=None,
              help="Worker processes (default: one per CPU).")
@click.option("--pool", "-P", type=click.Choice(["prefork", "solo", "threads"]),
              default="prefork", show_default=True, help="Celery execution pool.")
@click.option("--queues", "-Q", default=None,
              help="Comma-separated queues to consume (default: FLOWRUN_CELERY_QUEUE, flowrun).")
@click.option("--lanes", default=None,
              help="Comma-separated flow lanes (a flow's `queue:`) to serve, e.g. default,bulk "
                   "(default: every lane of the loaded flows).")
@click.option("--name", "-n", default=None, help="Worker node name, e.g. w1@%h.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(concurrency: int | None, pool: str, queues: str | None, lanes: str | None,
           name: str | None, loglevel: str) -> None:
    """Run flows on this machine as a Celery worker (needs FLOWRUN_REDIS_URL)."""
    from engine import gc_tuning
    from engine.settings import load_settings

    settings = load_settings()
    if not settings.redis_url:
        raise click.ClickException("FLOWRUN_REDIS_URL is not set; a worker keeps run state in "
                                   "Redis (e.g. export FLOWRUN_REDIS_URL=redis://localhost:6379/0)")
    import worker as celery_worker  # the Celery application; imported only when needed

    argv = ["worker", "--pool", pool, "--loglevel", loglevel]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if queues and lanes:
        raise click.UsageError("give --queues or --lanes, not both")
    argv += ["--queues", queues or ",".join(_lane_queues(lanes))]
    if name:
        argv += ["--hostname", name]
    gc_tuning.settle(settings.gc_tuning)  # before the pool forks: its processes inherit it
    celery_worker.app.worker_main(argv)


def _lane_queues(lanes: str | None) -> list[str]:
    """The Celery queues of *lanes*, or of every lane the configured flows use."""
    from engine.app import loader_for
    from engine.celery_executor import CelerySettings, lane_queue
    from engine.settings import load_settings

    if lanes:
        names = {lane.strip() for lane in lanes.split(",") if lane.strip()}
    else:
        # loaded as the worker's App loads them: with the configured schemas and secrets a
        # flow that validates or names a secret loads here too, and its lane is served
        settings = load_settings()
        flows = loader_for(settings).load_paths([settings.flows])
        names = {"default"} | {flow.model.queue for flow in flows.flows.values()}
    tuning = CelerySettings()
    return sorted(lane_queue(tuning, lane) for lane in names)
