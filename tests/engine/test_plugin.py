"""connectors/ is a plugin like any other: from the engine it imports engine.plugin alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import engine.plugin

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"


def _engine_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names
                  if name == "engine" or name.startswith("engine.")]
    return found


def test_connectors_import_only_the_plugin_surface() -> None:
    files = sorted(CONNECTORS.rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    wrong = [f"{path.relative_to(CONNECTORS.parent)}:{line}: imports {module}"
             for path in files for line, module in _engine_imports(path)
             if module != "engine.plugin"]
    assert wrong == [], "connectors/ may import only engine.plugin from the engine:\n" + \
        "\n".join(wrong)


def test_the_walk_sees_an_engine_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import engine.loader\nfrom engine import types\n"
                      "from engine.plugin import Model\nfrom .engine import x\n")
    assert _engine_imports(module) == [(1, "engine.loader"), (2, "engine"),
                                       (3, "engine.plugin")]


def test_every_name_of_the_surface_is_there() -> None:
    missing = [name for name in engine.plugin.__all__ if not hasattr(engine.plugin, name)]
    assert missing == []


def test_the_connector_guide_lists_the_surface_as_it_is() -> None:
    guide = (CONNECTORS.parent / "docs" / "connector-authors.md").read_text(encoding="utf-8")
    table = guide[guide.index("| What | Names"):guide.index("## The parts")]
    listed = set(re.findall(r"`([A-Za-z_]+)(?:\(value\))?`", table))
    methods = {"problem", "expr", "schema", "service"}  # of BuildContext, named beside it
    assert sorted(listed - methods - set(engine.plugin.__all__)) == []
    assert sorted(set(engine.plugin.__all__) - listed) == []
