"""Problems found in flow files: one precise, positioned message per mistake.

Every error an analyst sees while loading a flow is a `Problem`: the file, the line and column,
the path inside the flow (``steps[2].route[0].goto``), what is wrong and, where we can guess it,
how to fix it. Problems are collected, never raised one at a time, so a file shows all its
mistakes in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
PathPart = str | int
Path = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """Render ``("steps", 2, "route", 0, "goto")`` as ``steps[2].route[0].goto``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` when a candidate is close to *name*, else ``""``."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in one file, at one place."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        label = "" if self.severity == "error" else "warning: "
        subject = f"{self.path}: " if self.path else ""
        return f"{where} {label}{subject}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass
class Problems:
    """An ordered, de-duplicated collection of problems for one or more files."""

    items: list[Problem] = field(default_factory=list)
    # what is in items, for the duplicate check: a search of the list made adding n problems
    # cost n² (20,000 unknown keys took half a minute to validate)
    _seen: set[Problem] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._seen.update(self.items)

    def add(self, problem: Problem) -> None:
        if problem not in self._seen:
            self._seen.add(problem)
            self.items.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.add(problem)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(sorted(self.items, key=lambda p: (p.file, p.line, p.column, p.message)))

    def __len__(self) -> int:
        return len(self.items)


class FlowLoadError(Exception):
    """Raised where a caller needs a flow and the file has errors; carries every problem."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
