"""Read a flow test file and check it against its flow, reporting problems like `flowrun validate`.

Everything that can be wrong before a case runs is found here, all of it in one pass and each
with file, line and column: unknown keys (with did-you-mean), a flow or step id that does not
exist, a sample file that is missing or not JSON, a patch path that does not fit the message, an
``assert`` that does not compile.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from engine.compiled import CompiledFlow, FlowSet
from engine.dsl.base import ExprSpec
from engine.expressions import Compiled
from engine.lint import validation_problems
from engine.loader import Loader
from engine.problems import Path, Problem, did_you_mean
from engine.schemas import SchemaStore
from engine.testing.model import Case, FlowTestFile, flow_test_schema
from engine.yamlsrc import Source, read_source


@dataclass
class TestFile:
    """A test file as loaded: its model (None when invalid), the flow it tests and its problems."""

    __test__ = False  # not a pytest test class

    file: str
    source: Source
    model: FlowTestFile | None = None
    flow: CompiledFlow | None = None
    flows: FlowSet | None = None
    problems: list[Problem] = field(default_factory=list)
    #: per case: the input body, read and patched once
    bodies: list[Any] = field(default_factory=list)
    #: per case: the compiled ``assert`` expressions
    asserts: list[list[Compiled]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.model is not None and self.flow is not None and not any(
            p.severity == "error" for p in self.problems)

    def case_line(self, index: int) -> int:
        return self.source.position(("cases", index))[0]


def load_test_file(file: str | FsPath, flows: FlowSet) -> TestFile:
    """Parse, validate and cross-check one test file; never raises for a bad file."""
    name = str(file)
    try:
        raw = FsPath(file).read_bytes()
    except OSError as exc:
        return TestFile(name, Source(name, ""), problems=[
            Problem(name, 1, 1, "", f"cannot read file: {exc.strerror}")])
    source, problems = read_source(name, raw)
    doc = TestFile(name, source, problems=problems, flows=flows)
    if problems:
        return doc
    if not isinstance(source.data, dict):
        doc.problems.append(source.problem((), "a test file is a mapping starting with "
                                               "'flow: <id>' and 'cases:'"))
        return doc
    try:
        doc.model = FlowTestFile.model_validate(source.data)
    except ValidationError as exc:
        doc.problems.extend(validation_problems(source, exc, flow_test_schema()))
        return doc
    _check(doc, flows)
    return doc


def _check(doc: TestFile, flows: FlowSet) -> None:
    model, source = doc.model, doc.source
    assert model is not None
    flow = flows.flows.get(model.flow)
    if flow is None:
        broken = [p for p in flows.problems.errors
                  if FsPath(p.file).name.split(".")[0] == model.flow]
        if broken:
            message = (f"flow '{model.flow}' does not load ({len(broken)} error(s), first: "
                       f"{broken[0]}); run `flowrun validate {broken[0].file}`")
        else:
            folder = FsPath(doc.file).parent
            hint = did_you_mean(model.flow, flows.flows) or (
                f"; flows there: {', '.join(sorted(flows.flows)) or 'none'}")
            message = f"no flow '{model.flow}' in {folder}{hint}"
        doc.problems.append(source.problem(("flow",), message))
        return
    doc.flow = flow
    seen: dict[str, int] = {}
    loader = Loader(schemas=SchemaStore(FsPath("schemas")))
    for i, case in enumerate(model.cases):
        base: Path = ("cases", i)
        if case.name in seen:
            doc.problems.append(source.problem((*base, "name"), f"duplicate case name "
                                               f"'{case.name}' (first at line {seen[case.name]})"))
        seen.setdefault(case.name, source.position((*base, "name"))[0])
        doc.bodies.append(_body(doc, case, base))
        _check_steps(doc, flow, case, base)
        specs = ([case.expect.assert_] if isinstance(case.expect.assert_, str)
                 else case.expect.assert_ or [])
        compiled = []
        for j, text in enumerate(specs):
            path: Path = (*base, "expect", "assert") if isinstance(case.expect.assert_, str) \
                else (*base, "expect", "assert", j)
            compiled.append(loader.compile_expression(source, ExprSpec("jsonata", text), path,
                                                      doc.problems))
        doc.asserts.append(compiled)


def _check_steps(doc: TestFile, flow: CompiledFlow, case: Case, base: Path) -> None:
    ids = [s.id for s in flow.steps]
    # steps with side effects reach other systems (call, sftp) through the case's mocks
    calls = [s.id for s in flow.steps if s.side_effect]
    named: list[tuple[Path, str | None, list[str]]] = []
    for j, mock in enumerate(case.mocks):
        named.append(((*base, "mocks", j, "step"), mock.step, calls))
    for j, route_id in enumerate(case.expect.route or []):
        named.append(((*base, "expect", "route", j), route_id, ids))
    for j, call in enumerate(case.expect.calls):
        named.append(((*base, "expect", "calls", j, "step"), call.step, calls))
    for j, retry in enumerate(case.expect.retries):
        named.append(((*base, "expect", "retries", j, "step"), retry.step, ids))
    if case.expect.dead_letter:
        named.append(((*base, "expect", "dead_letter", "step"), case.expect.dead_letter.step, ids))
    for path, step_id, allowed in named:
        if step_id is None or step_id in allowed:
            continue
        if step_id in ids:
            message = (f"step '{step_id}' of flow '{flow.id}' makes no calls; call steps: "
                       f"{', '.join(calls) or 'none'}")
        else:
            message = (f"no step '{step_id}' in flow '{flow.id}'" + (did_you_mean(step_id, allowed)
                       or f"; steps: {', '.join(allowed)}"))
        doc.problems.append(doc.source.problem(path, message))


def _body(doc: TestFile, case: Case, base: Path) -> Any:
    """The case's input body: the sample file (or inline body) with the patch applied."""
    if case.input.file is None:
        body = copy.deepcopy(case.input.body)
    else:
        sample = FsPath(doc.file).parent / case.input.file
        where = (*base, "input", "file")
        try:
            text = sample.read_text(encoding="utf-8-sig")
            # an EDI or CSV sample is the message as it arrives: its text is the body
            body = json.loads(text) if sample.suffix == ".json" else text
        except OSError as exc:
            doc.problems.append(doc.source.problem(where, f"cannot read {sample}: "
                                                          f"{exc.strerror}"))
            return None
        except ValueError as exc:
            doc.problems.append(doc.source.problem(where, f"{sample} is not JSON: {exc}"))
            return None
    for key, value in case.input.patch.items():
        error = patch(body, key, value)
        if error:
            doc.problems.append(doc.source.problem((*base, "input", "patch", key), error,
                                                   key=True))
    return body


def patch(body: Any, dotted: str, value: Any) -> str | None:
    """Set *dotted* (``a.b.0.c``) in *body* to *value*; returns a message when it cannot."""
    parts = dotted.split(".")
    node = body
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the body"
        if isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
                return None
            if part not in node:
                return f"'{where}' has no key '{part}'" + did_you_mean(part, map(str, node))
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"'{where}' is a list of {len(node)}; '{part}' is not an index in it"
            if last:
                node[int(part)] = copy.deepcopy(value)
                return None
            node = node[int(part)]
        else:
            return f"'{where}' is not a mapping or list, so '{part}' cannot be set in it"
    return None
