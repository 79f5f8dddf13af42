"""`flowrun`: the command line of flowrunner.

Every command turns bad input into a precise message and exit status 1 — never a traceback.
"""

from __future__ import annotations

import codecs
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine import __version__
from engine.cli_flows import echo_problems, find_flow, loader_for
from engine.cli_style import json_option, paint
from engine.compiled import CompiledStep
from engine.envelope import Envelope
from engine.loader import Loader
from engine.records import RunState
from engine.refs import SecretsFileError
from engine.schema_gen import flow_schema_text

DEFAULT_FLOWS = "flows"


class _Commands(click.Group):
    """The command group; an unusable secrets file is one line and exit 1 in every command
    (it is first read deep inside loading or running, wherever a secret is first needed), and
    so are a bad FLOWRUN_* setting and tracing switched on without OpenTelemetry (found where a
    command reads its settings and builds its App)."""

    def invoke(self, ctx: click.Context) -> Any:
        from pydantic import ValidationError

        from engine.settings import describe
        from engine.tracing import TracingUnavailable

        try:
            return super().invoke(ctx)
        except (SecretsFileError, TracingUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            raise click.ClickException(describe(exc)) from None


#: the long-running commands, which log at INFO unless FLOWRUN_LOG_LEVEL says otherwise
SERVICES = frozenset({"serve", "worker", "scheduler", "consume"})


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="flowrun",
                      message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """flowrunner: run integration flows written in YAML.

    Shell completion: eval "$(_FLOWRUN_COMPLETE=bash_source flowrun)" in ~/.bashrc (zsh_source,
    fish_source for those shells)."""
    import os

    from engine.logs import setup_logging

    if os.environ.get("NO_COLOR"):  # https://no-color.org: no colour even on a terminal
        ctx.color = False

    try:  # FLOWRUN_LOG_FORMAT=json|text and FLOWRUN_LOG_LEVEL; -v wins over the level
        # the services tell each run's story at INFO; one-off commands keep to warnings
        default = "INFO" if ctx.invoked_subcommand in SERVICES else "WARNING"
        # the server writes its lines in batches: three per request, one write for many
        setup_logging(level=logging.DEBUG if verbose else None, default=default,
                      batch=ctx.invoked_subcommand == "serve")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Start a project in DIRECTORY (default: here): flows/ with an example flow, its test and a
    sample message, schemas/ with the canonical schemas, and connections/."""
    from engine.scaffold import AlreadyThere
    from engine.scaffold import init as scaffold

    try:
        written = scaffold(Path(directory))
    except AlreadyThere as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{directory}: cannot write: {exc.strerror}") from None
    into = "" if Path(directory) == Path(".") else f"cd {directory} && "
    click.echo(f"created {len(written)} files in {directory}: flows/, schemas/, connections/")
    click.echo(f"next: {into}flowrun validate && flowrun test")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@json_option
@click.option("--schemas", type=click.Path(file_okay=False), help="Folder of JSON Schemas.")
def validate(paths: tuple[str, ...], as_json: bool, schemas: str | None) -> None:
    """Check flow files (or folders of them) and report every problem with its position."""
    targets = list(paths) or [DEFAULT_FLOWS]
    flows = loader_for(targets, schemas).load_paths(targets)
    problems = list(flows.problems)
    if as_json:
        click.echo(json.dumps({"ok": flows.ok, "flows": sorted(flows.flows),
                               "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        echo_problems(problems)
        errors, warnings = len(flows.problems.errors), len(flows.problems.warnings)
        click.echo(paint(f"{len(flows.flows)} flow(s) valid, {errors} error(s), {warnings} "
                         "warning(s)", "ok" if flows.ok else "error", bold=True))
    sys.exit(0 if flows.ok else 1)


def _read_input(path: str, text: bool = False, encoding: str = "utf-8") -> Any:
    """The message: parsed JSON, or with *text* the file's text as it is (EDI, CSV, XML),
    decoded with *encoding* (a partner's Latin-1 or Windows-1252 file)."""
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read input: {exc.strerror}") from None
    # A UTF-8 byte-order mark says what the file is, whatever --encoding says.
    codec = "utf-8-sig" if raw.startswith(codecs.BOM_UTF8) else encoding
    try:
        decoded = raw.decode(codec)
        return decoded if text else json.loads(decoded)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path}: the message is not {encoding.upper()} text (byte "
            f"0x{raw[exc.start]:02X} at offset {exc.start}); for a Latin-1 or Windows-1252 "
            "file add --encoding latin-1 or --encoding cp1252") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}:{exc.lineno}:{exc.colno}: the message is not valid "
                                   f"JSON: {exc.msg} (for an EDI, CSV or XML file, add --text "
                                   "to pass it as text)") from None
    except RecursionError:
        raise click.ClickException(f"{path}: the message is nested too deeply") from None


