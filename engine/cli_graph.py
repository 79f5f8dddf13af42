"""`flowrun graph`: the picture of a flow, as SVG (drawn by flowrunner) or Mermaid text, and
with ``--run`` the path one recorded run took over it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine import graph_mermaid, graph_svg
from engine.cli_flows import find_flow, loader_for
from engine.graph import Graph, build
from engine.graph_path import RunPath, path_of_run

FORMATS = ("svg", "mermaid")
#: a file name's suffix → the format written when --format is not given
SUFFIXES = {".svg": "svg", ".mmd": "mermaid", ".mermaid": "mermaid", ".md": "mermaid"}


@click.command()
@click.argument("flow", required=False)
@click.option("--run", "run_id", default=None, metavar="RUN_ID",
              help="Draw the path this run took (the run records of the FLOWRUN_* settings), "
                   "over the version of its flow it ran on; FLOW may be left out.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="svg (default; or as the -o file's suffix says: .svg, .mmd, .mermaid) or "
                   "mermaid (flowchart TD text for docs).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to this file instead of printing.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the graph's nodes and edges as JSON instead of a drawing.")
@click.option("--links", default=None, metavar="PATTERN",
              help="Where other flows' drawings are, {flow} standing for a flow id, e.g. "
                   "'{flow}.svg': the flows this one hands off to become links.")
@click.option("--flows", "flows_dir", default="flows", show_default=True,
              help="Folder of flows (hand-offs and event subscribers are found there).")
@click.option("--schemas", type=click.Path(file_okay=False), help="Folder of JSON Schemas.")
def graph(flow: str | None, run_id: str | None, fmt: str | None, output: str | None,
          as_json: bool, links: str | None, flows_dir: str, schemas: str | None) -> None:
    """Draw FLOW (a file or a flow id): its trigger, steps, route branches, splits, failure
    paths and hand-offs, top to bottom."""
    if links is not None and "{flow}" not in links:
        raise click.BadParameter("write {flow} where the flow id goes, e.g. '{flow}.svg'",
                                 param_hint="--links")
    path: RunPath | None = None
    if run_id is not None:
        drawn, path = _run(run_id, flow)
    elif flow is None:
        raise click.UsageError("name the FLOW to draw (a flow id or file), or a run with --run")
    else:
        loader = loader_for([flow if Path(flow).exists() else flows_dir], schemas)
        flowset, compiled = find_flow(flow, flows_dir, loader)
        drawn = build(compiled, flowset.flows).redacted(loader.secrets.redactor.text)
    link = (lambda other: links.replace("{flow}", other)) if links else None
    if as_json:
        data = drawn.to_dict()
        if path is not None:
            data["run"] = {"nodes": path.nodes, "edges": sorted(path.edges)}
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        chosen = fmt or (SUFFIXES.get(Path(output).suffix.lower()) if output else None)
        render = graph_mermaid.render if chosen == "mermaid" else graph_svg.render
        text = render(drawn, path, link=link)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)


def _run(run_id: str, flow: str | None) -> tuple[Graph, RunPath]:
    """The graph of the flow version a recorded run ran on, and the run's path over it."""
    from engine.cli_ops import _app, _find_run
    from engine.store.base import StoreError

    app = _app()
    try:
        state = _find_run(app, run_id)
        if flow is not None and flow != state.flow_id:
            raise click.ClickException(f"run {state.run_id} is a run of flow "
                                       f"'{state.flow_id}', not '{flow}'")
        compiled = app.versions.get(state.flow_id, state.flow_version)
        if compiled is None:
            raise click.ClickException(f"run {state.run_id} ran on version "
                                       f"{state.flow_version} of flow '{state.flow_id}', which "
                                       "cannot be found any more")
        drawn = build(compiled, app.flows.flows).redacted(app.secrets.redactor.text)
        return drawn, path_of_run(drawn, compiled, state, app.store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        app.store.close()
