"""`flowrun runs` and `flowrun dlq`: what operations staff use to find, fix and replay messages."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine import dlq as dlq_ops
from engine import dlq_patch
from engine.cli_style import bars_drawn, paint, progress
from engine.store.base import (
    BadPayloadQuery,
    DeadLetterFilter,
    PayloadQuery,
    RunFilter,
    StoreError,
    payload_indexed,
)


class _Ops(click.Group):
    """A command group whose commands turn a store that cannot be used (locked, unreadable) into
    an error message and exit status 1, wherever in the command it happens — not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


def _app() -> Any:
    from pydantic import ValidationError

    from engine.app import App
    from engine.settings import describe, load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        raise click.ClickException(describe(exc)) from None
    try:
        return App(settings)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _when(text: str | None) -> float | None:
    """'2026-11-20', '2026-11-20T10:00', or relative: '15m', '2h', '3d' ago."""
    if text is None:
        return None
    from engine.dsl.base import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a time; write 2026-11-20, "
                                 "2026-11-20T10:00 or a span like 2h (meaning 2 hours ago)"
                                 ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_text(error: dict[str, Any] | None) -> str:
    """What went wrong, for a table cell: the step and its last error, without the file path
    (which would fill the clipped cell before the error itself is reached)."""
    if not error:
        return ""
    attempts = error.get("attempts") or []
    last = attempts[-1].get("error") if attempts else None
    if last and error.get("step"):
        status = f" {error['status']}" if error.get("status") else ""
        return f"{error['step']} ({error.get('kind')}{status}): {last}"
    return str(error.get("message", ""))


# -- runs --------------------------------------------------------------------------------------
_RUN_FILTERS = [
    click.option("--flow", help="Only this flow."),
    click.option("--status", help="queued, running, retrying, succeeded, filtered, dropped, "
                                  "dead_lettered, failed, handed_off, split."),
    click.option("--key", help="Business key, e.g. an order number."),
    click.option("--correlation-id", help="Correlation id."),
    click.option("--since", help="From this time (2026-11-20, or 2h for two hours ago)."),
    click.option("--until", help="Before this time."),
    click.option("--payload", metavar="PATH=VALUE",
                 help="A field of the original body: customer.email=a@example.com (SQLite and "
                      "Redis search the latest 10,000 runs matching the other options)."),
    click.option("--late", is_flag=True, help="Only runs that breached their flow's SLA, latest "
                                              "breach first, with how late they are (--flow "
                                              "applies)."),
    click.option("--limit", default=50, show_default=True),
    click.option("--json", "as_json", is_flag=True, help="JSON output."),
]


def _run_filters(fn: Any) -> Any:
    for option in reversed(_RUN_FILTERS):
        fn = option(fn)
    return fn


@click.group(cls=_Ops, invoke_without_command=True)
@_run_filters
@click.pass_context
def runs(ctx: click.Context, **filters: Any) -> None:
    """List run records, newest first (also: flowrun runs list)."""
    if ctx.invoked_subcommand:
        return
    _list_runs(**filters)


@runs.command("list")
@_run_filters
def runs_list(**filters: Any) -> None:
    """List run records, newest first; --late: the runs that breached their SLA."""
    _list_runs(**filters)


def _list_runs(flow: str | None, status: str | None, key: str | None,
               correlation_id: str | None, since: str | None, until: str | None,
               payload: str | None, late: bool, limit: int, as_json: bool) -> None:
    try:
        condition = PayloadQuery.parse(payload) if payload else None
    except BadPayloadQuery as exc:
        raise click.BadParameter(str(exc).removeprefix("payload: "),
                                 param_hint="--payload") from None
    app = _app()
    if late:
        _list_late(app, flow, limit, as_json)
        return
    query = RunFilter(flow, status, key, correlation_id, _when(since), _when(until), limit,
                      payload=condition)
    found = app.store.list_runs(query)
    if condition is not None and not payload_indexed(app.store):
        click.echo(f"payload search: the latest {query.window:,} runs matching the other "
                   "options were searched", err=True)
    if as_json:
        click.echo(json.dumps([_run_dict(s) for s in found], indent=2, default=str))
        return
    _table([[s.run_id[:12], s.flow_id, s.status, s.key or "-", _ts(s.created_at),
             _clip(_error_text(s.error), 50)] for s in found],
           ["RUN", "FLOW", "STATUS", "KEY", "CREATED (UTC)", "ERROR"])


