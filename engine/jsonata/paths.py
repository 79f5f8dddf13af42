"""Compilation of location paths: steps, predicates (filters), tuple streams
for the ``@`` / ``#`` / ``%`` operators, order-by and group-by.

Semantics follow the reference evaluator step for step (sequence flattening,
singleton collapse, the "last step returns the array itself" rule); the code
is specialised at compile time so the common case - plain field names on
dicts - runs as a tight loop without the generic machinery.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cmp_to_key
from typing import TYPE_CHECKING, Any

from .errors import JsonataError
from .functions_core import to_boolean
from .runtime import Frame, pace
from .values import UNDEFINED, ConsArray, Seq, append, collapse, is_number

if TYPE_CHECKING:
    from .compiler import Compiler

Fn = Callable[[Any, Frame], Any]


def lookup(inp: Any, key: str) -> Any:
    """Field access with implicit mapping over arrays."""
    if isinstance(inp, dict):
        return inp.get(key, UNDEFINED)
    if isinstance(inp, list):
        out = Seq()
        for item in inp:
            v = lookup(item, key)
            if v is UNDEFINED:
                continue
            if isinstance(v, list):
                out.extend(v)
            else:
                out.append(v)
        return out
    return UNDEFINED


def tuple_frame(env: Frame, tup: dict[str, Any]) -> Frame:
    return Frame(env, env.state, dict(tup))


def compile_filter(c: Compiler, pred: Any) -> Callable[[Any, Frame], Seq]:
    """A predicate ``[expr]``: returns the filtered sequence."""
    if pred.type == "number":
        want = math.floor(pred.value)

        def index_filter(inp: Any, env: Frame) -> Any:
            results = Seq()
            if type(inp) is Seq and inp.tuple_stream:
                results.tuple_stream = True
            if not isinstance(inp, list):
                inp = [inp]
            i = want + len(inp) if want < 0 else want
            if 0 <= i < len(inp):
                item = inp[i]
                if item is UNDEFINED:
                    return results
                if isinstance(item, list):
                    return item
                results.append(item)
            return results

        return index_filter
    expr = c.compile(pred)

    def filt(inp: Any, env: Frame) -> Any:
        results = Seq()
        tuples = type(inp) is Seq and inp.tuple_stream
        if tuples:
            results.tuple_stream = True
        if not isinstance(inp, list):
            inp = [inp]
        n = len(inp)
        for index, item in enumerate(pace(inp, env.state)):
            res = expr(item["@"], tuple_frame(env, item)) if tuples else expr(item, env)
            if is_number(res):
                res = [res]
            if isinstance(res, list) and res and all(is_number(v) for v in res):
                for r in res:
                    ii = math.floor(r)
                    if ii < 0:
                        ii += n
                    if ii == index:
                        results.append(item)
            elif isinstance(res, list) and not res:
                continue
            elif to_boolean(res):
                results.append(item)
        return results

    return filt


def _sort_key_error(aa: Any, bb: Any, position: int) -> None:
    bad = aa if not (isinstance(aa, str) or is_number(aa)) else bb
    raise JsonataError("T2008", position=position, value=bad)


def compile_sort(c: Compiler, node: Any) -> Callable[[Any, Frame], Any]:
    terms = [(c.compile(t.expression), bool(t.descending)) for t in node.terms]
    position = node.position

    def compare(a: list[Any], b: list[Any]) -> int:
        for i, (_, desc) in enumerate(terms):
            aa, bb = a[i], b[i]
            if aa is UNDEFINED:
                comp = 0 if bb is UNDEFINED else 1
                if comp:
                    return comp
                continue
            if bb is UNDEFINED:
                return -1
            a_ok = isinstance(aa, str) or is_number(aa)
            b_ok = isinstance(bb, str) or is_number(bb)
            if not a_ok or not b_ok:
                _sort_key_error(aa, bb, position)
            if isinstance(aa, str) != isinstance(bb, str):
                raise JsonataError("T2007", position=position, value=aa, value2=bb)
            if aa == bb:
                continue
            comp = -1 if aa < bb else 1
            return -comp if desc else comp
        return 0

    def sort(inp: Any, env: Frame) -> Any:
        tuples = type(inp) is Seq and inp.tuple_stream
        if not isinstance(inp, list):
            inp = [inp]
        keyed: list[tuple[list[Any], Any]] = []
        for item in pace(inp, env.state):
            if tuples:
                ctx, fenv = item["@"], tuple_frame(env, item)
            else:
                ctx, fenv = item, env
            keyed.append(([f(ctx, fenv) for f, _ in terms], item))
        def by_keys(x: tuple[list[Any], Any], y: tuple[list[Any], Any]) -> int:
            return compare(x[0], y[0])

        keyed.sort(key=cmp_to_key(by_keys))
        out = Seq(item for _, item in keyed)
        out.tuple_stream = tuples
        return out

    return sort


def compile_group(c: Compiler, group: Any) -> Callable[[Any, Frame], Any]:
    pairs = [(c.compile(k), c.compile(v)) for k, v in group.lhs_object]
    position = group.position
    const_keys = [k.value if k.type == "string" else None for k, _ in group.lhs_object]
    simple = all(k is not None for k in const_keys) and len(set(const_keys)) == len(const_keys)

    def build_single(inp: Any, env: Frame) -> dict[str, Any]:
        # one context item, literal distinct keys: the overwhelmingly common shape
        out: dict[str, Any] = {}
        for key, (_, vf) in zip(const_keys, pairs, strict=True):
            v = vf(inp, env)
            if v is not UNDEFINED:
                out[key] = v  # type: ignore[index]
        return out

    def build(inp: Any, env: Frame) -> dict[str, Any]:
        if simple and not isinstance(inp, list):
            return build_single(inp, env)
        reduce = type(inp) is Seq and inp.tuple_stream
        if not isinstance(inp, list):
            inp = [inp]
        if not inp:
            inp = [UNDEFINED]
        groups: dict[str, list[Any]] = {}
        for item in pace(inp, env.state):
            if reduce and item is not UNDEFINED:
                fenv, ctx = tuple_frame(env, item), item["@"]
            else:
                fenv, ctx = env, item
            for idx, (kf, _) in enumerate(pairs):
                key = kf(ctx, fenv)
                if key is UNDEFINED:
                    continue
                if not isinstance(key, str):
                    raise JsonataError("T1003", position=position, value=key)
                entry = groups.get(key)
                if entry is None:
                    groups[key] = [item, idx]
                elif entry[1] != idx:
                    raise JsonataError("D1009", position=position, value=key)
                else:
                    _add_to_group(entry, item)
        out: dict[str, Any] = {}
        for key, (data, idx, *_) in groups.items():
            if reduce:
                tup = _reduce_tuples(data)
                ctx = tup.pop("@")
                v = pairs[idx][1](ctx, tuple_frame(env, tup))
            else:
                v = pairs[idx][1](data, env)
            if v is not UNDEFINED:
                out[key] = v
        return out

    return build


def _add_to_group(entry: list[Any], item: Any) -> None:
    """``entry[0] = append(entry[0], item)`` without copying the group each time
    (that made grouping n items under one key quadratic); the first member is
    copied once, never extended in place, as it may be the input's own list."""
    if len(entry) == 2:
        first = entry[0]
        entry.append(True)
        entry[0] = list(first) if isinstance(first, list) else [first]
    if isinstance(item, list):
        entry[0].extend(item)
    else:
        entry[0].append(item)


