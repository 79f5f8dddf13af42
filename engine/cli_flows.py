"""How the commands find and load flows: the schemas folder beside them, the secrets file, one
flow by id or by file, and its errors printed for the person at the terminal. `flowrun run`,
`flowrun graph` and `flowrun test` share it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from engine.cli_style import paint
from engine.compiled import CompiledFlow, FlowSet
from engine.loader import Loader
from engine.problems import Problem
from engine.refs import Secrets
from engine.schemas import SchemaStore
from engine.shipped import nearest_schemas


def schemas_for(paths: list[str], explicit: str | None) -> SchemaStore:
    """The schemas folder: --schemas, else the nearest ``schemas/`` above the first path (or the
    shipped one)."""
    if explicit:
        return SchemaStore(Path(explicit))
    return SchemaStore(nearest_schemas(Path(paths[0]) if paths else Path.cwd()))


def loader_for(paths: list[str], schemas: str | None) -> Loader:
    """A loader with the schemas of `schemas_for` and the secrets of ``FLOWRUN_SECRETS_FILE``."""
    return Loader(schemas=schemas_for(paths, schemas),
                  secrets=Secrets(os.environ.get("FLOWRUN_SECRETS_FILE")))


def echo_problems(problems: list[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line, p.column)):
        click.echo(paint(str(problem), "error" if problem.severity == "error" else "warning"))


def find_flow(flow: str, flows_dir: str, loader: Loader) -> tuple[FlowSet, CompiledFlow]:
    candidate = Path(flow)
    paths = [flows_dir] if Path(flows_dir).is_dir() else []
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise click.ClickException(f"{flow}: no such flow file")
        # a path test, not a string prefix: flows-old/x.yaml is not inside flows/
        if not candidate.resolve().is_relative_to(Path(flows_dir).resolve()):
            paths = [*paths, str(candidate)]
    flowset = loader.load_paths(paths or [str(candidate)])
    chosen: CompiledFlow | None = None
    if candidate.suffix in (".yaml", ".yml"):
        resolved = candidate.resolve()
        chosen = next((c for c in flowset.flows.values()
                       if Path(c.file).resolve() == resolved), None)
    else:
        chosen = flowset.flows.get(flow)
    # Only the errors of this flow and of the flows it hands off to stop the run: a
    # half-edited file elsewhere in the folder is no reason to refuse a flow that is fine.
    if chosen is not None:
        errors = errors_on_the_way(flowset, chosen)
    else:  # the flow did not load: its own file's errors (by path, or named like the id)
        stem = candidate.name.split(".")[0]
        errors = [p for p in flowset.problems.errors if Path(p.file).name.split(".")[0] == stem]
    if errors:
        echo_problems(errors)
        raise click.ClickException("the flows have errors; fix them and run again "
                                   "(see `flowrun validate`)")
    if chosen is not None:
        others = {p.file for p in flowset.problems.errors}
        if others:
            click.echo(f"note: {len(others)} other flow file(s) have errors and were not "
                       "loaded; `flowrun validate` lists them", err=True)
        return flowset, chosen
    from engine.problems import did_you_mean

    raise click.ClickException(f"no flow '{flow}' in {flows_dir}"
                               + did_you_mean(flow, flowset.flows))


def errors_on_the_way(flowset: FlowSet, start: CompiledFlow) -> list[Problem]:
    """The errors in the files of *start* and of every flow it can hand off to."""
    files, todo, seen = set(), [start], {start.id}
    while todo:
        flow = todo.pop()
        files.add(str(flow.file))
        for name, where in flow.flow_refs:
            files.add(where.file)
            if name in flowset.flows and name not in seen:
                seen.add(name)
                todo.append(flowset.flows[name])
            elif name not in flowset.flows:  # broken, most likely: its file is named after it
                files.update(p.file for p in flowset.problems.errors
                             if Path(p.file).name.split(".")[0] == name)
    return [p for p in flowset.problems.errors if p.file in files]
