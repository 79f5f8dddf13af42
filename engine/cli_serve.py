"""`flowrun serve`: the webhook server, with the embedded executor running the accepted runs.

Start-up refuses flows with errors and webhook triggers that cannot be served (unknown scheme,
bad option, unset secret), each named by file, line and key, before a port is opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.store.base import StoreError

if TYPE_CHECKING:  # starlette is imported when the server starts, not on every flowrun command
    from starlette.applications import Starlette
    from starlette.types import Lifespan

    from engine.app import App


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False),
              help="Folder of flow files (default: FLOWRUN_FLOWS or ./flows).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request.")
def serve(host: str, port: int, flows_dir: str | None, access_log: bool) -> None:
    """Serve the webhook triggers of the flows over HTTP and run what they accept."""
    import uvicorn

    from engine.app import App
    from engine.http_edge import edge_protocol
    from engine.server import ServerConfigError, create_app
    from engine.settings import load_settings

    settings = load_settings(flows=Path(flows_dir) if flows_dir else None)
    try:
        app = App(settings)
    except (StoreError, PermissionError) as exc:  # PermissionError: a secrets file others read
        raise click.ClickException(str(exc)) from None
    problems = sorted(app.flows.problems.errors, key=lambda p: (p.file, p.line, p.column))
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException("the flows have errors; fix them and start again "
                                   "(see `flowrun validate`)")
    try:
        web = create_app(app, lifespan=_executor_lifespan(app))
    except ServerConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("webhook triggers cannot be served; fix them and start "
                                   "again") from None
    hooks = web.state.hooks
    click.echo(f"flowrun serve: {len(hooks)} webhook route(s) on http://{host}:{port}, "
               f"state in {settings.state_db}", err=True)
    for hook in hooks:
        scheme = hook.scheme.name if hook.scheme else "UNSIGNED"
        click.echo(f"  {','.join(hook.trigger.methods):<5} {hook.trigger.path}  → "
                   f"{hook.flow.id} ({scheme}, {hook.trigger.respond})", err=True)
    # log_config=None: uvicorn's lines go through flowrunner's handler (JSON or text, redacted);
    # http=: httptools with the header limits and read deadlines of engine.http_edge
    uvicorn.run(web, host=host, port=port, access_log=access_log, log_level="info",
                log_config=None, http=edge_protocol(settings))


def _executor_lifespan(app: App) -> Lifespan[Starlette]:
    """Runs the embedded executor while the server runs. Stopping it here, in the ASGI
    shutdown, happens before uvicorn re-raises SIGTERM/SIGINT and the process ends."""

    from starlette.concurrency import run_in_threadpool

    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        app.executor.start(resume=True)
        try:
            yield
        finally:
            await run_in_threadpool(app.executor.stop)
            app.store.close()
            click.echo("flowrun serve: executor stopped; unfinished runs resume on the next "
                       "start", err=True)

    return lifespan
