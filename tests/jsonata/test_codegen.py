"""The generated-source fast paths (engine/jsonata/codegen.py) must behave
exactly like the closures behind them: on the slow paths they fall back to,
with shadowed library names, and in the errors they raise."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.jsonata import UNDEFINED, JsonataError, compile_expression
from engine.jsonata.api import Expression

MAPPING = ('{"id": $string(id), "lines": items.{"sku": sku, "q": $number(q) * 2,'
           ' "t": $substring(t, 0, 3)}, "n": $count(items), "sum": $sum(items.$number(q))}')


@pytest.mark.parametrize(("data", "expected"), [
    # the shape the fast paths are written for
    ({"id": 5890840712243080, "items": [{"sku": "a", "q": 1, "t": "abcd"},
                                        {"sku": "b", "q": "2.5", "t": "xy"}]},
     {"id": "5890840712243080", "lines": [{"sku": "a", "q": 2, "t": "abc"},
                                           {"sku": "b", "q": 5, "t": "xy"}],
      "n": 2, "sum": 3.5}),
    # a single item instead of an array, a missing field, strings where numbers go
    ({"id": "x", "items": {"sku": "a", "q": 3}},
     {"id": "x", "lines": {"sku": "a", "q": 6}, "n": 1, "sum": 3}),
    # the input itself an array: object constructors group, paths map
    ([{"id": 1, "items": [{"q": 1}]}, {"id": 2, "items": [{"q": 2}]}],
     {"id": '[1,2]', "lines": [{"q": 2}, {"q": 4}], "n": 2, "sum": 3}),
])
def test_mapping_shapes(data: Any, expected: Any) -> None:
    got = compile_expression(MAPPING).evaluate(data)
    assert got == expected == Expression(MAPPING, generate=False).evaluate(data)


def test_sum_type_error_is_the_signature_error() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression("$sum(items.q)").evaluate({"items": [{"q": 1}, {"q": "x"}]})
    assert (info.value.code, info.value.token) == ("T0412", "sum")


def test_fast_call_errors_carry_position_and_function() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('{"a": $number(price)}').evaluate({"price": "12,50"})
    assert (info.value.code, info.value.position, info.value.token) == ("D3030", 14, "number")
    # an error after a fast call is not blamed on it
    with pytest.raises(JsonataError) as info:
        compile_expression('{"a": $number(p), "b": x + "s"}').evaluate({"p": "1", "x": 1})
    assert (info.value.code, info.value.token) == ("T2002", "+")


def test_binding_shadows_library_function() -> None:
    expr = compile_expression('{"a": $string(x), "b": $uppercase(s)}')
    assert expr.evaluate({"x": 1, "s": "q"}) == {"a": "1", "b": "Q"}
    shadowed = expr.evaluate({"x": 1, "s": "q"}, {"string": lambda v: f"<{v}>"})
    assert shadowed == {"a": "<1>", "b": "Q"}


def test_expression_rebinding_a_library_name() -> None:
    source = '($string := function($v){ "s" & $v }; {"a": $string("x")})'
    assert compile_expression(source).evaluate({}) == {"a": "sx"}
    via_eval = '($eval("$uppercase := function($v){ \'no\' }"); {"a": $uppercase("x")})'
    # as in jsonata-js, $eval assigns in the caller's scope
    assert compile_expression(via_eval).evaluate({}) == {"a": "no"}
    # within one generated function too: $eval turns static resolution off
    same_object = ('{"e": $boolean($eval("$uppercase := function($v){ \'no\' }")),'
                   ' "a": $uppercase("x")}')
    assert compile_expression(same_object).evaluate({}) == \
        Expression(same_object, generate=False).evaluate({}) == {"e": False, "a": "no"}


def test_mixed_arithmetic_overflow_is_out_of_range() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('{"a": n * 1.5}').evaluate({"n": 10**400})
    assert info.value.code == "D1001"


def test_numbers_narrow_and_stay_exact() -> None:
    out = compile_expression('{"a": x * 2, "b": y + 1, "c": x / 4}').evaluate(
        {"x": 1.5, "y": 2**60})
    assert out == {"a": 3, "b": 2**60 + 1, "c": 0.375}
    assert type(out["a"]) is int


def test_missing_and_non_object_contexts() -> None:
    expr = compile_expression('{"v": a.b.c, "w": a.b}')
    assert expr.evaluate({"a": [{"b": {"c": 1}}, {"b": {"c": 2}}]}) == {
        "v": [1, 2], "w": [{"c": 1}, {"c": 2}]}
    assert expr.evaluate({"a": "text"}) == {}
    assert compile_expression("a.b.c").evaluate(UNDEFINED) is UNDEFINED
    assert compile_expression('{"k": 1}').evaluate([1, 2]) == {"k": 1}


def test_errors_inside_fast_library_calls_are_marked_by_their_line() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('{"a": $string(x), "b": $formatBase(n, 99)}').evaluate({"x": 1, "n": 5})
    assert (info.value.code, info.value.position, info.value.token) == ("D3100", 35, "formatBase")
    # a timeout inside a generated loop is not blamed on a library call
    with pytest.raises(JsonataError) as info:
        compile_expression('{"a": $string(x), "b": xs.($ + 1)}').evaluate(
            {"x": 1, "xs": list(range(3_000_000))}, timeout_ms=20)
    assert (info.value.code, info.value.token) == ("U1001", None)


def _closures(source: str, data: Any) -> Any:
    return Expression(source, generate=False).evaluate(data)


def test_generated_result_is_plain_and_shares_nothing_with_the_input() -> None:
    # generated code builds its result in exported form instead of copying it
    # afterwards: every container is a plain dict or list, none is the input's
    source = ('{"meta": meta, "rows": items.{"sku": sku, "props": props}, "all": items,'
              ' "tags": $map(tags, function($t) { $uppercase($t) }), "first": items[0]}')
    data = {"meta": {"a": [1, {"b": 2}]}, "tags": ["x", "y"],
            "items": [{"sku": "a", "props": {"c": [3]}}, {"sku": "b", "props": [{"d": 4}]}]}
    snapshot = copy.deepcopy(data)
    got = compile_expression(source).evaluate(data)
    assert got == _closures(source, data)
    for node in _walk(got):
        assert type(node) in (dict, list), type(node)  # no internal sequence type
        if isinstance(node, dict):
            node["mutated"] = True
        else:
            node.append("mutated")
    assert data == snapshot


def _walk(value: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, (dict, list)):
        found.append(value)
        for child in list(value.values() if isinstance(value, dict) else value):
            found.extend(_walk(child))
    return found


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_input_number_fails_as_the_closures_fail(value: float) -> None:
    # $number passes an input number through; one that is not finite may not
    # reach the result in either engine, and both say so the same way
    for source in ('{"x": $number(v)}', '{"x": [$number(v)]}', "$number(v)"):
        errors = []
        for generate in (True, False):
            with pytest.raises(JsonataError) as info:
                Expression(source, generate=generate).evaluate({"v": value})
            errors.append((info.value.code, info.value.position))
        assert errors[0] == errors[1] and errors[0][0] == "D1001", source


@pytest.mark.parametrize("price", ["19.99", "12.00", "-0.5", "007", "1e3", " 4", "1.", "x",
                                   "123456789012345678", 7, 2.5, None, True])
def test_repeated_number_parse_is_computed_once_with_the_same_outcome(price: Any) -> None:
    source = '{"unit": $number(price), "total": $number(price) * qty, "again": $number(price)}'
    data = {"price": price, "qty": 3}
    try:
        expected: Any = _closures(source, data)
    except JsonataError as err:
        with pytest.raises(JsonataError) as info:
            compile_expression(source).evaluate(data)
        assert (info.value.code, info.value.position) == (err.code, err.position)
        return
    got = compile_expression(source).evaluate(data)
    assert got == expected
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize("title", ["Handmade ceramic mug", "añejo ☕ mug", "", "ab"])
def test_substring_and_case_fast_paths(title: str) -> None:
    source = ('{"t": $substring(title, 0, 5), "u": $substring(title, 2, 3),'
              ' "up": $uppercase(title), "low": $lowercase(title)}')
    for data in ({"title": title}, {"title": 42}, {}):
        try:
            expected = _closures(source, data)
        except JsonataError as err:
            with pytest.raises(JsonataError) as info:
                compile_expression(source).evaluate(data)
            assert info.value.code == err.code
            continue
        assert compile_expression(source).evaluate(data) == expected


@pytest.mark.parametrize("source", [
    "$sum(items.($number(q) * 2))", "$sum(items.$number(q))", "$sum(items.q)",
    '{"s": $sum(items.($number(q) * 2)), "t": $string($sum(items.$number(q)))}',
    "$split(s, ',')", "$split(s, '')", "$split(s, ', ', 1)",
    "$map($split(s, ','), function($t) { $trim($t) })",
])
@pytest.mark.parametrize("data", [
    {"items": [{"q": "1.5"}, {"q": 2}], "s": "a, b,,c"}, {"items": {"q": "0.1"}, "s": ""},
    {"items": [], "s": 5}, {"items": [{"q": "x"}]}, {"items": [{"q": float("inf")}], "s": "a"},
    {},
])
def test_sums_and_splits_agree_with_the_closures(source: str, data: Any) -> None:
    outcomes = []
    for generate in (True, False):
        try:
            outcomes.append(("value", Expression(source, generate=generate).evaluate(data)))
        except JsonataError as err:
            outcomes.append(("error", (err.code, err.position, err.token)))
    assert outcomes[0] == outcomes[1]


def test_sum_adds_left_to_right_in_doubles_as_javascript_does() -> None:
    # Python 3.12's sum() compensates float rounding; JavaScript's addition does not
    assert compile_expression("$sum([0.1, 0.2, 0.3])").evaluate(None) == 0.6000000000000001
    assert compile_expression("$sum(xs.v)").evaluate(
        {"xs": [{"v": 0.1}, {"v": 0.2}, {"v": 0.3}]}) == 0.6000000000000001
    assert compile_expression("$average([0.1, 0.2])").evaluate(None) == 0.15000000000000002


def test_a_later_error_wins_over_a_non_finite_number_in_the_result() -> None:
    # the closures fail on the non-finite number only when exporting the finished
    # result; an error met later in the evaluation is the one they report
    source = '{"a": $number(v), "b": [w], "c": $error("stop")}'
    data = {"v": float("inf"), "w": float("nan")}
    for generate in (True, False):
        with pytest.raises(JsonataError) as info:
            Expression(source, generate=generate).evaluate(data)
        assert info.value.code == "D3137", generate
    for generate in (True, False):
        with pytest.raises(JsonataError) as info:
            Expression('{"a": $number(v), "b": [w]}', generate=generate).evaluate(data)
        assert info.value.code == "D1001", generate


@pytest.mark.parametrize("prices", [
    ["1.50", "12.00", "1.50", 7, "0.25"], ["1.50", "x"], ["007", " 4", "1e3", "-2.5"],
    [float("inf")], [None, True, "9"],
])
def test_a_field_parsed_in_two_places_gives_what_the_closures_give(prices: list[Any]) -> None:
    # $number(price) in the lines and again in their total: generated code reads
    # each string once per evaluation; results, types and errors stay the closures'
    source = ('{"lines": items.{"unit": $number(price), "total": $number(price) * q},'
              ' "sum": $sum(items.($number(price) * q)), "first": $number(items[0].price)}')
    data = {"items": [{"price": p, "q": 2} for p in prices]}
    outcomes = []
    for generate in (True, False):
        try:
            got = Expression(source, generate=generate).evaluate(data)
            outcomes.append(("value", got, _types(got)))
        except JsonataError as err:
            outcomes.append(("error", (err.code, err.position, err.token), None))
    assert outcomes[0] == outcomes[1]


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
