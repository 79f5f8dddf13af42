"""`flowrun test`: run the YAML tests beside the flows, with mocks, a virtual clock and coverage."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from engine.testing import coverage
from engine.testing.model import flow_test_schema_text
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
def test(paths: tuple[str, ...], keyword: str | None, junit: str | None,
         min_coverage: float | None, workers: int | None, write_schema: bool) -> None:
    """Run flow tests: every case of every *.test.yaml under PATH (default: flows/)."""
    if write_schema:
        target = Path(SCHEMA_FILE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(flow_test_schema_text(), encoding="utf-8")
        click.echo(f"wrote {SCHEMA_FILE}")
        return
    started = time.perf_counter()
    session = run_session(list(paths) or ["flows"], keyword, workers)
    for problem in sorted(session.problems, key=lambda p: (p.file, p.line, p.column)):
        click.echo(f"ERROR {problem}" if problem.severity == "error" else str(problem))
    for result in session.results:
        if result.passed:
            click.echo(f"PASS  {result.id}")
        else:
            click.echo(f"FAIL  {result.id}  ({result.file}:{result.line})")
            click.echo(_indent(result.report()))
    if session.coverage:
        click.echo("\ncoverage (steps run and route branches taken)")
        click.echo(coverage.table(session.coverage))
    low = [c for c in session.coverage
           if min_coverage is not None and c.percent < min_coverage]
    for c in low:
        click.echo(f"FAIL  coverage of {c.flow} is {c.percent:.0f}%, below --min-coverage "
                   f"{min_coverage:g}%")
    if junit:
        from engine.testing.junit import junit_xml

        Path(junit).write_text(junit_xml(session), encoding="utf-8")
    passed = sum(r.passed for r in session.results)
    summary = f"\n{passed} passed, {len(session.failed)} failed"
    if session.errors:
        summary += f", {len(session.errors)} error(s) in test files"
    if not session.results and not session.errors:
        summary = "\nno cases ran" + (f" (none matches -k {keyword!r})" if keyword else "")
    click.echo(f"{summary} in {time.perf_counter() - started:.2f} s")
    sys.exit(0 if session.ok and session.results and not low else 1)
