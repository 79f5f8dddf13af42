"""`flowrun connectors`: what this installation can do — connectors, step kinds, signature schemes.

Everything comes from the entry points (`engine.registry.plugins`), built-ins and third-party
plugins alike. A plugin that cannot be loaded is listed as disabled with the reason and the
install command that fixes it, so an operator learns why `sftp:` is "unknown" on this machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from engine.cli_style import json_option
from engine.registry import Plugin, plugins

TITLES = {"connector": "Connectors (call: {NAME: ...})", "step": "Step kinds",
          "signature": "Webhook signature schemes (signature: {scheme: NAME})"}


def _line(plugin: Plugin, width: int) -> str:
    status = "enabled " if plugin.enabled else f"disabled: {plugin.reason}"
    # built-ins are flowrunner's own packages, whatever name the distribution was installed as
    built_in = plugin.target.split(".")[0] in ("engine", "connectors")
    origin = "" if built_in else f"  [{plugin.distribution} {plugin.version}]"
    summary = plugin.description.split(". ")[0].rstrip(".")  # the first sentence; json has all
    what = f"  {summary}" if plugin.enabled and summary else ""
    return f"  {plugin.name.ljust(width)}  {status}{origin}{what}".rstrip()


def render_text(found: list[Plugin]) -> str:
    width = max((len(p.name) for p in found), default=0)
    lines: list[str] = []
    for kind, title in TITLES.items():
        group = [p for p in found if p.kind == kind]
        if group:
            lines += [title, *(_line(p, width) for p in group), ""]
    disabled = sum(not p.enabled for p in found)
    lines.append(f"{len(found) - disabled} enabled, {disabled} disabled")
    return "\n".join(lines)


@click.command()
@json_option
def connectors(as_json: bool) -> None:
    """List connectors, step kinds and signature schemes: enabled, or disabled and why.

    With --json: a list of {kind, name, target, distribution, version, enabled, reason,
    description}."""
    found = plugins()
    if as_json:
        click.echo(json.dumps([asdict(p) for p in found], indent=2))
    else:
        click.echo(render_text(found))
