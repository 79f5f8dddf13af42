"""Aggregation, array, object and higher-order functions of the library."""

from __future__ import annotations

import copy
import math
import random
import sys
from functools import cmp_to_key
from typing import Any

from .errors import JsonataError
from .functions_core import to_boolean
from .limits import checked_int
from .paths import lookup as _lookup
from .runtime import Frame, apply_fn, arity_of, call_hof, pace
from .values import (
    UNDEFINED,
    Seq,
    append,
    deep_equal,
    finite,
    finite_arg,
    is_function,
    is_number,
)

if sys.version_info < (3, 12):
    plain_sum = sum  # left to right in doubles, as JavaScript adds
else:
    def plain_sum(arr: Any) -> Any:
        """Left to right in doubles: from 3.12, sum() compensates float rounding,
        and JavaScript, whose results the reference suite holds, does not."""
        total: Any = 0
        for v in arr:
            total += v
        return total


def fsum(arr: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    try:
        total = plain_sum(arr)
    except OverflowError:
        total = math.inf
    if type(total) is float:
        return finite(total, "$sum of these numbers")
    return checked_int(total, "the $sum of these numbers would have")


def count(arr: Any) -> Any:
    return 0 if arr is UNDEFINED else len(arr)


def fmax(arr: Any) -> Any:
    return UNDEFINED if arr is UNDEFINED or not arr else finite_arg(max(arr), "max")


def fmin(arr: Any) -> Any:
    return UNDEFINED if arr is UNDEFINED or not arr else finite_arg(min(arr), "min")


def average(arr: Any) -> Any:
    if arr is UNDEFINED or not arr:
        return UNDEFINED
    try:
        mean = plain_sum(arr) / len(arr)
    except OverflowError:
        mean = math.inf
    return finite(mean, "$average of these numbers")


def exists(arg: Any) -> Any:
    return arg is not UNDEFINED


def fnot(arg: Any) -> Any:
    b = to_boolean(arg)
    return UNDEFINED if b is UNDEFINED else not b


def keys(arg: Any) -> Any:
    result = Seq()
    if isinstance(arg, list):
        merged: dict[str, bool] = {}
        for item in arg:
            for k in keys(item):
                merged[k] = True
        result.extend(merged)
    elif isinstance(arg, dict):
        result.extend(arg)
    return result


def lookup(arg: Any, key: Any) -> Any:
    return _lookup(arg, key)


def spread(arg: Any) -> Any:
    if isinstance(arg, list):
        result: Any = Seq()
        for item in arg:
            result = append(result, spread(item))
        return result
    if isinstance(arg, dict):
        return Seq({k: v} for k, v in arg.items())
    return arg


def merge(arr: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    out: dict[str, Any] = {}
    for obj in arr:
        out.update(obj)
    return out


def reverse(arr: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    if len(arr) <= 1:
        return arr
    return list(reversed(arr))


def shuffle(arr: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    if len(arr) <= 1:
        return arr
    out = list(arr)
    random.shuffle(out)
    return out


def distinct(arr: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    if not isinstance(arr, list) or len(arr) <= 1:
        return arr
    results: list[Any] = Seq() if type(arr) is Seq else []
    seen: set[tuple[type, Any]] = set()
    containers: list[Any] = []
    for v in arr:
        t = type(v)
        if isinstance(v, (dict, list)) or is_function(v):
            # unhashable: compared with the earlier containers only
            if any(deep_equal(v, r) for r in containers):
                continue
            containers.append(v)
        else:
            # numbers share one key space (1 = 1.0); booleans stay apart from them
            key = (int if t is float else t, v)
            if key in seen:
                continue
            seen.add(key)
        results.append(v)
    return results


def zip_(*arrays: Any) -> Any:
    n = min((len(a) if isinstance(a, list) else 0) for a in arrays)
    return [[a[i] for a in arrays] for i in range(n)]


def type_of(value: Any) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    if value is None:
        return "null"
    t = type(value)
    if t is bool:
        return "boolean"
    if is_number(value):
        return "number"
    if t is str:
        return "string"
    if isinstance(value, list):
        return "array"
    if is_function(value) or hasattr(value, "search"):
        return "function"
    return "object"


def error(message: Any = UNDEFINED) -> Any:
    raise JsonataError("D3137", value=message if message is not UNDEFINED
                       else "$error() function evaluated")


def fassert(condition: Any, message: Any = UNDEFINED) -> Any:
    if condition is False:
        raise JsonataError("D3141", value=message if message is not UNDEFINED
                           else "$assert() statement failed")
    return UNDEFINED


def clone(arg: Any) -> Any:
    return UNDEFINED if arg is UNDEFINED else copy.deepcopy(arg)


# higher-order functions ---------------------------------------------------------

def fmap(env: Frame, arr: Any, func: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    result = Seq()
    for i, v in enumerate(pace(arr, env.state)):
        res = call_hof(env, func, v, i, arr)
        if res is not UNDEFINED:
            result.append(res)
    return result


def ffilter(env: Frame, arr: Any, func: Any) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    result = Seq()
    for i, v in enumerate(pace(arr, env.state)):
        if to_boolean(call_hof(env, func, v, i, arr)):
            result.append(v)
    return result


def single(env: Frame, arr: Any, func: Any = UNDEFINED) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    found = False
    result: Any = UNDEFINED
    for i, v in enumerate(pace(arr, env.state)):
        ok = True
        if func is not UNDEFINED:
            ok = bool(to_boolean(call_hof(env, func, v, i, arr)))
        if ok:
            if found:
                raise JsonataError("D3138", index=i)
            result, found = v, True
    if not found:
        raise JsonataError("D3139")
    return result


def fold_left(env: Frame, seq: Any, func: Any, init: Any = UNDEFINED) -> Any:
    if seq is UNDEFINED:
        return UNDEFINED
    arity = arity_of(func)
    if arity < 2:
        raise JsonataError("D3050", index=2)
    if init is UNDEFINED and seq:
        result, index = seq[0], 1
    else:
        result, index = init, 0
    state = env.state
    while index < len(seq):
        state.budget -= 1
        if state.budget < 0:
            state.tick()
        args = [result, seq[index]]
        if arity >= 3:
            args.append(index)
        if arity >= 4:
            args.append(seq)
        result = apply_fn(func, args, None, env)
        index += 1
    return result


def sift(env: Frame, obj: Any, func: Any) -> Any:
    if obj is UNDEFINED:
        return UNDEFINED
    result = {k: v for k, v in pace(list(obj.items()), env.state)
              if to_boolean(call_hof(env, func, v, k, obj))}
    return result or UNDEFINED


def each(env: Frame, obj: Any, func: Any) -> Any:
    if obj is UNDEFINED:
        return UNDEFINED
    result = Seq()
    for k, v in pace(list(obj.items()), env.state):
        res = call_hof(env, func, v, k, obj)
        if res is not UNDEFINED:
            result.append(res)
    return result


def fsort(env: Frame, arr: Any, comparator: Any = UNDEFINED) -> Any:
    if arr is UNDEFINED:
        return UNDEFINED
    if len(arr) <= 1:
        return arr
    if comparator is UNDEFINED:
        if not (all(is_number(v) for v in arr) or all(isinstance(v, str) for v in arr)):
            raise JsonataError("D3070")
        return sorted(arr)

    def swap(a: Any, b: Any) -> bool:
        return bool(to_boolean(apply_fn(comparator, [a, b], None, env)))

    return _merge_sort(list(arr), swap)


def _merge_sort(items: list[Any], swap: Any) -> list[Any]:
    # the reference merge sort, so that inconsistent comparators give the same order
    if len(items) <= 1:
        return items
    mid = len(items) // 2
    left = _merge_sort(items[:mid], swap)
    right = _merge_sort(items[mid:], swap)
    out: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if swap(left[i], right[j]):
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


__all__ = ["cmp_to_key"]
