"""Numbers JSON cannot carry, and the per-evaluation time and depth bounds
inside loops that call no function (regression tests for issue #10)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.jsonata import JsonataError, compile_expression
from engine.jsonata.api import Expression

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


# -- size bounds (engine/jsonata/limits.py): integers, strings, arrays ------------------------

def _both_ways(source: str, data: Any = None, timeout_ms: int | None = 5000) -> list[Any]:
    """The outcome of ``source`` on generated code and on closures: the value, or
    the error's (code, message); a Python exception other than JsonataError fails."""
    outcomes = []
    for generate in (True, False):
        try:
            outcomes.append(Expression(source, generate=generate).evaluate(
                {} if data is None else data, timeout_ms=timeout_ms))
        except JsonataError as err:
            outcomes.append((err.code, err.message))
    return outcomes


CUBED = int("7" * 3000)  # a 3,000-digit integer, as a JSON body may carry it


@pytest.mark.parametrize("source", [
    "n * n * n", '{"cube": n * n * n}', "n * n", "($c := n * n; $c * n)",
    "n + n * n", "-n * n", "$sum([n * n])", "[n].($ * $ * $)",
])
def test_an_integer_result_over_4300_digits_is_d1011_both_ways(source: str) -> None:
    for outcome in _both_ways(source, {"n": CUBED}):
        assert isinstance(outcome, tuple), source
        code, message = outcome
        assert code == "D1011"
        assert "more than 4,300 digits" in message and "(3000 digits)" in message


def test_the_3000_digit_integer_cubed_fails_at_the_multiplication() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('{"cube": n * n * n}').evaluate({"n": CUBED})
    # n * n already has 6,000 digits: the first `*` (offsets point just past the token)
    assert (info.value.code, info.value.position, info.value.token) == ("D1011", 12, "*")