def _list_late(app: Any, flow: str | None, limit: int, as_json: bool) -> None:
    from engine.console.views import span
    from engine.sla import late_runs

    found = late_runs(app.store, flow=flow, limit=limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _table([[r["run_id"][:12], r["flow"], r["key"] or "-", r["status"], _ts(r["deadline"]),
             span(r["late_by_s"]) + (" and counting" if r["open"] else "")]
            for r in found],
           ["RUN", "FLOW", "KEY", "STATUS NOW", "DEADLINE (UTC)", "LATE BY"])


def _run_dict(state: Any) -> dict[str, Any]:
    return {"run_id": state.run_id, "flow": state.flow_id, "version": state.flow_version,
            "status": state.status, "key": state.key, "correlation_id": state.correlation_id,
            "trigger": state.trigger, "created_at": state.created_at,
            "updated_at": state.updated_at, "steps": state.steps, "error": state.error}


def _find_run(app: Any, run_id: str) -> Any:
    state = app.store.get_run(run_id)
    if state is None and len(run_id) >= 6:
        matches = [s for s in app.store.list_runs(RunFilter(limit=10_000))
                   if s.run_id.startswith(run_id)]
        state = matches[0] if len(matches) == 1 else None
    if state is None:
        raise click.ClickException(f"no run '{run_id}'")
    return state


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--io/--no-io", "show_io", default=True, show_default=True,
              help="Show each step's input and output (as recorded, secrets masked).")
def runs_show(run_id: str, as_json: bool, show_io: bool) -> None:
    """A run's step timeline: status, attempts, duration and error of every step, and what
    each step was given and left."""
    from engine.console.views import answer, step_io

    app = _app()
    state = _find_run(app, run_id)
    if as_json:
        click.echo(json.dumps(app.secrets.redactor.data(
            _run_dict(state) | {"envelope": state.envelope}), indent=2, default=str))
        return
    click.echo(f"run {state.run_id}  flow {state.flow_id}@{state.flow_version}  "
               f"status {state.status}")
    click.echo(f"key {state.key or '-'}  correlation {state.correlation_id}  trigger "
               f"{state.trigger}  created {_ts(state.created_at)} UTC")
    _table([[step["id"], step["kind"], step["status"], str(step["attempts"]),
             f"{step['duration_ms']:.1f} ms", _clip(step.get("error", ""), 60)]
            for step in state.steps], ["STEP", "KIND", "STATUS", "ATTEMPTS", "DURATION", "ERROR"])
    if show_io:
        _show_io(state.steps, step_io(app, state))
    if state.status == "retrying":
        click.echo(f"next attempt due {_ts(state.due_at)} UTC")
    if state.error:
        click.echo(f"error: {state.error.get('message')}")
    said = answer(app, state.error)
    if said:
        cut = f" (the first 4 KiB of {said['size']} bytes)" if said["truncated"] else ""
        click.echo(f"answer: {said['status']} {said['reason'] or ''}{cut}".rstrip())
        for name, value in said["headers"].items():
            click.echo(f"  {name}: {value}")
        click.echo(said["body"])


