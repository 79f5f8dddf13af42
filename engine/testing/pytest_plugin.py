"""pytest plugin: ``*.test.yaml`` files are collected as tests, one item per case — once a
project asks for it.

Opt-in: ``flowrun_tests = true`` in the project's pytest configuration
(``[tool.pytest.ini_options]`` of pyproject.toml, or pytest.ini), or ``pytest -p flowrunner``
(or ``--flowrun-tests``) for one run. The ``flowrunner`` entry point in the ``pytest11`` group
only makes these known: merely installing flowrunner collects nothing, so an unrelated
``deploy.test.yaml`` in another project of the same environment is left alone. A failing case
shows the same text as ``flowrun test``: each expectation that did not hold, the flow step
concerned and a diff.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.testing.load import TestFile
    from engine.testing.session import FlowSets

from engine.testing import TEST_SUFFIXES

# the engine is imported only once a test file is found: every pytest run in this environment
# loads the plugin, most of them never meet a flow test
_FLOWSETS: pytest.StashKey[FlowSets] = pytest.StashKey()


class FlowTestFailed(Exception):
    """A case's expectations did not hold; the message is the report."""


INI = "flowrun_tests"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(INI, type="bool", default=False,
                  help="Collect flowrunner's *.test.yaml flow tests (one item per case).")
    parser.getgroup("flowrunner").addoption(
        "--flowrun-tests", action="store_true", default=False,
        help="Collect flowrunner's *.test.yaml flow tests in this run (as flowrun_tests = true).")


def enabled(config: pytest.Config) -> bool:
    # `-p flowrunner` asks for it by the entry point's name (the entry point itself is loaded
    # in every run, so being loaded says nothing)
    asked = "flowrunner" in (config.getoption("plugins", None) or [])
    return bool(asked or config.getoption("flowrun_tests") or config.getini(INI))


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith(TEST_SUFFIXES) and enabled(parent.config):
        return FlowTestFile.from_parent(parent, path=file_path)
    return None


class FlowTestFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from engine.testing.load import load_test_file
        from engine.testing.session import FlowSets

        if _FLOWSETS not in self.config.stash:
            self.config.stash[_FLOWSETS] = FlowSets()
        flowsets = self.config.stash[_FLOWSETS]
        doc = load_test_file(self.path, flowsets.folder(self.path.parent))
        if not doc.ok or doc.model is None:
            yield ProblemsItem.from_parent(self, name="load", doc=doc)
            return
        for i, case in enumerate(doc.model.cases):
            yield CaseItem.from_parent(self, name=case.name, doc=doc, index=i)


class CaseItem(pytest.Item):
    def __init__(self, *, doc: TestFile, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.doc, self.index = doc, index

    def runtest(self) -> None:
        from engine.testing.harness import run_case

        result = run_case(self.doc, self.index)
        if not result.passed:
            raise FlowTestFailed(result.report())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, FlowTestFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        assert self.doc.model is not None
        return (self.path, self.doc.case_line(self.index) - 1,
                f"{self.doc.model.flow}::{self.name}")


class ProblemsItem(pytest.Item):
    """Stands for a test file that does not load: it fails with every problem found."""

    def __init__(self, *, doc: TestFile, **kwargs: Any):
        super().__init__(**kwargs)
        self.doc = doc

    def runtest(self) -> None:
        errors = [p for p in self.doc.problems if p.severity == "error"]
        raise FlowTestFailed("\n".join(str(p) for p in errors) or "the test file does not load")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: load"
