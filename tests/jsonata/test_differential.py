"""Differential property test: random expressions from a small grammar,
evaluated by this engine and by jsonata-python, must agree.

The grammar covers paths, arithmetic, comparisons, string concatenation,
array and object constructors, predicates and common functions.  Numbers are
kept to small integers and there is no division, so the one documented
number-formatting defect of jsonata-python (``$string`` of large or
non-integral numbers) cannot arise.  The constructs where the two engines
are known to differ are excluded explicitly with ``assume`` (see
``_KNOWN_DIFFERENCES``), never silently.
"""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.jsonata import UNDEFINED, JsonataError, compile_expression
from engine.jsonata.api import Expression

_limit = sys.getrecursionlimit()
import jsonata as jsonata_python  # noqa: E402

sys.setrecursionlimit(_limit)

# Documented differences (jsonata-python 0.7.1 vs the reference, where we follow the reference):
_KNOWN_DIFFERENCES = {
    # the reference (and this engine) yield undefined for `x < undefined`;
    # jsonata-python yields false
    "comparison_with_undefined",
}

small_int = st.integers(min_value=-20, max_value=20)
word = st.sampled_from(["a", "b", "ab", "Hello", "x y", ""])

data_strategy = st.fixed_dictionaries({
    "n": small_int,
    "m": small_int,
    "s": word,
    "t": word,
    # prices as partners send them (binary-exact, so no float formatting differs)
    "p": st.sampled_from(["1", "2.50", "-3.25", "12.00", "0.5"]),
    "nums": st.lists(small_int, max_size=5),
    "obj": st.fixed_dictionaries({"k": small_int, "w": word}),
    "items": st.lists(st.fixed_dictionaries({"q": small_int, "name": word}), max_size=4),
})

NUM_ATOMS = ["n", "m", "obj.k", "$count(nums)", "$sum(nums)", "$count(items)",
             "$sum(items.q)", "$length(s)", "$number(p)", "$sum(items.($number(q) * 2))"]
STR_ATOMS = ["s", "t", "obj.w", "$join(items.name, ',')", "$uppercase(s)", "$lowercase(t)"]
ANY_ATOMS = ["nums", "items", "obj", "items.q", "items.name", "nums[0]", "items[0].name"]


def _num(depth: int) -> st.SearchStrategy[str]:
    atom = st.one_of(st.sampled_from(NUM_ATOMS), small_int.map(str).map(lambda s: f"({s})"))
    if depth == 0:
        return atom
    sub = _num(depth - 1)
    return st.one_of(
        atom,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, sub).map(lambda t: f"$max([{t[0]}, {t[1]}])"),
        sub.map(lambda s: f"$abs({s})"),
        st.tuples(st.sampled_from(["nums", "items.q"]), sub).map(
            lambda t: f"$count({t[0]}[$ > {t[1]}])"),
    )