def _show_io(steps: list[dict[str, Any]], seen: list[dict[str, Any]]) -> None:
    for record, io in zip(steps, seen, strict=True):
        if io["input"] is None and io["output"] is None:
            continue
        click.echo(f"\nstep {record['id']}")
        for side in ("input", "output"):
            snap = io[side]
            if side == "output" and io["unchanged"]:
                click.echo("  output: the body as it came in (unchanged)")
            elif snap is None:
                click.echo(f"  {side}: none" + (" (the step failed)" if side == "output" else ""))
            else:
                to = f" to {snap['to']}" if snap["to"] != "body" else ""
                cut = f", the first {len(snap['json'])} of {snap['size']} bytes" \
                    if snap["truncated"] else ""
                click.echo(f"  {side}{to} ({snap['size']} bytes{cut}):")
                click.echo("    " + snap["json"].replace("\n", "\n    "))


# -- dead-letter queue -------------------------------------------------------------------------
@click.group(cls=_Ops)
def dlq() -> None:
    """The dead-letter queue: list, show, replay and discard failed messages."""


def _filter_options(fn: Any) -> Any:
    for option in reversed([
        click.option("--flow", help="Only this flow."),
        click.option("--step", help="Only entries that failed at this step."),
        click.option("--error", help="Only entries whose error contains this text."),
        click.option("--since", help="From this time (2026-11-20, or 2h for two hours ago)."),
        click.option("--until", help="Before this time."),
        click.option("--status", default="open", show_default=True,
                     help="open, replaying, replayed, discarded, or all."),
    ]):
        fn = option(fn)
    return fn


def _query(flow: str | None, step: str | None, error: str | None, since: str | None,
           until: str | None, status: str, limit: int = 1000) -> DeadLetterFilter:
    return DeadLetterFilter(flow, step, error, _when(since), _when(until),
                            None if status == "all" else status, limit)


@dlq.command("list")
@_filter_options
@click.option("--kind", help="Only entries that failed this way: http, timeout, connection, "
                             "validation, ...")
@click.option("--http-status", type=click.IntRange(100, 599),
              help="Only entries whose partner answered this HTTP status.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def dlq_list(flow: str | None, step: str | None, error: str | None, since: str | None,
             until: str | None, status: str, kind: str | None, http_status: int | None,
             limit: int, as_json: bool) -> None:
    """List dead-letter entries, newest first."""
    query = _query(flow, step, error, since, until, status, limit)
    query.kind, query.http_status = kind, http_status
    entries = _app().store.list_dead_letters(query)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, default=str))
        return
    _table([[e.id, e.flow_id, e.step or "-", e.status, e.key or "-", _ts(e.created_at),
             _clip(_error_text(e.reason), 60)] for e in entries],
           ["ID", "FLOW", "STEP", "STATUS", "KEY", "CREATED (UTC)", "ERROR"])


@dlq.command("show")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="JSON output (what it prints anyway).")
def dlq_show(entry_id: str, as_json: bool) -> None:
    """Everything kept for one entry: original message, envelope, attempts and audit trail
    (the values of the secrets flowrunner knows shown as ***, as on the console)."""
    app = _app()
    entry = app.store.get_dead_letter(entry_id)
    if entry is None:
        raise click.ClickException(f"no dead-letter entry '{entry_id}'")
    click.echo(json.dumps(app.secrets.redactor.data(entry.to_dict()), indent=2,
                          ensure_ascii=False, default=str))


