"""Property tests: whatever bytes or structures a flow file holds, loading never raises.

`Loader.load_file` must answer every input with ``(flow or None, [Problem, ...])``: positions
start at 1, a file without a flow has at least one error, and a compiled flow has none.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.loader import CompiledFlow, Loader
from engine.problems import Problem
from engine.refs import Secrets
from engine.schemas import SchemaStore
from tests.conftest import ROOT

# one loader for every example: hypothesis does not allow function-scoped fixtures in @given
LOADER = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

TOKENS = st.one_of(
    st.sampled_from([*" \t\n\r:-?,[]{}#&*!|>'\"%@`\\$.=", "  ", "- ", ": ", "\n  "]),
    st.sampled_from(["flow", "steps", "id", "set", "route", "when", "goto", "otherwise",
                     "transform", "trigger", "webhook", "poll", "<<", "---", "...", "${env:",
                     "${secret:X}", "!!int", "!!binary", "&a", "*a", "é", "ü", "日本", "\u2028",
                     "\ufeff", "\x85", "💥", "0x1F", "1e9", "null", "~", "yes"]),
    st.characters(codec="utf-8"),
)
# free text, and lines with YAML-like indentation (nesting up to 40 levels)
YAMLISH = st.one_of(
    st.lists(TOKENS, max_size=120).map("".join),
    st.lists(st.tuples(st.integers(0, 40), st.lists(TOKENS, max_size=8).map("".join)),
             max_size=30).map(lambda lines: "\n".join(" " * (2 * n) + t for n, t in lines)),
)

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

FLOW_KEYS = st.sampled_from(["flow", "description", "key", "trigger", "defaults", "steps",
                             "queue", "concurrency", "id", "x"])
FLOWISH = st.dictionaries(FLOW_KEYS, JSONISH, max_size=6)

STEP_KEYS = st.sampled_from(["id", "description", "output", "next", "retry", "on_failure",
                             "transform", "validate", "route", "filter", "set", "log", "fail",
                             "split", "call", "when", "goto", "jsonata", "jmespath", "schema"])
STEPISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=15)
    | st.sampled_from(["a", "end", "x > 1", "$vars.x", "canonical/order.v1", "5m", "drop"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(STEP_KEYS, children, max_size=4),
    max_leaves=20,
)


def check(result: Any) -> tuple[CompiledFlow | None, list[Problem]]:
    assert isinstance(result, tuple) and len(result) == 2
    flow, problems = result
    assert flow is None or isinstance(flow, CompiledFlow)
    assert isinstance(problems, list)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.line >= 1 and problem.column >= 1, problem
        assert problem.severity in ("error", "warning")
        assert isinstance(problem.message, str) and problem.message
        str(problem)  # renders
    errors = [p for p in problems if p.severity == "error"]
    if flow is None:
        assert errors, "no flow and no error to say why"
    else:
        assert not errors
    return flow, problems


@SETTINGS
@given(YAMLISH)
@example("\t")
@example("\n\ufeff")
@example("[" * 5000)
@example("{a: " * 3000)
@example("- " * 3000 + "x")
@example("a: &a [*a]")
@example("flow: f\nsteps:\n  - id: a\n    transform: '/* c'\n")
@example("flow: f\nsteps:\n  - id: a\n    transform: !!int x\n")
@example("flow: f\nsteps:\n  - id: a\n    transform: !!bool maybe\n")
@example("flow: f\nsteps:\n  - id: a\n    transform: !!timestamp x\n")
@example("\ufeffflow: f\nsteps:\n  - id: a\n    set: {x: '1'}\n")
def test_random_text_never_raises(text: str) -> None:
    check(LOADER.load_file("<input>", raw=text.encode("utf-8", "surrogatepass")))


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(LOADER.load_file("random.yaml", raw=raw))


@SETTINGS
@given(st.one_of(JSONISH, FLOWISH), st.sampled_from(["yaml", "json", "flow-style"]))
def test_random_structures_never_raise(data: Any, style: str) -> None:
    if style == "json":
        text = json.dumps(data)
    else:
        text = yaml.safe_dump(data, allow_unicode=True, default_flow_style=style == "flow-style")
    check(LOADER.load_file("<input>", raw=text.encode("utf-8", "surrogatepass")))


@SETTINGS
@given(st.lists(STEPISH, min_size=0, max_size=4))
def test_random_steps_in_an_otherwise_valid_flow_never_raise(steps: list[Any]) -> None:
    data = {"flow": "random-steps", "trigger": {"webhook": {"path": "/hooks/random"}},
            "steps": [*steps, {"id": "last", "set": {"x": "1"}}]}
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    flow, _ = check(LOADER.load_file("<input>", raw=text.encode("utf-8", "surrogatepass")))
    if flow is not None:
        assert [s.id for s in flow.steps][-1] == "last"


def test_the_valid_base_flow_compiles() -> None:
    """Guards the property above: without random steps the base flow is valid."""
    data = {"flow": "random-steps", "trigger": {"webhook": {"path": "/hooks/random"}},
            "steps": [{"id": "last", "set": {"x": "1"}}]}
    flow, problems = check(LOADER.load_file("<input>", raw=yaml.safe_dump(data).encode()))
    assert flow is not None and problems == []
