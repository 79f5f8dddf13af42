"""`flowrun serve`: the webhook server, with the embedded executor running the accepted runs.

With ``--consume`` (or ``FLOWRUN_SERVE_CONSUME``) the same process also consumes the message
buses of the flows' consume triggers (engine/consumers), sharing the App and its executor: one
process does everything on one box. On SIGTERM the consumers stop reading and acknowledge what
intake recorded before the executor stops.

Start-up refuses flows with errors and webhook triggers that cannot be served (unknown scheme,
bad option, unset secret), each named by file, line and key, before a port is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine import gc_tuning
from engine.store.base import StoreError

if TYPE_CHECKING:  # starlette is imported when the server starts, not on every flowrun command
    import uvicorn
    from starlette.applications import Starlette
    from starlette.types import Lifespan

    from engine.app import App
    from engine.consumers import Consumers
    from engine.settings import Settings
    from engine.webhooks import Gateway


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--flows", "flows_dir", type=click.Path(file_okay=False),
              help="Folder of flow files (default: FLOWRUN_FLOWS or ./flows).")
@click.option("--access-log/--no-access-log", default=None,
              help="Log one line per request (default: FLOWRUN_ACCESS_LOG, on).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the port (needs FLOWRUN_REDIS_URL).")
@click.option("--consume/--no-consume", default=None,
              help="Also consume the message buses of the flows' consume triggers in this "
                   "process (default: FLOWRUN_SERVE_CONSUME, off).")
def serve(host: str, port: int, flows_dir: str | None, access_log: bool | None, workers: int,
          consume: bool | None) -> None:
    """Serve the webhook triggers of the flows over HTTP and run what they accept."""
    from engine.app import state_location
    from engine.settings import load_settings

    settings = load_settings(flows=Path(flows_dir) if flows_dir else None,
                             access_log=access_log)
    consume = settings.serve_consume if consume is None else consume
    if consume and workers > 1:
        raise click.ClickException(
            f"--consume runs the consumers in one server process, not in {workers}: each "
            "would hold the same broker sessions. Run `flowrun serve --workers "
            f"{workers}` and, beside it, `flowrun consume`.")
    if workers > 1 and not settings.redis_url:
        raise click.ClickException(
            f"--workers {workers} needs FLOWRUN_REDIS_URL. Without it the runs are executed "
            "by the server process itself (their records in SQLite, or in PostgreSQL with "
            "FLOWRUN_DATABASE_URL): several "
            "processes would each resume and run the same runs. One process records "
            "deliveries in groups and uses a core for them; to use every core, set "
            "FLOWRUN_REDIS_URL and start Celery workers (flowrun worker) beside "
            "`flowrun serve --workers N`.")
    web, app = _build(settings, workers, consume)
    hooks = web.state.hooks
    where = f"state in {state_location(settings)}"
    click.echo(f"flowrun serve: {len(hooks)} webhook route(s) on http://{host}:{port}, "
               f"{where}" + (f", {workers} processes" if workers > 1 else ""), err=True)
    for hook in hooks:
        scheme = (f"as2 from {hook.trigger.as2.partner}" if hook.trigger.as2 is not None
                  else hook.scheme.name if hook.scheme else "UNSIGNED")
        click.echo(f"  {','.join(hook.trigger.methods):<5} {hook.trigger.path}  → "
                   f"{hook.flow.id} ({scheme}, {hook.trigger.respond})", err=True)
    if consume:
        from engine.consume import consume_flows

        flows = consume_flows(app)
        click.echo(f"  consuming for {len(flows)} flow(s)" + (
            ": " + ", ".join(f"{f.id} ({f.trigger.bus} {f.trigger.connection})" for f in flows)
            if flows else " (a flow with a consume trigger added later starts its consumer)"),
            err=True)
    if workers == 1:
        _run(web, settings, host, port)
        return
    app.store.close()  # checked; each process builds its own after the fork
    _run_many(settings, host, port, workers)


def _build(settings: Settings, workers: int = 1,
           consume: bool = False) -> tuple[Gateway, App]:
    """The App and its ASGI app; every problem of the flows and triggers reported, then exit."""
    from engine.app import App
    from engine.console.oidc import OidcError
    from engine.console.users import UsersError
    from engine.consumers import Consumers
    from engine.server import ServerConfigError, create_app

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
        consumers = Consumers(app) if consume else None
        web = create_app(app, lifespan=_executor_lifespan(app, workers, consumers),
                         consumers=consumers)
    except ServerConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("webhook triggers cannot be served; fix them and start "
                                   "again") from None
    except (UsersError, OidcError, StoreError) as exc:  # the console's users, SSO, sessions
        raise click.ClickException(str(exc)) from None
    return web, app


def _config(web: Gateway, settings: Settings, host: str, port: int) -> uvicorn.Config:
    import uvicorn

    from engine.http_edge import edge_protocol

    # log_config=None: uvicorn's lines go through flowrunner's handler (JSON or text, redacted);
    # its access line is off: flowrunner writes its own, with the correlation id
    # (engine/access_log); http=: httptools with the header limits and read deadlines of
    # engine.http_edge
    return uvicorn.Config(web, host=host, port=port, access_log=False, log_level="info",
                          log_config=None, http=edge_protocol(settings))


def _logs_written_on_sigterm() -> None:
    """uvicorn stops gracefully on SIGTERM, then raises it again under the handler it found:
    the default one ends the process at once, without the ``logging.shutdown`` that writes
    the lines the server's batching log handler still holds. This handler writes them first,
    then dies of the signal as before (the exit status a supervisor sees is unchanged)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _write_logs_and_die)