def _reduce_tuples(stream: Any) -> dict[str, Any]:
    if not isinstance(stream, list):
        return dict(stream)
    result = dict(stream[0])
    for tup in stream[1:]:
        for k, v in tup.items():
            result[k] = append(result.get(k, UNDEFINED), v)
    return result


class _Step:
    __slots__ = ("ancestor", "fn", "focus", "index", "is_sort", "stages", "tuple")

    def __init__(self, c: Compiler, node: Any) -> None:
        self.is_sort = node.type == "sort"
        self.fn = compile_sort(c, node) if self.is_sort else c.compile(node)
        self.stages: list[tuple[str, Any]] = []
        for st in node.stages or []:
            if st.type == "index":
                self.stages.append(("index", st.value))
            else:
                self.stages.append(("filter", compile_filter(c, st.expr)))
        self.focus = node.focus
        self.index = node.index
        self.tuple = bool(node.tuple)
        self.ancestor = node.ancestor.label if node.ancestor is not None else None

    def run_stages(self, result: Any, env: Frame) -> Any:
        for kind, arg in self.stages:
            if kind == "filter":
                result = arg(result, env)
            else:
                for i, tup in enumerate(result):
                    tup[arg] = i
        return result


def _flatten_into(out: Seq, res: Any) -> None:
    if isinstance(res, list) and type(res) is not ConsArray:
        out.extend(res)
    else:
        out.append(res)


def _eval_step(step: _Step, seq: list[Any], env: Frame, last: bool) -> Any:
    if step.is_sort:
        result = step.fn(seq, env)
        return step.run_stages(result, env) if step.stages else result
    fn = step.fn
    results = []
    for item in pace(seq, env.state):
        res = fn(item, env)
        if step.stages:
            res = step.run_stages(res, env)
        if res is not UNDEFINED:
            results.append(res)
    if last and len(results) == 1 and isinstance(results[0], list) and type(results[0]) is not Seq:
        return results[0]
    out = Seq()
    for res in results:
        _flatten_into(out, res)
    return out


