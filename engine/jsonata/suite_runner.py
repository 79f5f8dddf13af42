"""Runs the JSONata reference test suite against this engine.

Used by ``tests/jsonata/test_conformance.py`` and
``scripts/jsonata_conformance.py``.  The suite is read in place from
``../shared/jsonata-test-suite`` next to the repository (override with the
``FLOWRUN_JSONATA_SUITE`` environment variable); nothing is copied or written.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import datetime_fns
from .api import compile_expression
from .errors import JsonataError
from .values import UNDEFINED

DEFAULT_TIMEOUT_MS = 10_000

#: cases where flowrunner differs from jsonata-js on purpose, and why
DELIBERATE = {
    "function-string/case019":
        "deliberate: `1/0` fails at the division with D1001 (JSON has no Infinity; "
        "jsonata-js returns Infinity and fails later, here in $string with D3001)",
}


def suite_dir() -> Path:
    env = os.environ.get("FLOWRUN_JSONATA_SUITE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "jsonata-test-suite"


@dataclass
class SuiteOutcome:
    case_id: str
    passed: bool
    reason: str
    picture_fallback: bool


def load_cases(root: Path) -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted((root / "groups").glob("*/*.json")):
        with path.open(encoding="utf-8") as fh:
            content = json.load(fh)
        rel = f"{path.parent.name}/{path.stem}"
        items = content if isinstance(content, list) else [content]
        for i, case in enumerate(items):
            if "expr-file" in case:
                case["expr"] = (path.parent / case["expr-file"]).read_text(encoding="utf-8")
            if isinstance(case.get("error"), dict) and "code" not in case:
                case["code"] = case["error"]["code"]
            cases.append((f"{rel}#{i}" if isinstance(content, list) else rel, case))
    return cases


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-13, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and a == b


class _Datasets:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self.cache:
            with (self.root / "datasets" / f"{name}.json").open(encoding="utf-8") as fh:
                self.cache[name] = json.load(fh)
        return self.cache[name]


def run_case(case: dict[str, Any], datasets: _Datasets) -> tuple[bool, str]:
    if "data" in case:
        data = case["data"]
    elif case.get("dataset") is not None:
        data = datasets.get(case["dataset"])
    else:
        data = UNDEFINED
    try:
        expr = compile_expression(case["expr"])
        result = expr.evaluate(data, case.get("bindings") or {},
                               timeout_ms=case.get("timelimit", DEFAULT_TIMEOUT_MS),
                               max_depth=case.get("depth"))
    except JsonataError as err:
        if "code" in case:
            if err.code == case["code"]:
                return True, ""
            return False, f"expected error {case['code']}, got {err.code}: {err.message}"
        return False, f"unexpected error {err.code}: {err.message}"
    except Exception as err:  # a crash is a failure to report, not to propagate
        return False, f"crash {type(err).__name__}: {err}"
    if "code" in case:
        return False, f"expected error {case['code']}, got result {_short(result)}"
    if case.get("undefinedResult"):
        if result is UNDEFINED:
            return True, ""
        return False, f"expected undefined, got {_short(result)}"
    if result is UNDEFINED:
        return False, "got undefined"
    if json_equal(result, case["result"]):
        return True, ""
    return False, f"expected {_short(case['result'])}, got {_short(result)}"


def _short(v: Any) -> str:
    try:
        s = json.dumps(v, ensure_ascii=False, default=lambda o: f"<{type(o).__name__}>")
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


def run_suite(root: Path | None = None) -> list[SuiteOutcome]:
    root = root or suite_dir()
    datasets = _Datasets(root)
    outcomes = []
    original = datetime_fns._delegate
    used: list[bool] = [False]

    def counting(fn_name: str, *args: Any) -> Any:
        used[0] = True
        return original(fn_name, *args)

    datetime_fns._delegate = counting
    try:
        for case_id, case in load_cases(root):
            used[0] = False
            ok, reason = run_case(case, datasets)
            if not ok and case_id in DELIBERATE:
                reason = f"{DELIBERATE[case_id]}; {reason}"
            outcomes.append(SuiteOutcome(case_id, ok, reason, used[0]))
    finally:
        datetime_fns._delegate = original
    return outcomes
