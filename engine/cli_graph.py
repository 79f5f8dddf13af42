"""`flowrun graph`: the picture of a flow, as SVG (drawn by flowrunner) or Mermaid text."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine import graph_mermaid, graph_svg
from engine.graph import build

FORMATS = ("svg", "mermaid")
#: a file name's suffix → the format written when --format is not given
SUFFIXES = {".svg": "svg", ".mmd": "mermaid", ".mermaid": "mermaid", ".md": "mermaid"}


@click.command()
@click.argument("flow")
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
def graph(flow: str, fmt: str | None, output: str | None, as_json: bool, links: str | None,
          flows_dir: str, schemas: str | None) -> None:
    """Draw FLOW (a file or a flow id): its trigger, steps, route branches, splits, failure
    paths and hand-offs, top to bottom."""
    from engine.cli import _find_flow, _loader

    if links is not None and "{flow}" not in links:
        raise click.BadParameter("write {flow} where the flow id goes, e.g. '{flow}.svg'",
                                 param_hint="--links")
    loader = _loader([flow if Path(flow).exists() else flows_dir], schemas)
    flowset, compiled = _find_flow(flow, flows_dir, loader)
    drawn = build(compiled, flowset.flows).redacted(loader.secrets.redactor.text)
    link = (lambda other: links.replace("{flow}", other)) if links else None
    if as_json:
        text = json.dumps(drawn.to_dict(), indent=2, ensure_ascii=False) + "\n"
    else:
        chosen = fmt or (SUFFIXES.get(Path(output).suffix.lower()) if output else None)
        render = graph_mermaid.render if chosen == "mermaid" else graph_svg.render
        text = render(drawn, link=link)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)