def _str(depth: int) -> st.SearchStrategy[str]:
    atom = st.one_of(st.sampled_from(STR_ATOMS), word.map(lambda w: f'"{w}"'))
    if depth == 0:
        return atom
    sub = _str(depth - 1)
    return st.one_of(
        atom,
        st.tuples(sub, sub).map(lambda t: f"({t[0]} & {t[1]})"),
        _num(depth - 1).map(lambda n: f"$string({n})"),
        st.tuples(sub, st.integers(0, 3), st.integers(0, 4)).map(
            lambda t: f"$substring({t[0]}, {t[1]}, {t[2]})"),
        sub.map(lambda s: f"$trim({s})"),
        st.tuples(_bool(depth - 1), sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
    )


def _bool(depth: int) -> st.SearchStrategy[str]:
    n, s = _num(max(depth - 1, 0)), _str(max(depth - 1, 0))
    return st.one_of(
        st.tuples(n, st.sampled_from(["<", "<=", ">", ">=", "=", "!="]), n).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(s, st.sampled_from(["=", "!="]), s).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.sampled_from(ANY_ATOMS).map(lambda a: f"$exists({a})"),
        st.sampled_from(ANY_ATOMS + STR_ATOMS).map(lambda a: f"$boolean({a})"),
    )


def _expr() -> st.SearchStrategy[str]:
    n, s, b = _num(2), _str(2), _bool(1)
    leaf = st.one_of(n, s, b, st.sampled_from(ANY_ATOMS))
    return st.one_of(
        leaf,
        st.lists(leaf, min_size=0, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(leaf, leaf).map(lambda t: '{"x": ' + t[0] + ', "y": ' + t[1] + "}"),
        # the same sub-expression twice in one object: computed once by generated code
        n.map(lambda t: '{"x": ' + t + ', "y": (' + t + ") + 1}"),
        s.map(lambda t: '{"x": ' + t + ', "y": $uppercase(' + t + ")}"),
        st.tuples(n).map(lambda t: f"items[q > {t[0]}].name"),
        st.tuples(n).map(lambda t: f'items.{{"name": name, "v": q * {t[0]}}}'),
        st.tuples(s).map(lambda t: f"items[name = {t[0]}].q"),
        st.just("$map(nums, function($v) { $v * 2 })"),
        st.just("$map(nums, function($v, $i) { $v + $i })"),
        st.just("$map(items, function($i) { $trim($i.name) & $string($number(p)) })"),
        st.just("$filter(items, function($i) { $i.q > 0 }).name"),
        st.just("$sort(nums)"),
        st.just("$reverse(nums)"),
        st.just("$keys(obj)"),
        st.just("nums[$ > 0]"),
    )


def _ours(expr: str, data: Any, generate: bool = True) -> tuple[str, Any]:
    try:
        result = Expression(expr, generate=generate).evaluate(data)
    except JsonataError as err:
        return "error", (err.code, err.position, err.token)
    return "value", None if result is UNDEFINED else result


def _theirs(expr: str, data: Any) -> tuple[str, Any]:
    try:
        return "value", jsonata_python.Jsonata(expr).evaluate(data)
    except jsonata_python.JException as err:
        return "error", err.error


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_expr(), data=data_strategy)
def test_matches_jsonata_python(expr: str, data: dict[str, Any]) -> None:
    ours = _ours(expr, data)
    if ours[0] == "error":
        ours = ("error", ours[1][0])
    theirs = _theirs(expr, data)
    if ours != theirs and "comparison_with_undefined" in _KNOWN_DIFFERENCES:
        # exclude exactly the documented case: a comparison that the reference
        # evaluates to undefined where jsonata-python says false
        assume(not (ours[0] == "value" and ours[1] is None and theirs == ("value", False)))
    assert ours == theirs, f"{expr!r} on {data!r}: ours={ours!r} jsonata-python={theirs!r}"


# looser data for the generated-vs-closure comparison: the generated fast paths
# must fall back correctly when a value is missing, a string or a lone object
odd_value = st.one_of(small_int, word, st.none(), st.just([1, "a"]), st.floats(-5, 5))
odd_data_strategy = st.fixed_dictionaries({
    "n": st.one_of(small_int, word),
    "s": st.one_of(word, small_int),
    # $number's inline parse and everything it hands to the general one
    "p": st.one_of(st.sampled_from(["007", "1e3", " 4", "x", "-0", "1.", ".5", "1_0", "１",
                                    "123456789012345678", "0x1F", ""]),
                   small_int, st.just(True), st.just(float("inf")), st.floats(-5, 5)),
    "nums": st.one_of(st.lists(small_int, max_size=4), small_int),
    "obj": st.one_of(st.fixed_dictionaries({"k": odd_value, "w": word}), st.lists(
        st.fixed_dictionaries({"k": small_int, "w": word}), max_size=3)),
    "items": st.one_of(
        st.lists(st.fixed_dictionaries({"q": odd_value, "name": word}), max_size=4),
        st.fixed_dictionaries({"q": odd_value, "name": word})),
}, optional={"m": small_int, "t": word})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=_expr(), data=st.one_of(data_strategy, odd_data_strategy,
                                     st.lists(data_strategy, max_size=2)))
def test_generated_code_matches_closures(expr: str, data: Any) -> None:
    """codegen.py's fast paths against the closures they stand in for:
    same values, same error code, position and token."""
    generated, closures = _ours(expr, data), _ours(expr, data, generate=False)
    assert generated == closures, f"{expr!r} on {data!r}"


def test_differential_grammar_produces_varied_expressions() -> None:
    # guard against a degenerate strategy that would make the property vacuous
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None)
    @given(expr=_expr())
    def collect(expr: str) -> None:
        seen.add(expr)
        compile_expression(expr)  # every generated expression must be valid JSONata

    collect()
    assert len(seen) > 30
