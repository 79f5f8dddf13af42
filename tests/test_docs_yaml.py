"""Every ```yaml block of the README and the guides under docs/ is checked by the real loader.

A block is a flow (it has `flow:`, `trigger:` or `steps:`, or flow-level keys such as
`defaults:`), a list of steps, a flow test file (`cases:`), or a connection file
(`connection:`, or an `http:`/`sftp:` block of one). Fragments are completed into a file with
the least that makes them one (a flow id, a step), and must load without an error. A block
whose first line is ``# invalid: MESSAGE`` is a deliberately broken example: it must fail, with
MESSAGE in the first error. A block of none of these kinds fails the test, so every example is
either checked or rewritten. The generated reference (docs/reference/) is checked against the
schema instead, by tests/engine/test_schema_gen.py.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import connections as conn
from engine.dsl.flow import FlowBase
from engine.loader import Loader
from engine.problems import Problem
from engine.registry import registry
from engine.schemas import SchemaStore
from engine.testing.load import load_test_file
from tests.conftest import ROOT

#: the connector authors' guide uses a plugin's own keys: tests/plugins/test_acme_plugin.py
#: validates its YAML and runs its flow test with that plugin installed
PLUGIN_GUIDE = ROOT / "docs" / "connector-authors.md"
DOCS = [ROOT / "README.md",
        *sorted(p for p in (ROOT / "docs").glob("*.md") if p != PLUGIN_GUIDE)]
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
FLOW_KEYS = {*FlowBase.model_fields, "steps"}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    @property
    def invalid(self) -> str | None:
        first = self.text.splitlines()[0] if self.text else ""
        found = re.match(r"#\s*invalid:\s*(.+)", first)
        return found[1].strip() if found else None


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            found.append(Block(path, text[:match.start()].count("\n") + 2, match[1]))
    return found


def kind_of(data: Any) -> str | None:
    if isinstance(data, list) and data and all(isinstance(s, dict) and "id" in s for s in data):
        return "steps"
    if not isinstance(data, dict):
        return None
    if "cases" in data:
        return "test"
    if "connection" in data or set(data) <= {*registry().connections, "description"}:
        return "connection"
    if set(data) <= FLOW_KEYS:
        return "flow"
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout of the shipped flows and connections plus every complete flow and
    connection the docs define (the docs' test files and steps refer to them)."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "flows", root / "flows")
    shutil.copytree(ROOT / "connections", root / "connections")
    for block in blocks():
        data = _data(block)
        if block.invalid or kind_of(data) not in ("flow", "connection"):
            continue
        if kind_of(data) == "flow" and "flow" in data and "steps" in data:
            (root / "flows" / f"{data['flow']}.yaml").write_text(block.text, encoding="utf-8")
        elif kind_of(data) == "connection" and "connection" in data:
            (root / "connections" / f"{data['connection']}.yaml").write_text(
                block.text, encoding="utf-8")
    return root


def _data(block: Block) -> Any:
    try:
        return yaml.safe_load(block.text)
    except yaml.YAMLError:
        return None


def _loader(world: Path) -> Loader:
    return Loader(schemas=SchemaStore(ROOT / "schemas"), connections_dir=world / "connections")


def _stub_missing_steps(data: dict[str, Any], problems: list[Problem]) -> bool:
    """A fragment's route may go to steps the example leaves out: add them as no-ops."""
    missing = [m[1] for p in problems if (m := re.match(r"no step '([^']+)' in this flow",
                                                          p.message))]
    for name in dict.fromkeys(missing):
        data["steps"].append({"id": name, "log": {"message": '"stand-in"'}})
    return bool(missing)


def check_flow(block: Block, data: Any, world: Path) -> list[Problem]:
    complete = isinstance(data, dict) and "flow" in data and "steps" in data
    if complete or block.invalid:
        _, problems = _loader(world).load_file(
            str(world / "flows" / "example.yaml"), raw=block.text.encode("utf-8"))
        return problems
    flow = {"flow": "example", **(data if isinstance(data, dict) else {"steps": data})}
    flow.setdefault("steps", [{"id": "noop", "log": {"message": '"example"'}}])
    for _ in range(2):
        _, problems = _loader(world).load_file(
            str(world / "flows" / "example.yaml"),
            raw=yaml.safe_dump(flow, sort_keys=False).encode("utf-8"))
        if not _stub_missing_steps(flow, [p for p in problems if p.severity == "error"]):
            break
    return problems


def check_connection(block: Block, data: Any, world: Path, tmp: Path) -> list[Problem]:
    folder = tmp / "connections"
    folder.mkdir()
    text = block.text if "connection" in (data or {}) else \
        "connection: example\n" + block.text
    name = data.get("connection", "example") if isinstance(data, dict) else "example"
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return conn.load(folder).problems


def check_test(block: Block, world: Path) -> list[Problem]:
    flows = _loader(world).load_paths([world / "flows"])
    path = world / "flows" / "example.test.yaml"
    path.write_text(block.text, encoding="utf-8")
    try:
        return load_test_file(path, flows).problems
    finally:
        path.unlink()


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.id)
def test_yaml_block_loads(block: Block, world: Path, tmp_path: Path) -> None:
    data = _data(block)
    kind = kind_of(data) if data is not None else ("flow" if block.invalid else None)
    assert kind is not None, (
        f"{block.id}: a ```yaml block that is neither a flow, steps, a flow test nor a "
        "connection; make it one, or mark a deliberately broken one '# invalid: MESSAGE'")
    if kind in ("flow", "steps"):
        problems = check_flow(block, data, world)
    elif kind == "connection":
        problems = check_connection(block, data, world, tmp_path)
    else:
        problems = check_test(block, world)
    errors = [p for p in problems if p.severity == "error"]
    if block.invalid:
        assert errors, f"{block.id} is marked invalid but loads"
        assert block.invalid in errors[0].message, f"{block.id}: {errors[0]}"
    else:
        assert errors == [], f"{block.id}:\n" + "\n".join(str(p) for p in errors)


def test_the_docs_have_yaml_to_check() -> None:
    found = blocks()
    assert len(found) > 20
    assert {b.file.name for b in found} >= {"README.md", "analyst-guide.md", "operations.md",
                                            "platform.md"}
    assert any(b.invalid for b in found)