def _read_body(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from None


@dlq.command("replay")
@click.argument("entry_ids", nargs=-1)
@click.option("--all-matching", is_flag=True, help="Replay every entry the filters select.")
@_filter_options
@click.option("--from", "start_from", type=click.Choice(["start", "failed-step"]),
              default="failed-step", show_default=True)
@click.option("--version", type=click.Choice(["original", "current"]), default="original",
              show_default=True, help="Flow version to replay on.")
@click.option("--body", "body_file", help="JSON file with an edited body.")
@click.option("--patch", "patch_text", help="A JSONata expression that rewrites each entry's "
                                            "body before it is replayed ($ is the body, $entry "
                                            "the entry); see docs/dead-letters-and-failover.md.")
@click.option("--patch-file", help="File holding the --patch expression.")
@click.option("--dry-run", is_flag=True, help="Run only the steps without side effects and "
                                               "show where the message would go; with a patch, "
                                               "preview it on the first --preview entries.")
@click.option("--preview", "preview_count", default=3, show_default=True,
              type=click.IntRange(1, 100), help="How many entries --dry-run previews a patch on.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the replayed runs to finish.")
@click.option("--force", is_flag=True, help="Replay entries already replayed (or in flight) "
                                             "again; their effects happen again.")
@click.option("--yes", "-y", is_flag=True, help="Replay every entry --all-matching selects "
                                                 "without asking, even with no filter.")
def dlq_replay(entry_ids: tuple[str, ...], all_matching: bool, flow: str | None,
               step: str | None, error: str | None, since: str | None, until: str | None,
               status: str, start_from: str, version: str, body_file: str | None,
               patch_text: str | None, patch_file: str | None, dry_run: bool,
               preview_count: int, wait: bool, force: bool, yes: bool) -> None:
    """Replay entries by id, or every entry matching the filters with --all-matching."""
    patch = _patch(patch_text, patch_file, body_file)
    app = _app()
    if all_matching == bool(entry_ids):
        raise click.UsageError("give entry ids, or --all-matching with filters (not both)")
    # each entry once, even when named twice (a failed replay settles on the same entry)
    ids = list(dict.fromkeys(entry_ids)) or [e.id for e in app.store.list_dead_letters(
        _query(flow, step, error, since, until, status))]
    unfiltered = all_matching and not any((flow, step, error, since, until))
    if unfiltered and ids and not (yes or dry_run):
        _confirm_all(len(ids), status)
    if body_file and len(ids) != 1:
        raise click.UsageError("--body edits one entry; give exactly one id")
    body = _read_body(body_file) if body_file else None
    if dry_run and patch is not None:
        sys.exit(_preview(app, ids, patch, start_from, version, preview_count))
    if not dry_run:
        app.executor.start(resume=False)
    started, failures, patch_failed = [], 0, 0
    # a progress bar on a terminal; piped, one plain line per entry as before
    drawn = bars_drawn()
    with progress(ids, "replaying") as bar:
        for n, entry_id in enumerate(bar, 1):
            try:
                if patch is not None:
                    state = dlq_patch.replay(app, entry_id, patch, start_from=start_from,
                                             version=version, force=force)
                else:
                    state = app.replay(entry_id, start_from=start_from, version=version,
                                       body=body, edited=body_file is not None,
                                       dry_run=dry_run, force=force)
            except dlq_patch.PatchError as exc:
                patch_failed += 1
                click.echo(f"[{n}/{len(ids)}] {entry_id}: left open: {exc}", err=True)
                continue
            except dlq_ops.ReplayRefused as exc:
                failures += 1
                click.echo(f"[{n}/{len(ids)}] {entry_id}: refused: {exc}", err=True)
                if exc.detail:
                    click.echo(json.dumps(exc.detail, indent=2, default=str), err=True)
                continue
            if dry_run:
                stop = (state.error or {}).get("message", "")
                click.echo(f"[{n}/{len(ids)}] {entry_id}: dry run ends {state.status}"
                           + (f": {stop}" if stop else ""))
            else:
                started.append((entry_id, state.run_id))
                if not drawn:
                    click.echo(f"[{n}/{len(ids)}] {entry_id}: replaying as run {state.run_id}",
                               err=True)
    if started and wait:
        finished = []
        with progress(started, "waiting for the replayed runs") as bar:
            for entry_id, run_id in bar:
                tree = app.wait_for(run_id, timeout=3600)
                finished.append((entry_id, run_id, tree[0].status if tree else "unknown"))
        for entry_id, run_id, outcome in finished:
            click.echo(f"{entry_id}: run {run_id} "
                       + paint(outcome, "ok" if outcome == "succeeded" else "error"))
            if outcome != "succeeded":
                failures += 1
    if not dry_run:
        app.executor.stop()
    patched = f", {patch_failed} left open because the patch failed" if patch else ""
    click.echo(f"{len(ids)} entr{'y' if len(ids) == 1 else 'ies'}, {failures} not replayed "
               f"successfully{patched}", err=True)
    sys.exit(1 if failures or patch_failed else 0)


def _patch(text: str | None, path: str | None, body_file: str | None) -> Any:
    """The --patch (or --patch-file) expression, compiled; None without one."""
    if text is not None and path is not None:
        raise click.UsageError("give --patch or --patch-file, not both")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise click.ClickException(f"{path}: not UTF-8 text") from None
    if text is None:
        return None
    if body_file:
        raise click.UsageError("--body replaces one entry's body; --patch rewrites many: give "
                               "one of them")
    try:
        return dlq_patch.Patch(text)
    except dlq_patch.PatchError as exc:
        raise click.ClickException(str(exc)) from None


def _preview(app: Any, ids: list[str], patch: Any, start_from: str, version: str,
             count: int) -> int:
    """Print what *patch* makes of the first *count* entries and where each would go; the
    exit status: 1 when the patch fails on (or a replay refuses) any of them."""
    chosen = dlq_patch.selection(app, ids)
    flows = ", ".join(f"{flow} {n}" for flow, n in chosen["flows"].items())
    click.echo(f"{chosen['total']} entr{'y' if chosen['total'] == 1 else 'ies'} would be "
               f"replayed with the patch ({flows or 'none'}); previewing "
               f"{min(count, len(ids))}. Nothing is replayed.")
    bad = 0
    for item in dlq_patch.preview(app, ids, patch, start_from=start_from, version=version,
                                  count=count):
        click.echo(f"\n== {item['entry']} ({item.get('flow') or '?'}, resumes at "
                   f"{item.get('resume_at') or '?'})")
        if item.get("diff"):
            click.echo(item["diff"].rstrip("\n"))
        elif item.get("after") is not None:
            click.echo("(the patch leaves the body unchanged)")
        if item.get("error"):
            bad += 1
            click.echo(paint(f"error: {item['error']}", "error"))
        path = item.get("dry_run")
        if path:
            steps = (" -> ".join(f"{s['id']} ({s['status']})" for s in path["steps"])
                     or "no step ran")
            handoff = f", hands off to {', '.join(path['hand_off'])}" if path["hand_off"] else ""
            click.echo(f"dry run: {steps}; ends {path['status']}{handoff}"
                       + (f": {path['message']}" if path["message"] else ""))
    return 1 if bad else 0


def _confirm_all(count: int, status: str) -> None:
    """Ask before replaying a whole queue: --all-matching without a single filter."""
    what = "" if status == "all" else f" {status}"
    question = f"replay all {count}{what} entr{'y' if count == 1 else 'ies'}?"
    if not sys.stdin.isatty():
        raise click.ClickException(f"{question[0].upper()}{question[1:-1]} without asking: no "
                                   "filter was given; add --yes to confirm, or a filter "
                                   "(--flow, --step, --error, --since, --until)")
    if not click.confirm(question, default=False, err=True):
        raise click.ClickException("nothing replayed")


@dlq.command("discard")
@click.argument("entry_ids", nargs=-1, required=True)
@click.option("--reason", default="", help="Why, for the audit trail.")
def dlq_discard(entry_ids: tuple[str, ...], reason: str) -> None:
    """Discard entries (kept, with the discard on their audit trail, but never replayed)."""
    app = _app()
    for entry_id in entry_ids:
        try:
            app.discard(entry_id, reason=reason)
        except dlq_ops.ReplayRefused as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{entry_id}: discarded")
