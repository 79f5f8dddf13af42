"""Numbers JSON cannot carry, and the per-evaluation time and depth bounds
inside loops that call no function (regression tests for issue #10)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.jsonata import JsonataError, compile_expression

# expression -> the code jsonata-js 2.2.2 raises, or D1001 where it would
# return Infinity/NaN (flowrunner fails at the producing operator instead)
NON_FINITE = [
    ("1/0", "D1001"),
    ("-1/0", "D1001"),
    ("0/0", "D1001"),
    ("1 % 0", "D1001"),
    ("1e308 * 10", "D1001"),
    ("-1e308 - 1e308", "D1001"),
    ("1/(10e300 * 10e100)", "D1001"),
    ("[1, 1/0]", "D1001"),
    ('{"inf": 1/0}', "D1001"),
    ("$string(1/0)", "D1001"),
    ("$sum([1e308, 1e308])", "D1001"),
    ("$average([1e308, 1e308])", "D1001"),
    ("$round(1.5e308, -308)", "D1001"),
    ("$power(2, 1023) * 2", "D1001"),
    ("$power(10, 400)", "D3061"),
    ("$power(-1, 0.5)", "D3061"),
    ("$sqrt(-1)", "D3060"),
    ('$number("1e400")', "D3030"),
    ('$number("Infinity")', "D3030"),
    ("1e400", "S0102"),
]


@pytest.mark.parametrize(("source", "code"), NON_FINITE)
def test_non_finite_results_raise(source: str, code: str) -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression(source).evaluate({})
    assert info.value.code == code


def test_out_of_range_error_names_operator_position_and_operands() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression("total / count").evaluate({"total": 10, "count": 0})
    err = info.value
    assert (err.code, err.position, err.token) == ("D1001", 7, "/")
    assert "10 / 0 is not a finite number" in str(err)


def test_finite_edges_still_compute() -> None:
    assert compile_expression("1e308 * 1").evaluate({}) == 1e308
    assert compile_expression("$round(1.7e308)").evaluate({}) == 1.7e308
    assert compile_expression("$floor(1e20)").evaluate({}) == 1e20
    assert compile_expression("7 / 2").evaluate({}) == 3.5
    assert compile_expression("-7 % 3").evaluate({}) == -1
    big = 12345678901234567890123
    assert compile_expression("n * 3").evaluate({"n": big}) == big * 3


@pytest.mark.parametrize(("source", "data", "bindings"), [
    ("x", {"x": float("inf")}, None),
    ("{'a': [x]}", {"x": float("nan")}, None),
    ("x + 1", {"x": float("inf")}, None),
    ("-x", {"x": float("-inf")}, None),
    ("$floor(x)", {"x": float("nan")}, None),
    ("$sum(xs)", {"xs": [1, float("inf")]}, None),
    ("$f()", {}, {"f": lambda: float("nan")}),
    ("n * 1.5", {"n": 10**400}, None),
    ("n / 3", {"n": 10**400 + 1}, None),
])
def test_non_finite_from_data_or_bindings_never_reaches_output(
        source: str, data: Any, bindings: dict[str, Any] | None) -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression(source).evaluate(data, bindings)
    assert info.value.code == "D1001"


BIG = {"xs": list(range(3_000_000))}


@pytest.mark.parametrize("source", [
    "[1..10000000].($ * 2)",              # range creation itself
    "xs.($ * 2 + 1)",                     # one long path step, no function call
    "xs[$ % 7 = 3]",                      # one long filter
    "$map(xs, $string)",                  # a higher-order function over a built-in
    "$filter(xs, $boolean)",
    "xs^(-$)",                            # order-by key evaluation
    "xs{$string($ % 1000): $}",           # group-by
    "($x := [1..3000]; $x.($x.($ * 2)))",  # many short loops, none long
])
def test_timeout_is_checked_inside_loops(source: str) -> None:
    expr = compile_expression(source)
    with pytest.raises(JsonataError) as info:
        expr.evaluate(BIG, timeout_ms=50)
    assert info.value.code == "U1001"
    assert "timeout" in str(info.value)
    # the bound belonged to that evaluation only
    assert compile_expression("$count(xs)").evaluate(BIG, timeout_ms=50) == 3_000_000


def test_loops_within_the_time_bound_complete() -> None:
    out = compile_expression("xs[$ < 5].($ * 2)").evaluate({"xs": list(range(20_000))},
                                                          timeout_ms=5000)
    assert out == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("source", [
    # recursion through a higher-order function and through `~>`
    "($f := function($n){ $map([$n], function($x){ $f($x + 1) }) }; $f(0))",
    "($f := function($n){ ($n + 1) ~> $f }; $f(0))",
    "($f := function($n){ [$n].$f($ + 1) }; $f(0))",
])
def test_depth_bound_applies_through_loops_and_application(source: str) -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression(source).evaluate({}, max_depth=100)
    assert info.value.code == "U1001"


def test_deeply_nested_data_is_a_bound_error_not_a_crash() -> None:
    data: Any = 1
    for _ in range(50_000):
        data = {"a": data}
    with pytest.raises(JsonataError) as info:
        compile_expression("$").evaluate(data)
    assert info.value.code == "U1001"


def test_distinct_and_grouping_stay_linear() -> None:
    # quadratic versions of these take minutes on 200k items and hit the bound
    items = [{"k": "same", "v": i % 1000} for i in range(200_000)]
    out = compile_expression("{'n': $count($distinct(items.v)), 'g': $count((items{k: v}).same)}")
    assert out.evaluate({"items": items}, timeout_ms=20_000) == {"n": 1000, "g": 200_000}


@pytest.mark.parametrize("source", [
    "$contains(s, /^(a|aa)+$/)", "$match(s, /^(a|aa)+$/)", '$replace(s, /^(a|aa)+$/, "x")',
    "$split(s, /^(a|aa)+$/)", "/^(a|aa)+$/(s)",
])
def test_a_backtracking_regex_stops_at_the_timeout(source: str) -> None:
    # on 35 a's and a b this pattern backtracks for minutes; Python's `re` cannot be stopped
    # mid-search, the engine flowrunner matches with can
    data = {"s": "a" * 35 + "b"}
    with pytest.raises(JsonataError) as info:
        compile_expression(source).evaluate(data, timeout_ms=200)
    assert info.value.code == "U1001"
    # the next evaluation has its own bounds, and the same pattern on a short input matches
    assert compile_expression(source.replace("s,", "t,").replace("(s)", "(t)")).evaluate(
        {"t": "aaa"}, timeout_ms=200) not in (None, False)