def _write_logs_and_die(signum: int, _: object) -> None:
    logging.shutdown()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _run(web: Gateway, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    _logs_written_on_sigterm()
    server = uvicorn.Server(_config(web, settings, host, port))
    gc_tuning.settle(settings.gc_tuning)
    server.run()


def _run_many(settings: Settings, host: str, port: int, workers: int) -> None:
    """*workers* server processes accepting on one listening socket, bound here before they
    are forked; each builds its own App (clients, threads and locks do not survive a fork).
    SIGTERM or SIGINT stops them all; a process that dies takes the others down with it, so a
    supervisor (systemd, Kubernetes) sees the failure and restarts the whole server."""
    import uvicorn

    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a server process
            code = 0
            try:
                web, _ = _build(settings, workers)
                _logs_written_on_sigterm()
                server = uvicorn.Server(_config(web, settings, host, port))
                gc_tuning.settle(settings.gc_tuning)
                server.run(sockets=[listener])
            except click.ClickException as exc:
                exc.show()
                code = 1
            except BaseException:
                code = 1
            finally:
                logging.shutdown()  # os._exit skips it: the lines still held are written
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.remove(pid)
        if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGINT):
            if not failed:
                click.echo(f"flowrun serve: process {pid} stopped ({status}); stopping the "
                           "others", err=True)
            failed = True
            forward(signal.SIGTERM, None)
    if failed:
        raise SystemExit(1)


def _executor_lifespan(app: App, workers: int = 1,
                       consumers: Consumers | None = None) -> Lifespan[Starlette]:
    """Runs the executor (and the consumers, with --consume) while the server runs. Stopping
    them here, in the ASGI shutdown, happens before uvicorn re-raises SIGTERM/SIGINT and the
    process ends. Of several server processes, the one that takes the resume lock first hands
    the unfinished runs on."""

    from starlette.concurrency import run_in_threadpool

    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        resume = workers == 1 or app.store.acquire_lock("serve-resume", str(os.getpid()), 30)
        app.executor.start(resume=resume)
        app.pruner.start()
        app.sla.start()
        if consumers is not None:
            consumers.start()
        try:
            yield
        finally:
            if consumers is not None:
                # stop reading, wait for intake's answers, acknowledge: then the executor
                await run_in_threadpool(consumers.stop)
            await run_in_threadpool(app.sla.stop)
            await run_in_threadpool(app.pruner.stop)
            await run_in_threadpool(app.executor.stop)
            app.store.close()
            click.echo("flowrun serve: executor stopped; unfinished runs resume on the next "
                       "start", err=True)

    return lifespan