def test_integers_up_to_the_bound_stay_exact_both_ways() -> None:
    n = int("9" * 2000)
    assert _both_ways("n * n", {"n": n}) == [n * n, n * n]
    # past one machine digit, past 2**53, negative: the generated checks let them through
    ms = 1_765_000_000_000
    assert _both_ways("t * 1000 + 1 - t", {"t": ms}) == [ms * 999 + 1] * 2
    assert _both_ways("0 - n * n", {"n": 2**40}) == [-(2**80)] * 2
    big = 10**4299  # 4,300 digits
    assert _both_ways("n * 10 - 1", {"n": big // 10}) == [big - 1, big - 1]
    assert _both_ways("$string(n)", {"n": big}) == [str(big)] * 2


@pytest.mark.parametrize(("source", "code"), [
    ("n * n", "D1011"),                   # operands over the bound, from a binding or data
    ("n + 1", "D1011"),
    ("$string(n)", "D1011"),              # str() of it raises ValueError in Python
    ("$string([n])", "D1011"),
    ("'#' & n", "D1011"),
    ("$round(n)", "D1011"),
    ("$formatBase(n, 16)", "D1011"),
    ("$formatInteger(n, 'w')", "D1011"),
    ("$power(n, 2)", "D3061"),
    ("$formatNumber(n div, '#,##0')", "D1001"),  # an integer too large for a float
])
def test_an_integer_over_the_bound_from_the_input_fails_with_a_code(source: str,
                                                                    code: str) -> None:
    data = {"n": 3 * 10**4999, "div": int("9" * 400)}
    source = source.replace("n div", "div")
    assert [o[0] for o in _both_ways(source, data)] == [code, code]


@pytest.mark.parametrize(("source", "code"), [
    ("$power(3, 1e9)", "D3061"),          # would take minutes to compute, then overflow
    ("$power(n, 1000)", "D3061"),
    ('$number("0x" & $pad("", 20000, "f"))', "D1011"),
])
def test_a_power_or_parse_too_large_is_refused_before_it_is_computed(source: str,
                                                                     code: str) -> None:
    assert [o[0] for o in _both_ways(source, {"n": int("7" * 3000)})] == [code, code]


@pytest.mark.parametrize(("source", "data", "size"), [
    ('$pad("x", 1e9)', {}, 1_000_000_000),
    ('$pad("x", width)', {"width": 20_000_000}, 20_000_000),  # a width from the message
    ('$pad("x", -width)', {"width": 20_000_000}, 20_000_000),
    ("$join([s, s, s])", {"s": "a" * 4_000_000}, 12_000_000),
    ("$join([s, s], '--')", {"s": "a" * 5_000_000}, 10_000_002),
    ("s & s", {"s": "a" * 6_000_000}, 12_000_000),
    ('{"twice": s & "" & s}', {"s": "a" * 6_000_000}, 12_000_000),
    ("$string([s, s])", {"s": "a" * 6_000_000}, 12_000_006),
    ('$replace(s, "a", "aaa")', {"s": "a" * 6_000_000}, 18_000_000),
])
def test_a_string_over_ten_million_characters_is_d2015_before_it_is_made(
        source: str, data: Any, size: int) -> None:
    for outcome in _both_ways(source, data):
        assert isinstance(outcome, tuple), source
        code, message = outcome
        assert code == "D2015"
        assert f"would have {size:,} characters; the limit is 10,000,000" in message


def test_string_doubling_in_a_loop_stops_at_the_bound() -> None:
    # each step doubles the text: 2**30 characters at the end without the bound
    source = '$reduce([1..30], function($acc, $i) { $acc & $acc }, "ab")'
    assert [o[0] for o in _both_ways(source)] == ["D2015", "D2015"]
    # one object twice in the next, thirty deep: a billion leaves in its text
    nested = '$reduce([1..30], function($acc, $i) { {"l": $acc, "r": $acc} }, "ab") ~> $string()'
    assert [o[0] for o in _both_ways(nested)] == ["D2015", "D2015"]


def test_strings_up_to_the_bound_are_made() -> None:
    assert _both_ways('$length($pad("x", 10000000))') == [10_000_000] * 2
    assert _both_ways("$length(s & s)", {"s": "a" * 5_000_000}) == [10_000_000] * 2


@pytest.mark.parametrize("source", [
    "[1..1e7, 1..1e7]", "$append([1..1e7], [1..1e7])", "$count([1..6000000, 1..6000000])",
])
def test_an_array_over_ten_million_items_is_d2016(source: str) -> None:
    for outcome in _both_ways(source, timeout_ms=None):
        assert isinstance(outcome, tuple), source
        assert outcome[0] == "D2016" and "the limit is 10,000,000" in outcome[1]


def test_the_range_bound_is_still_d2014() -> None:
    assert [o[0] for o in _both_ways("[1..1e9]")] == ["D2014", "D2014"]


def test_many_quick_regex_matches_honour_the_timeout() -> None:
    # two million matches, each quick: the deadline is checked between them
    outcomes = _both_ways('$replace(s, /a/, "b")', {"s": "a" * 2_000_000}, timeout_ms=200)
    assert [o[0] for o in outcomes] == ["U1001", "U1001"]


SHARED = '$reduce([1..{n}], function($acc, $i) {{ {{"l": $acc, "r": $acc}} }}, "ab")'


def test_a_result_holding_one_object_many_times_is_copied_within_the_time_bound() -> None:
    # 2**30 values once copied out: the copy is paced like a loop, and stops at the bound
    outcomes = _both_ways(SHARED.format(n=30), timeout_ms=300)
    assert [o[0] for o in outcomes] == ["U1001", "U1001"]


def test_a_result_of_more_values_than_the_room_is_d2016(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.jsonata.runtime as runtime
    monkeypatch.setattr(runtime, "MAX_ARRAY", 100_000)  # the room of each evaluation
    outcomes = _both_ways(SHARED.format(n=20), timeout_ms=None)  # a million values
    assert [o[0] for o in outcomes] == ["D2016", "D2016"]
    assert "the result (its objects and arrays together)" in outcomes[0][1]
    # within the room the same shape is copied out whole
    assert _both_ways(SHARED.format(n=3), timeout_ms=None)[0] == {
        "l": {"l": {"l": "ab", "r": "ab"}, "r": {"l": "ab", "r": "ab"}},
        "r": {"l": {"l": "ab", "r": "ab"}, "r": {"l": "ab", "r": "ab"}}}
