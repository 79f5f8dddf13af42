"""Find flow test files, load the flows beside them, run the chosen cases in parallel, count
coverage. `flowrun test` and the pytest plugin both drive this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.cli_flows import loader_for
from engine.compiled import FlowSet
from engine.problems import Problem
from engine.testing import TEST_SUFFIXES, coverage
from engine.testing.harness import CaseResult, run_case
from engine.testing.load import TestFile, load_test_file


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """Test files under *paths*: folders are searched, a flow file stands for its test file."""
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.name.endswith(TEST_SUFFIXES)))
        elif p.name.endswith(TEST_SUFFIXES) and p.is_file():
            found.append(p)
        elif p.suffix in (".yaml", ".yml") and p.is_file():
            beside = [p.with_name(p.name[: -len(p.suffix)] + s) for s in TEST_SUFFIXES]
            tests = [t for t in beside if t.is_file()]
            if tests:
                found.extend(tests)
            else:
                problems.append(Problem(str(p), 1, 1, "", f"no tests for this flow; write "
                                        f"{beside[0].name} beside it"))
        else:
            problems.append(Problem(str(path), 1, 1, "", "no such file or folder"))
    unique = list(dict.fromkeys(f.resolve() for f in found))
    return [Path(os.path.relpath(f)) if f.is_relative_to(Path.cwd()) else f
            for f in unique], problems


class FlowSets:
    """The flows of each folder that holds test files, loaded once and shared by its cases."""

    def __init__(self) -> None:
        self._sets: dict[Path, FlowSet] = {}
        self._lock = threading.Lock()

    def folder(self, folder: Path) -> FlowSet:
        key = folder.resolve()
        with self._lock:
            if key not in self._sets:
                self._sets[key] = loader_for([str(folder)], None).load_paths([folder])
            return self._sets[key]


@dataclass
class SessionResult:
    files: list[TestFile]
    results: list[CaseResult]
    coverage: list[coverage.FlowCoverage]
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed


def load(files: list[Path], flowsets: FlowSets | None = None) -> list[TestFile]:
    sets = flowsets or FlowSets()
    return [load_test_file(f, sets.folder(f.parent)) for f in files]


def selected(doc: TestFile, keyword: str | None) -> list[int]:
    """Indexes of the cases of *doc* whose ``flow::case name`` contains *keyword*."""
    if doc.model is None:
        return []
    needle = (keyword or "").lower()
    return [i for i, case in enumerate(doc.model.cases)
            if needle in f"{doc.model.flow}::{case.name}".lower()]


def run(paths: Iterable[str | os.PathLike[str]], keyword: str | None = None,
        workers: int | None = None) -> SessionResult:
    files, problems = discover(paths)
    docs = load(files)
    for doc in docs:
        problems.extend(doc.problems)
    jobs = [(doc, i) for doc in docs if doc.ok for i in selected(doc, keyword)]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2))) as pool:
        results = list(pool.map(lambda job: run_case(*job), jobs))
    return SessionResult(docs, results, count_coverage(docs, results), problems)


def count_coverage(docs: list[TestFile], results: list[CaseResult]) -> list[coverage.FlowCoverage]:
    """Per flow under test: steps and route branches exercised by the cases run."""
    table: dict[str, coverage.FlowCoverage] = {}
    for doc in docs:
        if doc.flow is not None and doc.flow.id not in table:
            table[doc.flow.id] = coverage.for_flow(doc.flow)
    for result in results:
        if result.flow in table:
            table[result.flow].cases += 1
        for state in result.states:
            if state.flow_id in table:
                table[state.flow_id].steps_hit.update(r["id"] for r in state.steps)
        for flow_id, step, rule in result.branches:
            if flow_id in table:
                table[flow_id].branches_hit.add((step, rule))
    # a flow none of whose cases ran (-k chose others) has nothing to say about coverage
    return [table[k] for k in sorted(table) if table[k].cases]
