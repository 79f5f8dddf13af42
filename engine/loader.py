"""Load flow files: parse with positions, validate the model, compile every step, cross-check.

Loading never raises for a bad file: it returns the problems, all of them, each with file, line,
column and path. Everything that can be checked before a message arrives is checked here —
expressions compiled, schemas found, route and hand-off targets resolved — so workers receive
compiled flows and never re-parse.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from engine import connections as conn
from engine import events
from engine.compiled import CompiledFlow, CompiledStep, FlowSet
from engine.dsl.base import ExprSpec
from engine.dsl.flow import FlowBase, StepBase, flow_model, step_adapter
from engine.dsl.retry import RetryPolicy
from engine.expressions import Compiled, ExprSyntaxError, compile_expr
from engine.lint import validation_problems
from engine.problems import Path, Problem, Problems, did_you_mean, format_path
from engine.refs import KINDS, Secrets, find_refs
from engine.registry import registry
from engine.schemas import SchemaStore
from engine.signatures import check_spec
from engine.types import END
from engine.yamlsrc import Source, read_source

FLOW_SUFFIXES = (".yaml", ".yml")


class _Context:
    """The `BuildContext` handed to step kinds while one step is compiled."""

    def __init__(self, loader: Loader, source: Source, flow_id: str, base: Path,
                 step_ids: list[str], problems: list[Problem], refs: list[tuple[str, Problem]]):
        self.loader, self.source, self.base = loader, source, base
        self.flow_id = flow_id
        self.step_id = ""
        self.step_ids = step_ids
        self.problems, self.refs = problems, refs

    def problem(self, path: Path, message: str, *, key: bool = False,
                severity: str = "error") -> None:
        self.problems.append(self.source.problem((*self.base, *path), message, key=key,
                                                 severity=severity))

    def expr(self, spec: ExprSpec, path: Path) -> Compiled:
        return self.loader.compile_expression(self.source, spec, (*self.base, *path),
                                              self.problems)

    def schema(self, name: str, path: Path) -> Any:
        try:
            return self.loader.schemas.validator(name)
        except LookupError:
            names = self.loader.schemas.names()
            hint = did_you_mean(name, names) or (
                f"; known schemas: {', '.join(names)}" if names else
                f"; no schemas found under {self.loader.schemas.root}")
            self.problem(path, f"no schema '{name}'{hint}")
        except Exception as exc:  # a broken schema file is the author's problem, shown as one
            self.problem(path, f"schema '{name}' cannot be used: {exc}")
        return None

    def flow_ref(self, name: str, path: Path) -> None:
        self.refs.append((name, self.source.problem((*self.base, *path), "")))

    def service(self, name: str) -> Any:
        if name == "connections" and name not in self.loader.services:
            return self.loader.connections(self.source.file)
        return self.loader.services.get(name)


def _check_signature(spec: dict[str, Any], ctx: _Context) -> None:
    """A webhook's signature: scheme, options and secret references, checked at load so that
    ``flowrun validate`` finds what ``flowrun serve`` would refuse to start with. The secret
    values are resolved when the server starts."""
    base = ("trigger", "webhook", "signature")
    for where, message, key in check_spec(spec, registry().signatures).problems:
        ctx.problem((*base, *where), message, key=key)


class _Broken:
    """Stands in for an expression that did not compile, so loading can go on and report more."""

    def __init__(self, source: str):
        self.source = source

    def evaluate(self, envelope: Any) -> Any:  # pragma: no cover - never run: the flow has errors
        raise RuntimeError("expression did not compile")


class Loader:
    def __init__(self, schemas: SchemaStore | None = None, secrets: Secrets | None = None,
                 services: dict[str, Any] | None = None, connections_dir: FsPath | None = None):
        self.schemas = schemas or SchemaStore(FsPath("schemas"))
        self.secrets = secrets or Secrets()
        self.services = services or {}
        #: connections/ folder; None: the nearest one above each flow file
        self.connections_dir = connections_dir
        self._connections: dict[FsPath | None, conn.Connections] = {}

    def close(self) -> None:
        """Close what the connections of the flows loaded opened (broker clients)."""
        for found in self._connections.values():
            found.close()

    def connections(self, near: str | os.PathLike[str] = ".") -> conn.Connections:
        """The named connections flows near *near* use (read once per folder)."""
        folder = self.connections_dir or conn.nearest(FsPath(near))
        if folder not in self._connections:
            self._connections[folder] = conn.load(folder, self._check_refs)
        return self._connections[folder]

    # -- expressions ---------------------------------------------------------------------------
    def compile_expression(self, source: Source, spec: ExprSpec, path: Path,
                           problems: list[Problem]) -> Compiled:
        try:
            return compile_expr(spec)
        except ExprSyntaxError as exc:
            text_path = (*path, spec.key) if spec.key else path
            line, column = source.text_position(text_path, exc.offset)
            problems.append(Problem(source.file, line, column, format_path(text_path),
                                    exc.message))
            return _Broken(spec.source)
        except Exception as exc:  # loading must never raise, whatever the parser does
            # a parser that crashes instead of reporting (jsonata-python raises IndexError for
            # an unterminated comment) still means: this expression does not compile
            text_path = (*path, spec.key) if spec.key else path
            problems.append(source.problem(text_path, f"{spec.lang} expression cannot be "
                                           f"compiled: {type(exc).__name__}: {exc}"))
            return _Broken(spec.source)

    # -- one file ------------------------------------------------------------------------------
    def load_file(self, file: str | os.PathLike[str],
                  raw: bytes | None = None) -> tuple[CompiledFlow | None, list[Problem]]:
        name = str(file)
        if raw is None:
            try:
                raw = FsPath(file).read_bytes()
            except OSError as exc:
                return None, [Problem(name, 1, 1, "", f"cannot read file: {exc.strerror}")]
        source, problems = read_source(name, raw)
        if problems:
            return None, problems
        if not isinstance(source.data, dict):
            return None, [source.problem((), "a flow file is a mapping starting with "
                                             "'flow: <id>', 'trigger:' and 'steps:'")]
        try:
            model = flow_model().model_validate(source.data)
        except ValidationError as exc:
            return None, validation_problems(source, exc) + self._check_valid_steps(source, exc)
        return self._compile(source, model, raw)

    def _check_valid_steps(self, source: Source, exc: ValidationError) -> list[Problem]:
        """Compile the steps that are valid on their own, so one pass shows every mistake."""
        raw_steps = source.data.get("steps")
        if not isinstance(raw_steps, list):
            raw_steps = []
        broken = {e["loc"][1] for e in exc.errors() if e["loc"][:1] == ("steps",)
                  and len(e["loc"]) > 1}
        ids = [s.get("id") for s in raw_steps if isinstance(s, dict)]
        problems: list[Problem] = []
        self._check_common(source, problems)
        ctx = _Context(self, source, str(source.data.get("flow", "")), (),
                       [i for i in ids if isinstance(i, str)], problems, [])
        for i, raw_step in enumerate(raw_steps):
            if i in broken:
                continue
            try:
                step = step_adapter().validate_python(raw_step)
            except ValidationError:
                continue
            self._build_step(ctx, i, step, None)
        return problems

    def _compile(self, source: Source, model: FlowBase,
                 raw: bytes) -> tuple[CompiledFlow | None, list[Problem]]:
        problems: list[Problem] = []
        refs: list[tuple[str, Problem]] = []
        steps_model: list[StepBase] = model.steps  # type: ignore[attr-defined]
        ids = [step.id for step in steps_model]
        self._check_common(source, problems)
        ctx = _Context(self, source, model.flow, (), ids, problems, refs)
        compiled = [self._build_step(ctx, i, step, model) for i, step in enumerate(steps_model)]
        ctx.base = ()
        if _goto(model.defaults.on_failure) and _goto(model.defaults.on_failure) not in ids:
            ctx.problem(("defaults", "on_failure", "goto"), f"no step "
                        f"'{_goto(model.defaults.on_failure)}' in this flow"
                        + did_you_mean(_goto(model.defaults.on_failure), ids))  # type: ignore[arg-type]
        if _flow(model.defaults.on_failure):
            ctx.flow_ref(_flow(model.defaults.on_failure), ("defaults", "on_failure", "flow"))  # type: ignore[arg-type]
        key = ctx.expr(model.key, ("key",)) if model.key else None
        trigger_kind = next(iter(type(model.trigger).model_fields))
        trigger = getattr(model.trigger, trigger_kind)
        idem = getattr(trigger, "idempotency_key", None)
        poll = None
        if trigger_kind == "webhook" and trigger.signature is not None:
            _check_signature(trigger.signature, ctx)
        if trigger_kind == "poll":
            from engine.poll.compile import compile_poll

            poll = compile_poll(trigger, ctx)  # compiles items and paginate expressions too
            if idem is None:  # e.g. a dropped file runs once per name, size and mtime
                idem = registry().poll_sources[trigger.source].idempotency_key
        if trigger_kind == "webhook" and trigger.as2 is not None:
            where = ("trigger", "webhook", "as2", "partner")
            ctx.service("connections").lookup(trigger.as2.partner, "as2", ctx, where)
        if trigger_kind == "consume":
            from engine.consume import IDEMPOTENCY, check_trigger

            check_trigger(trigger, ctx)
            idem = idem or IDEMPOTENCY  # a redelivered message runs once per broker message id
        idem_expr = ctx.expr(idem, ("trigger", trigger_kind, "idempotency_key")) if idem else None
        subscription = events.compile_subscription(trigger, ctx) if trigger_kind == "event" \
            else None
        sla = None
        if model.sla is not None:
            from engine.sla import compile_sla

            sla = compile_sla(model.sla, ctx)
        if any(p.severity == "error" for p in problems):
            return None, problems
        version = hashlib.sha256(raw).hexdigest()[:12]
        flow = CompiledFlow(id=model.flow, file=source.file, version=version, text=source.text,
                            model=model, steps=compiled, key=key, idempotency_key=idem_expr,
                            flow_refs=refs, poll=poll, subscription=subscription,
                            publishes=events.declared(source, model), sla=sla)
        if subscription is not None:
            flow.subscription_at = source.problem(("trigger", "event", "type"), "")
        return flow, problems

    def _build_step(self, ctx: _Context, i: int, step: StepBase,
                    model: FlowBase | None) -> CompiledStep:
        kind = registry().steps[step.kind]
        ctx.base, ctx.step_id = ("steps", i, step.kind), step.id
        fn = kind.build(step.config, ctx)
        ctx.base = ("steps", i)
        if _goto(step.on_failure) == END:
            ctx.problem(("on_failure", "goto"), "a failed step cannot end the run as if it had "
                        "succeeded; write 'on_failure: drop' to end it as dropped")
        for target, where in ((step.next, ("next",)),
                              (_goto(step.on_failure), ("on_failure", "goto"))):
            if target and target != END and target not in ctx.step_ids:
                ctx.problem(where, f"no step '{target}' in this flow"
                            + did_you_mean(target, ctx.step_ids))
        if _flow(step.on_failure):
            ctx.flow_ref(_flow(step.on_failure), ("on_failure", "flow"))  # type: ignore[arg-type]
        defaults = model.defaults if model else None
        return CompiledStep(
            id=step.id, kind=step.kind, index=i, fn=fn, output=step.output or kind.default_output,
            next=step.next,
            retry=defaults.retry.merged(step.retry) if defaults else RetryPolicy(),
            on_failure=step.on_failure or (defaults.on_failure if defaults else "dead_letter"),
            side_effect=kind.side_effect, line=ctx.source.position(("steps", i))[0])

    def _check_common(self, source: Source, problems: list[Problem]) -> None:
        """Checks on the raw data that hold whether or not the model validated."""
        data = source.data
        stem = FsPath(source.file).name.split(".")[0]
        flow_id = data.get("flow")
        if isinstance(flow_id, str) and source.file != "<input>" and stem != flow_id:
            problems.append(source.problem(("flow",), f"flow id '{flow_id}' differs from the "
                                           f"file name '{stem}'; name the file {flow_id}.yaml",
                                           severity="warning"))
        first_seen: dict[str, int] = {}
        steps = data.get("steps") if isinstance(data.get("steps"), list) else []
        for i, step in enumerate(steps):
            step_id = step.get("id") if isinstance(step, dict) else None
            if not isinstance(step_id, str):
                continue
            if step_id in first_seen:
                line = source.position(("steps", first_seen[step_id], "id"))[0]
                problems.append(source.problem(("steps", i, "id"), f"duplicate step id "
                                               f"'{step_id}' (first used at line {line})"))
            first_seen.setdefault(step_id, i)
        self._check_refs(source, problems)

    def _check_refs(self, source: Source, problems: list[Problem]) -> None:
        for path, kind, name, offset in find_refs(source.data):
            line, column = source.text_position(path, offset)
            where = format_path(path)
            if kind not in KINDS:
                problems.append(Problem(source.file, line, column, where,
                                        f"unknown reference kind '${{{kind}:...}}'"
                                        + (did_you_mean(kind, KINDS) or
                                           "; write ${env:NAME} or ${secret:NAME}")))
            elif kind == "env" and name not in os.environ:
                problems.append(Problem(source.file, line, column, where, f"${{env:{name}}} is "
                                        "not set here; it must be set where the flow runs",
                                        "warning"))
            elif kind == "secret" and self.secrets.get(name) is None:
                problems.append(Problem(source.file, line, column, where, f"${{secret:{name}}} "
                                        f"is not set here; set FLOWRUN_SECRET_{name} or add it "
                                        "to the secrets file where the flow runs", "warning"))

    # -- many files ----------------------------------------------------------------------------
    def load_paths(self, paths: Iterable[str | os.PathLike[str]]) -> FlowSet:
        files: list[FsPath] = []
        problems = Problems()
        paths = list(paths)
        connections = self.connections(paths[0] if paths else ".")
        for path in paths:
            p = FsPath(path)
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*") if f.suffix in FLOW_SUFFIXES
                                    and f.is_file() and not f.name.endswith((".test.yaml",
                                                                             ".test.yml"))))
            elif p.exists():
                files.append(p)
            else:
                problems.add(Problem(str(path), 1, 1, "", "no such file or folder"))
        flows: dict[str, CompiledFlow] = {}
        hooks: dict[str, CompiledFlow] = {}
        for file in files:
            flow, found = self.load_file(file)
            problems.extend(found)
            if flow is None:
                continue
            if flow.id in flows:
                other = flows[flow.id].file
                problems.add(Problem(flow.file, 1, 1, "flow", f"flow id '{flow.id}' is already "
                                     f"used by {other}; flow ids must be unique"))
                continue
            hook = getattr(flow.trigger, "path", None) if flow.trigger_kind == "webhook" else None
            if hook and hook in hooks:
                problems.add(_at(flow, ("trigger", "webhook", "path"), f"webhook path '{hook}' is "
                                 f"already used by flow '{hooks[hook].id}' ({hooks[hook].file})"))
                continue
            if hook:
                hooks[hook] = flow
            flows[flow.id] = flow
        problems.extend(connections.problems_for_use())  # once the flows named theirs
        for flow in list(flows.values()):
            for name, where in flow.flow_refs:
                if name not in flows:
                    problems.add(Problem(where.file, where.line, where.column, where.path,
                                         f"no flow '{name}' among the flows loaded"
                                         + did_you_mean(name, flows)))
        for problem in events.cross_check(flows):
            problems.add(problem)
        return FlowSet(flows, problems)


def _at(flow: CompiledFlow, path: Path, message: str) -> Problem:
    source, _ = read_source(flow.file, flow.text.encode())
    return source.problem(path, message)


def _goto(on_failure: Any) -> str | None:
    return getattr(on_failure, "goto", None)


def _flow(on_failure: Any) -> str | None:
    return getattr(on_failure, "flow", None)
