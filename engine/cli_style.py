"""How `flowrun` commands talk: one ``--json`` switch, colour on a terminal, progress bars.

Every command that prints data takes ``--json`` (the older ``--format json`` of `validate` and
`connectors` is kept as a hidden, deprecated alias). Colour and progress bars are click's own:
`click.echo` drops the colour codes when the output is not a terminal (a pipe, a file, CI's
log), and a progress bar on a stream that is not a terminal draws nothing — so piped output is
plain text, as before. ``NO_COLOR`` turns colour off on a terminal too (main group, cli.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

COLOURS = {"error": "red", "fail": "red", "warning": "yellow", "ok": "green", "pass": "green",
           "note": "cyan"}


def paint(text: str, kind: str, bold: bool = False) -> str:
    """*text* in the colour of *kind* (error, warning, ok, ...); plain once piped."""
    return click.style(text, fg=COLOURS[kind], bold=bold or None)


def json_option(fn: F) -> F:
    """``--json`` (passed as ``as_json``), and ``--format text|json``, hidden and deprecated."""

    @functools.wraps(fn)
    def wrapper(*args: Any, fmt: str | None = None, **kwargs: Any) -> Any:
        if fmt is not None:
            click.echo("flowrun: --format is deprecated; use --json", err=True)
            kwargs["as_json"] = kwargs.get("as_json") or fmt == "json"
        return fn(*args, **kwargs)

    wrapper = click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                           default=None, hidden=True)(wrapper)
    wrapper = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable JSON output.")(wrapper)
    return wrapper  # type: ignore[return-value]


def bars_drawn() -> bool:
    """Whether progress bars are drawn here: stderr, where they go, is a terminal."""
    return click.get_text_stream("stderr").isatty()


def progress(items: Sequence[T], label: str) -> ProgressBar[T]:
    """A progress bar over *items* on stderr when it is a terminal; elsewhere nothing at all is
    drawn (check `bars_drawn` and print one plain line per item instead)."""
    return click.progressbar(items, label=label, file=click.get_text_stream("stderr"),
                             hidden=not bars_drawn(), show_pos=True, show_eta=False)
