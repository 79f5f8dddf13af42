"""Behaviour of the compiled JSONata engine beyond the reference suite:
thread safety, per-evaluation bounds and clock, exact integers, isolation of
input and output, error reporting and the absence of import side effects."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jsonata import UNDEFINED, JsonataError, compile_expression, is_undefined

ROOT = Path(__file__).resolve().parents[2]


def test_basic_api() -> None:
    expr = compile_expression("Account.Order.Product.Price")
    assert expr.source == "Account.Order.Product.Price"
    data = {"Account": {"Order": [{"Product": [{"Price": 1}, {"Price": 2.5}]},
                                  {"Product": {"Price": 3}}]}}
    assert expr.evaluate(data) == [1, 2.5, 3]
    assert is_undefined(compile_expression("nothing").evaluate({}))
    assert compile_expression("nothing").evaluate({}) is UNDEFINED
    assert compile_expression("$").evaluate(None) is None


def test_bindings_values_and_python_callables() -> None:
    expr = compile_expression('$headers.`x-id` & ":" & $upper($vars.name)')
    out = expr.evaluate({}, {"headers": {"x-id": "7"}, "vars": {"name": "ada"},
                             "upper": lambda s: s.upper()})
    assert out == "7:ADA"


def test_threads_see_their_own_root() -> None:
    expr = compile_expression('$map(items, function($i) { $$.name & "-" & $string($i) })')
    inputs = {name: {"name": name, "items": list(range(5))} for name in ("left", "right")}
    errors: list[str] = []

    def worker(name: str) -> None:
        want = [f"{name}-{i}" for i in range(5)]
        for _ in range(2000):
            got = expr.evaluate(inputs[name])
            if got != want:
                errors.append(f"{name}: {got}")
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_deep_recursion_fails_within_depth_and_next_evaluation_works() -> None:
    expr = compile_expression("($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(n))")
    assert expr.evaluate({"n": 50}, max_depth=500) == 50
    with pytest.raises(JsonataError) as info:
        expr.evaluate({"n": 10_000}, max_depth=500)
    assert info.value.code == "U1001"
    assert "recursive" in str(info.value)
    # the bound was per evaluation: the same expression works again
    assert expr.evaluate({"n": 50}, max_depth=500) == 50
    assert expr.evaluate({"n": 100}) == 100


def test_unbounded_recursion_without_limits_is_a_clean_error() -> None:
    before = sys.getrecursionlimit()
    expr = compile_expression("($f := function($n){ 1 + $f($n + 1) }; $f(0))")
    with pytest.raises(JsonataError) as info:
        expr.evaluate({})
    assert info.value.code == "U1001"
    assert sys.getrecursionlimit() == before


def test_infinite_loop_times_out_per_evaluation() -> None:
    expr = compile_expression("($loop := function($n){ $loop($n + 1) }; $loop(0))")
    compiled_at = time.monotonic()
    time.sleep(0.3)  # the clock must start at evaluation, not at compile time
    start = time.monotonic()
    with pytest.raises(JsonataError) as info:
        expr.evaluate({}, timeout_ms=200)
    elapsed = time.monotonic() - start
    assert info.value.code == "U1001"
    assert "timeout" in str(info.value)
    assert elapsed > 0.15  # not before its budget; that it is the timeout says the message
    assert start - compiled_at >= 0.3
    fine = compile_expression("($f := function($n){ $n > 0 ? $f($n - 1) : 'done' }; $f(1000))")
    assert fine.evaluate({}, timeout_ms=2000) == "done"


def test_large_integers_are_exact() -> None:
    big = 5890840712243080
    assert compile_expression("$string(5890840712243080)").evaluate({}) == "5890840712243080"
    assert compile_expression("$string(id)").evaluate({"id": big}) == "5890840712243080"
    assert compile_expression("id + 1").evaluate({"id": big}) == big + 1
    huge = 12345678901234567890
    assert compile_expression("$string(id)").evaluate({"id": huge}) == str(huge)
    result = compile_expression("n * 2").evaluate({"n": 21})
    assert result == 42 and type(result) is int
    assert compile_expression("$string(10 / 4)").evaluate({}) == "2.5"
    assert compile_expression("$string(1e21)").evaluate({}) == "1e+21"
    assert compile_expression("$string(1/3)").evaluate({}) == "0.333333333333333"
    assert compile_expression("{'id': $string(id)}").evaluate({"id": big}) == {"id": str(big)}


def test_now_and_millis_fixed_within_one_evaluation() -> None:
    expr = compile_expression("[1..500].$millis() ~> $distinct()")
    first = expr.evaluate({})
    assert isinstance(first, int)
    pair = compile_expression("[$now(), $map([1..300], function(){ $now() })] ~> $distinct()")
    stamps = pair.evaluate({})
    assert isinstance(stamps, list) and len(stamps) == 1 and stamps[0].endswith("Z")
    time.sleep(0.01)
    assert expr.evaluate({}) > first


def test_now_is_current_in_pool_threads() -> None:
    expr = compile_expression("$millis()")
    results: list[int] = []

    def worker() -> None:
        time.sleep(0.05)
        results.append(expr.evaluate({}))

    before = int(time.time() * 1000)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert results[0] >= before + 40


def test_input_never_mutated_and_output_never_aliases_input() -> None:
    data = {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "meta": {"x": 1}}
    snapshot = copy.deepcopy(data)
    for source in ["items", "meta", "$", "$merge([meta, {'y': 2}])",
                   "$ ~> |items|{'qty': qty * 10}|", "$sort(items, function($a,$b){$a.qty<$b.qty})",
                   "items[qty > 1]", "$reverse(items)", "$spread(meta)", "{'m': meta}"]:
        result = compile_expression(source).evaluate(data)
        assert data == snapshot, source
        # mutate whatever came back: the input must not change
        for node in _containers(result):
            if isinstance(node, dict):
                node["mutated"] = True
            else:
                node.append("mutated")
        assert data == snapshot, source


def _containers(value: object) -> list[object]:
    found: list[object] = []
    if isinstance(value, (dict, list)):
        found.append(value)
        children = value.values() if isinstance(value, dict) else value
        for child in list(children):
            found.extend(_containers(child))
    return found


def test_transform_result_is_independent() -> None:
    data = {"a": {"b": 1}}
    out = compile_expression("$ ~> |a|{'b': 2}|").evaluate(data)
    assert out == {"a": {"b": 2}} and data == {"a": {"b": 1}}


def test_runtime_error_names_position_and_value() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('price + "ten"').evaluate({"price": 1})
    err = info.value
    assert err.code == "T2002"
    assert err.position == 7
    assert err.value == "ten"
    assert "position 7" in str(err) and "+" in str(err)


def test_syntax_error_code_position_and_token() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression("a.b + ")
    assert info.value.code == "S0207"
    with pytest.raises(JsonataError) as info:
        compile_expression("{'a': 1 'b': 2}")
    assert info.value.code == "S0202"
    assert info.value.position == 11  # offsets point just past the offending token
    assert "position 11" in str(info.value)


@pytest.mark.parametrize(("source", "code", "position", "found", "message"), [
    ('{"total": $sum(lines.(qty * price)}', "S0202", 35, "}", 'Expected ")", got "}"'),
    ("$sum(lines.(qty * price)", "S0203", 24, "(end)",
     'Expected ")" before end of expression'),
    ("[1, 2}", "S0202", 6, "}", 'Expected "]", got "}"'),
])
def test_syntax_error_says_what_was_expected_and_what_was_found(
        source: str, code: str, position: int, found: str, message: str) -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression(source)
    err = info.value
    assert (err.code, err.position, err.token, err.message) == (code, position, found, message)


def test_function_errors_carry_function_name() -> None:
    with pytest.raises(JsonataError) as info:
        compile_expression('$substring("abc", "x")').evaluate({})
    assert info.value.code == "T0410"
    assert info.value.token == "substring"
    assert "substring" in str(info.value)


def test_import_does_not_change_recursion_limit() -> None:
    code = (
        "import sys\n"
        "before = sys.getrecursionlimit()\n"
        "import engine.jsonata as j\n"
        "j.compile_expression('$uppercase(a)').evaluate({'a': 'x'})\n"
        "j.compile_expression(\"$fromMillis(0, '[Y0001]')\").evaluate({})\n"
        "assert sys.getrecursionlimit() == before, sys.getrecursionlimit()\n"
        "assert 'jsonata.jsonata' in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_tiered_expression_starts_on_closures_and_gets_generated_code_when_hot() -> None:
    from engine.jsonata import api

    source = '{"id": $string(id), "total": $sum(lines.(qty * price))}'
    data = {"id": 5890840712243080, "lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 3}]}
    eager, tiered = api.Expression(source), api.compile_expression(source, tiered=True)
    closures = tiered._fn
    results = [tiered.evaluate(data) for _ in range(api.HOT_AFTER + 2)]
    assert tiered._fn is not closures  # swapped to generated code after HOT_AFTER evaluations
    assert all(r == eager.evaluate(data) == {"id": "5890840712243080", "total": 6}
               for r in results)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=" \t\n\r\u00a0ab", max_size=12))
def test_trim_fast_path_agrees_with_the_general_rule(s: str) -> None:
    # $trim folds runs of space, tab, CR and LF to one space, then strips spaces
    assert compile_expression("$trim(s)").evaluate({"s": s}) == \
        re.sub(r"[ \t\n\r]+", " ", s).strip(" ")


# results of jsonata-js 2.2.2 on the same expressions
@pytest.mark.parametrize(("fraction", "shown"), [
    ("5", "500"), ("01", "010"), ("019", "019"), ("01987", "019"), ("9999", "999")])
def test_fractional_seconds_of_a_picture_are_a_fraction_of_a_second(
        fraction: str, shown: str) -> None:
    source = (f"$toMillis('2026-04-08T19:05:04.{fraction}', "
              "'[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f1]') ~> $fromMillis()")
    assert compile_expression(source).evaluate({}) == f"2026-04-08T19:05:04.{shown}Z"


@pytest.mark.parametrize(("source", "words"), [
    ("$formatInteger(1e46, 'W')", "TEN BILLION TRILLION TRILLION TRILLION"),
    ("$formatInteger(1e46, 'Ww;o')", "Ten Billion Trillion Trillion Trillionth"),
    ("$formatInteger(123, 'w')", "one hundred and twenty-three"),
])
def test_words_of_a_number_beyond_2_53_are_those_of_jsonata_js(source: str, words: str) -> None:
    assert compile_expression(source).evaluate({}) == words
