"""`flowrun test`: run the YAML tests beside the flows, with mocks, a virtual clock and coverage."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.cli_style import json_option, paint
from engine.testing import coverage
from engine.testing.model import flow_test_schema_text
from engine.testing.session import SessionResult
from engine.testing.session import run as run_session

SCHEMA_FILE = "schemas/flow-test.schema.json"


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-k", "keyword", metavar="EXPR",
              help="Run only cases whose 'flow::case name' contains EXPR (any case).")
@click.option("--junit-xml", "junit", type=click.Path(dir_okay=False),
              help="Also write the results as JUnit XML for CI.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), metavar="PCT",
              help="Fail when a flow's steps and route branches are less covered than PCT %.")
@click.option("--workers", type=click.IntRange(1, 64), help="Cases run at once (default: "
                                                             "CPUs, at most 8).")
@click.option("--write-schema", is_flag=True,
              help=f"Write {SCHEMA_FILE} (editor completion for test files) and exit.")
@json_option
def test(paths: tuple[str, ...], keyword: str | None, junit: str | None,
         min_coverage: float | None, workers: int | None, write_schema: bool,
         as_json: bool) -> None:
    """Run flow tests: every case of every *.test.yaml under PATH (default: flows/)."""
    if write_schema:
        target = Path(SCHEMA_FILE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(flow_test_schema_text(), encoding="utf-8")
        click.echo(f"wrote {SCHEMA_FILE}")
        return
    started = time.perf_counter()
    session = run_session(list(paths) or ["flows"], keyword, workers)
    low = [c for c in session.coverage
           if min_coverage is not None and c.percent < min_coverage]
    if junit:
        from engine.testing.junit import junit_xml

        Path(junit).write_text(junit_xml(session), encoding="utf-8")
    ok = session.ok and bool(session.results) and not low
    if as_json:
        click.echo(json.dumps(_as_dict(session, low, ok), indent=2))
        sys.exit(0 if ok else 1)
    for problem in sorted(session.problems, key=lambda p: (p.file, p.line, p.column)):
        click.echo(f"ERROR {problem}" if problem.severity == "error" else str(problem))
    for result in session.results:
        if result.passed:
            click.echo(f"{paint('PASS', 'pass')}  {result.id}")
        else:
            click.echo(f"{paint('FAIL', 'fail', bold=True)}  {result.id}  "
                       f"({result.file}:{result.line})")
            click.echo(_indent(result.report()))
    if session.coverage:
        click.echo("\ncoverage (steps run and route branches taken)")
        click.echo(coverage.table(session.coverage))
    for c in low:
        click.echo(f"{paint('FAIL', 'fail', bold=True)}  coverage of {c.flow} is "
                   f"{c.percent:.0f}%, below --min-coverage {min_coverage:g}%")
    passed = sum(r.passed for r in session.results)
    summary = f"\n{passed} passed, {len(session.failed)} failed"
    if session.errors:
        summary += f", {len(session.errors)} error(s) in test files"
    if not session.results and not session.errors:
        summary = "\nno cases ran" + (f" (none matches -k {keyword!r})" if keyword else "")
    click.echo(paint(f"{summary} in {time.perf_counter() - started:.2f} s", "ok" if ok else
                     "fail", bold=True))
    sys.exit(0 if ok else 1)


def _as_dict(session: SessionResult, low: list[coverage.FlowCoverage], ok: bool,
             ) -> dict[str, Any]:
    return {
        "ok": ok,
        "passed": sum(r.passed for r in session.results),
        "failed": len(session.failed),
        "cases": [{"id": r.id, "flow": r.flow, "name": r.name, "file": r.file, "line": r.line,
                   "passed": r.passed, "seconds": round(r.seconds, 4),
                   **({} if r.passed else {"report": r.report()})} for r in session.results],
        "problems": [p.as_dict() for p in session.problems],
        "coverage": [{"flow": c.flow, "file": c.file, "cases": c.cases,
                      "percent": round(c.percent, 1), "missing": c.missing,
                      "below_minimum": c in low} for c in session.coverage],
    }