def _check_encoding(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter(f"unknown encoding '{value}'; write e.g. utf-8, latin-1 or "
                                 "cp1252") from None
    return value


def _headers(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.ClickException(f"--header '{pair}': write it as NAME=VALUE")
        out[name.strip().lower()] = value
    return out


@main.command()
@click.argument("flow")
@click.option("--input", "-i", "input_path", required=True, help="JSON message file, or - .")
@click.option("--text", is_flag=True, help="The input is text (EDI, CSV, XML), the body as is.")
@click.option("--encoding", default="utf-8", show_default=True, callback=_check_encoding,
              help="How the input file is decoded: utf-8, latin-1, cp1252, ...")
@click.option("--header", "-H", "header", multiple=True, help="Trigger header NAME=VALUE.")
@click.option("--trace", is_flag=True, help="Show each step's output and duration.")
@click.option("--flows", "flows_dir", default=DEFAULT_FLOWS, show_default=True,
              help="Folder of flows (for hand-offs between flows).")
@click.option("--schemas", type=click.Path(file_okay=False), help="Folder of JSON Schemas.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (what it prints anyway).")
def run(flow: str, input_path: str, text: bool, encoding: str, header: tuple[str, ...],
        trace: bool, flows_dir: str, schemas: str | None, as_json: bool) -> None:
    """Run one message through FLOW (a file or a flow id) in this process and print the result."""
    loader = loader_for([flow if Path(flow).exists() else flows_dir], schemas)
    body = _read_input(input_path, text, encoding)
    flowset, compiled = find_flow(flow, flows_dir, loader)

    def show(step: CompiledStep, state: RunState, envelope: Envelope) -> None:
        record = state.steps[-1]
        click.echo(f"── {step.id} ({step.kind}) {record['status']} in "
                   f"{record['duration_ms']:.2f} ms", err=True)
        click.echo(json.dumps(loader.secrets.redactor.data(envelope.body), indent=2,
                              ensure_ascii=False, default=str), err=True)

    from engine.app import App
    from engine.settings import load_settings
    from engine.store.base import StoreError

    settings = load_settings(flows=flows_dir if Path(flows_dir).is_dir() else None)
    started = time.perf_counter()
    try:
        app = App(settings, flows=flowset, on_step=show if trace else None)
        app.loader, app.secrets = loader, loader.secrets
        accepted = app.accept(compiled, body, _headers(header))
        app.executor.start(resume=False)
        states = app.wait_for(accepted.run_id, timeout=24 * 3600)
        app.executor.stop()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = (time.perf_counter() - started) * 1000
    failed = False
    for state in states:
        click.echo(json.dumps(_summary(state, loader), indent=2, ensure_ascii=False, default=str))
        failed = failed or state.status in ("dead_lettered", "failed")
    click.echo(f"{len(states)} run(s) in {elapsed:.1f} ms; records in {settings.state_db}",
               err=True)
    sys.exit(1 if failed else 0)


def _summary(state: RunState, loader: Loader) -> dict[str, Any]:
    out: dict[str, Any] = {"run_id": state.run_id, "flow": state.flow_id, "status": state.status}
    if state.error and state.status in ("filtered", "dropped"):
        # an ending the flow chose, not a failure: say why, without calling it an error
        out["reason"] = state.error.get("message")
        out["step"] = state.error.get("step")
    elif state.error:
        out["error"] = state.error
    out["envelope"] = state.envelope
    redacted: dict[str, Any] = loader.secrets.redactor.data(out)
    return redacted


@main.command()
@click.option("--output", "-o", default=None,
              help="Write only the flow language's JSON Schema, to this file.")
@click.option("--root", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The checkout whose generated files to write.")
@click.option("--check", is_flag=True, help="Exit 1 if a file is not up to date.")
def schema(output: str | None, root: str, check: bool) -> None:
    """Write what is generated from the flow language's models: the editor schemas of flow
    and connection files, and the reference (docs/reference/dsl.md)."""
    from engine.schema_gen import generated_files

    files = {output: flow_schema_text()} if output else {
        str(Path(root) / name): text for name, text in generated_files().items()}
    stale = []
    for name, text in files.items():
        path = Path(name)
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                stale.append(name)
            else:
                click.echo(f"{name} is up to date")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {name}")
    if stale:
        raise click.ClickException(f"{', '.join(stale)} is stale; run `flowrun schema`")


@main.command()
@click.option("--flows", "flows_dir", default=None,
              help="Folder of the shipped flows (default: the flows that come with flowrunner).")
@click.option("--home", default=".flowrun/demo", show_default=True,
              help="Where the demo keeps its state (wiped at start).")
def demo(flows_dir: str | None, home: str) -> None:
    """Run the shipped flows end to end against a local sandbox: retries, a duplicate delivery,
    a dead letter and its replay."""
    from engine.demo import demo_main
    from engine.shipped import flows_dir as shipped_flows

    logging.getLogger("flowrunner").setLevel(logging.ERROR)
    sys.exit(demo_main(flows_dir or str(shipped_flows()), home, click.echo))


@main.command()
@click.option("--port", default=8780, show_default=True)
@click.option("--home", default=".flowrun", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the SFTP sandbox's files and host key.")
def sandbox(port: int, home: str) -> None:
    """Start the sandbox (mock ERP, WMS, channel, supplier endpoints, and an SFTP server for the
    supplier file drops) on loopback until Ctrl-C."""
    from engine.sandbox import Sandbox
    from engine.sandbox_sftp import SftpSandbox

    with Sandbox(port) as box, SftpSandbox.for_shipped_flows(Path(home)) as sftp:
        click.echo(f"sandbox listening on {box.url}")
        for name, value in box.env().items():
            click.echo(f"  export {name}={value}")
        click.echo(sftp.describe())
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopped")


def _register() -> None:
    from engine import (
        cli_connectors,
        cli_consume,
        cli_db,
        cli_graph,
        cli_ops,
        cli_poll,
        cli_prune,
        cli_scheduler,
        cli_serve,
        cli_test,
        cli_users,
        cli_worker,
    )

    main.add_command(cli_connectors.connectors)
    main.add_command(cli_ops.dlq)
    main.add_command(cli_ops.runs)
    main.add_command(cli_test.test)
    main.add_command(cli_serve.serve)
    main.add_command(cli_worker.worker)
    main.add_command(cli_scheduler.scheduler)
    main.add_command(cli_poll.poll)
    main.add_command(cli_prune.prune)
    main.add_command(cli_consume.consume)
    main.add_command(cli_db.db)
    main.add_command(cli_graph.graph)
    main.add_command(cli_users.users)


_register()

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="flowrun")  # `python -m engine.cli` is flowrun too (help, completion)