def _eval_tuple_step(step: _Step, seq: list[Any], tuples: Seq | None, env: Frame) -> Seq:
    if step.is_sort:
        if tuples is not None:
            result = step.fn(tuples, env)
        else:
            result = Seq()
            result.tuple_stream = True
            for i, v in enumerate(step.fn(seq, env)):
                tup = {"@": v}
                if step.index:
                    tup[step.index] = i
                result.append(tup)
        return step.run_stages(result, env) if step.stages else result
    result = Seq()
    result.tuple_stream = True
    if tuples is None:
        tuples = Seq({"@": item} for item in seq)
    for tup in pace(tuples, env.state):
        res = step.fn(tup["@"], tuple_frame(env, tup))
        if res is UNDEFINED:
            continue
        is_stream = type(res) is Seq and res.tuple_stream
        if not isinstance(res, list):
            res = [res]
        for bb, val in enumerate(res):
            new = dict(tup)
            if is_stream:
                new.update(val)
            else:
                if step.focus:
                    new[step.focus] = val
                else:
                    new["@"] = val
                if step.index:
                    new[step.index] = bb
                if step.ancestor:
                    new[step.ancestor] = tup["@"]
            result.append(new)
    if step.stages:
        result = step.run_stages(result, env)
    return result


def compile_path(c: Compiler, node: Any) -> tuple[Fn, bool]:
    """Compile a path; the flag says whether its result is already collapsed."""
    steps = [_Step(c, s) for s in node.steps]
    first_is_var = node.steps[0].type == "variable"
    first_cons = bool(node.steps[0].consarray)
    keep_singleton = bool(node.keep_singleton_array)
    path_tuple = bool(node.tuple)
    group = compile_group(c, node.group) if node.group is not None else None
    nsteps = len(steps)
    any_tuple = any(s.tuple for s in steps)

    names = _plain_names(node)
    if names is not None and not keep_singleton and group is None:
        return _fast_names(names), True

    def path(inp: Any, env: Frame) -> Any:
        seq = inp if isinstance(inp, list) and not first_is_var else Seq([inp])
        result: Any = None
        tuples: Seq | None = None
        is_tuple = False
        for i, step in enumerate(steps):
            if step.tuple:
                is_tuple = True
            if i == 0 and first_cons:
                result = step.fn(seq, env)
            elif is_tuple:
                tuples = _eval_tuple_step(step, seq, tuples, env)
            else:
                result = _eval_step(step, seq, env, i == nsteps - 1)
            if not is_tuple and (result is UNDEFINED or (isinstance(result, list) and not result)):
                break
            if not step.focus:
                seq = result
        if is_tuple:
            result = tuples if path_tuple else Seq(t["@"] for t in tuples or ())
        if keep_singleton:
            if type(result) is ConsArray:
                result = Seq([result])
            if type(result) is Seq:
                result.keep_singleton = True
        if group is not None:
            result = group(tuples if is_tuple else result, env)
        return result

    del any_tuple
    return path, False


def _plain_names(node: Any) -> list[str] | None:
    names = []
    for s in node.steps:
        if (s.type != "name" or s.predicate or s.stages or s.group is not None or s.focus
                or s.index or s.tuple or s.keep_array or s.ancestor is not None):
            return None
        names.append(s.value)
    if node.tuple:
        return None
    return names


def _fast_names(names: list[str]) -> Fn:
    """``a.b.c`` over plain data: same result as the generic path, no frames or tuples."""
    generic = _names_over_sequences(names)

    def path(inp: Any, env: Frame) -> Any:
        # nested objects all the way down: plain dict lookups
        cur = inp
        for key in names:
            if type(cur) is not dict:
                return generic(inp, env)
            cur = cur.get(key, UNDEFINED)
        return collapse(cur) if type(cur) is Seq else cur

    return path


def _names_over_sequences(names: list[str]) -> Fn:
    last_i = len(names) - 1

    def path(inp: Any, env: Frame) -> Any:
        seq = inp if isinstance(inp, list) else (inp,)
        result: Any = UNDEFINED
        for i, key in enumerate(names):
            if len(seq) == 1 and type(seq[0]) is dict:
                res = seq[0].get(key, UNDEFINED)
                if res is UNDEFINED:
                    return UNDEFINED
                if type(res) is Seq:
                    res = collapse(res)
                if i == last_i:
                    return res
                seq = res if isinstance(res, list) and type(res) is not ConsArray else (res,)
                if not seq:
                    return UNDEFINED
                continue
            results = []
            for item in pace(seq, env.state):
                if type(item) is dict:  # the usual array of objects
                    res = item.get(key, UNDEFINED)
                    if type(res) is Seq:
                        res = collapse(res)
                else:
                    res = collapse(lookup(item, key))
                if res is not UNDEFINED:
                    results.append(res)
            if i == last_i and len(results) == 1 and isinstance(results[0], list) \
                    and type(results[0]) is not Seq:
                return results[0]
            out = Seq()
            for res in results:
                _flatten_into(out, res)
            if not out:
                return UNDEFINED
            result = out
            seq = out
        return collapse(result)

    return path
