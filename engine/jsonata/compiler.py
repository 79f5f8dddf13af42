"""Compiler from the JSONata AST to Python closures.

Each AST node becomes a closure ``fn(input, env)``; all dispatch on node
type, operator and constant operands happens once, at compile time.  Paths,
filters, sorting and grouping live in ``paths.py``; operators in
``operators.py``; the function library in ``functions_*.py``.

Recursion bounds mirror the reference evaluator's depth count without paying
for it on every node: every function-call site knows its static nesting depth
inside the enclosing function body, so the run-time depth of each call is
``depth of the caller's body + static depth`` and is checked only there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from . import codegen
from .errors import JsonataError
from .functions import ROOT
from .functions_core import to_boolean
from .operators import compile_binary, compile_unary
from .parse import COALESCE, DEFAULT
from .paths import compile_filter, compile_group, compile_path, compile_sort, lookup
from .runtime import (
    PLACEHOLDER,
    Builtin,
    Frame,
    Lambda,
    Partial,
    Thunk,
    apply_at_depth,
    apply_fn,
    mark_error,
)
from .signature import Signature
from .values import UNDEFINED, Seq, collapse, float_overflow, is_function

Fn = Callable[[Any, Frame], Any]

# node types whose results may be sequences needing the singleton collapse
# (function calls, paths and variables collapse inline; block and condition
# results are already collapsed by their sub-expressions)
_SEQUENCE_TYPES = {"apply", "wildcard", "descendant", "parent", "name", "partial"}


class Compiler:
    def __init__(self, source: str = "", root: Any = None) -> None:
        self.depth = 0
        self.source = source
        # names the expression itself may rebind (`:=`, lambda parameters); a
        # library function whose name is not among them resolves statically
        self.may_bind = ":=" in source or not source
        # $eval may assign in the caller's frame at run time: no static names then
        self.bound = bound_names(root, source) \
            if root is not None and "$eval" not in source else None
        self.codegen = True  # off while building the closures behind generated code
        # codegen.py's answers about nodes of this expression, by id(node): the
        # tree outlives the compilation, so ids are not reused meanwhile
        self.generated_shapes: dict[int, bool] = {}
        self.cse_keys: dict[int, Any] = {}

    def binds(self, node: Any) -> bool:
        """Conservatively: does any `:=` occur anywhere below ``node``?"""
        return self.may_bind and _binds(node)

    def static_builtin(self, name: str) -> bool:
        """Whether ``$name`` is the library function unless a binding says otherwise."""
        return self.bound is not None and name not in self.bound and name in ROOT.vars

    def compile(self, node: Any, generate: bool = True) -> Fn:
        """``node`` as a function of (input, frame); ``generate=False`` builds
        the closure even where codegen.py would write Python source."""
        if generate and self.codegen and codegen.worth_generating(self, node):
            return codegen.generate(self, node)
        self.depth += 1
        try:
            fn = self._compile_core(node)
            if node.predicate:
                fn = self._with_predicates(fn, node.predicate)
            if node.type != "path" and node.group is not None:
                group = compile_group(self, node.group)
                inner = fn

                def fn(inp: Any, env: Frame) -> Any:
                    return group(inner(inp, env), env)

            if node.type in _SEQUENCE_TYPES or node.predicate or node.keep_array:
                fn = _collapsing(fn, bool(node.keep_array))
            return fn
        finally:
            self.depth -= 1

    def _with_predicates(self, fn: Fn, preds: list[Any]) -> Fn:
        filters = [compile_filter(self, p.expr) for p in preds]

        def filtered(inp: Any, env: Frame) -> Any:
            result = fn(inp, env)
            for f in filters:
                result = f(result, env)
            return result

        return filtered

    def _compile_core(self, node: Any) -> Fn:
        t = node.type
        method = getattr(self, "_c_" + t, None)
        if method is None:
            raise JsonataError("S0206", position=node.position, token=t)
        return method(node)

    # literals -----------------------------------------------------------
    def _c_string(self, node: Any) -> Fn:
        v = node.value
        if any("\ud800" <= ch <= "\udfff" for ch in v):
            # the tokenizer decodes \uD834\uDD1E as two halves; join the pair
            v = v.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return _const(v)

    def _c_number(self, node: Any) -> Fn:
        v = node.value
        if type(v) is int and abs(v) >= 2**53:
            v = float(v)
        return _const(v)

    def _c_value(self, node: Any) -> Fn:
        return _const(node.value)

    def _c_regex(self, node: Any) -> Fn:
        return _const(node.value)

    # names and variables ------------------------------------------------
    def _c_name(self, node: Any) -> Fn:
        key = node.value

        def name(inp: Any, env: Frame) -> Any:
            if type(inp) is dict:
                return inp.get(key, UNDEFINED)
            return lookup(inp, key)

        return name

    def _c_variable(self, node: Any) -> Fn:
        name = node.value
        if name == "":
            def context(inp: Any, env: Frame) -> Any:
                if type(inp) is Seq and inp.outer_wrapper:
                    return inp[0]
                return inp
            return context

        def variable(inp: Any, env: Frame) -> Any:
            v = env.lookup(name)
            return collapse(v) if type(v) is Seq else v

        if _outer_collapse(node):
            def variable_raw(inp: Any, env: Frame) -> Any:
                return env.lookup(name)
            return variable_raw
        return variable

    def _c_wildcard(self, node: Any) -> Fn:
        def wildcard(inp: Any, env: Frame) -> Any:
            results = Seq()
            if type(inp) is Seq and inp.outer_wrapper and inp:
                inp = inp[0]
            if isinstance(inp, (dict, list)):
                for v in (inp.values() if isinstance(inp, dict) else inp):
                    if isinstance(v, list):
                        results.extend(_flatten(v, []))
                    else:
                        results.append(v)
            return results
        return wildcard

    def _c_descendant(self, node: Any) -> Fn:
        def descendant(inp: Any, env: Frame) -> Any:
            if inp is UNDEFINED:
                return UNDEFINED
            out = Seq()
            _descend(inp, out)
            return out[0] if len(out) == 1 else out
        return descendant

    def _c_parent(self, node: Any) -> Fn:
        label = node.slot.label

        def parent(inp: Any, env: Frame) -> Any:
            return env.lookup(label)
        return parent

    def _c_path(self, node: Any) -> Fn:
        fn, collapsed = compile_path(self, node)
        if collapsed or _outer_collapse(node):
            return fn  # already collapsed (fast path) or collapsed by the caller

        def path(inp: Any, env: Frame) -> Any:
            r = fn(inp, env)
            return collapse(r) if type(r) is Seq else r
        return path

    def _c_sort(self, node: Any) -> Fn:
        return compile_sort(self, node)

    # operators ----------------------------------------------------------
    def _c_binary(self, node: Any) -> Fn:
        return compile_binary(self, node)

    def _c_unary(self, node: Any) -> Fn:
        return compile_unary(self, node)

    def _c_condition(self, node: Any) -> Fn:
        marker = node.then.value if node.then is not None else None
        if marker is DEFAULT or marker is COALESCE:
            return self._default(node, marker is COALESCE)
        cond = self.compile(node.condition)
        then = self.compile(node.then)
        other = self.compile(node._else) if node._else is not None else None

        def condition(inp: Any, env: Frame) -> Any:
            if to_boolean(cond(inp, env)):
                return then(inp, env)
            return other(inp, env) if other is not None else UNDEFINED
        return condition

    def _default(self, node: Any, coalesce: bool) -> Fn:
        # `a ?: b` (a if truthy) and `a ?? b` (a if defined), a evaluated once
        left = self.compile(node.condition.arguments[0] if coalesce else node.condition)
        other = self.compile(node._else)

        def default(inp: Any, env: Frame) -> Any:
            v = left(inp, env)
            if (v is not UNDEFINED) if coalesce else to_boolean(v):
                return v
            return other(inp, env)
        return default

    def _c_block(self, node: Any) -> Fn:
        exprs = [self.compile(e) for e in node.expressions]
        if len(exprs) == 1 and not self.binds(node):
            # `(expr)` without assignments needs no scope of its own
            return exprs[0]

        def block(inp: Any, env: Frame) -> Any:
            frame = Frame(env, env.state)
            result = UNDEFINED
            for e in exprs:
                result = e(inp, frame)
            return result
        return block

    def _c_bind(self, node: Any) -> Fn:
        if node.lhs.type != "variable":
            raise JsonataError("D2005", position=node.position, token=node.value)
        name = node.lhs.value
        rhs = self.compile(node.rhs)

        def bind(inp: Any, env: Frame) -> Any:
            value = rhs(inp, env)
            env.vars[name] = value
            return value
        return bind

    def _c_operator(self, node: Any) -> Fn:
        raise JsonataError("S0201", position=node.position, token=node.value)

    def _c_error(self, node: Any) -> Fn:
        err = node.error
        raise JsonataError(err.error if err is not None else "S0500", position=node.position)

    # functions ----------------------------------------------------------
    def _c_lambda(self, node: Any) -> Fn:
        if node.thunk:
            return self._thunk(node)
        params = [a.value for a in node.arguments]
        sig = None
        if node.signature is not None:
            sig = Signature(_raw_signature(self.source, node.position))
        saved = self.depth
        self.depth = 0
        try:
            body = self.compile(node.body)
        finally:
            self.depth = saved

        def make_lambda(inp: Any, env: Frame) -> Any:
            return Lambda(params, body, env, inp, sig)
        return make_lambda

    def _thunk(self, node: Any) -> Fn:
        call = node.body
        proc = self.compile(call.procedure)
        args = [self.compile(a) for a in call.arguments]
        position = call.position
        token = _proc_name(call)

        def thunk(inp: Any, env: Frame) -> Any:
            return Thunk(proc, args, inp, env, position, token)
        return thunk

    def _c_function(self, node: Any) -> Fn:
        return self._call(node, None)

    def _call(self, node: Any, applied: Fn | None) -> Fn:
        proc = self.compile(node.procedure)
        args = [self.compile(a) for a in node.arguments]
        static_depth = self.depth
        position = node.position
        token = _proc_name(node)
        hint = node.procedure.steps[0].value if node.procedure.type == "path" else None
        if node.procedure.type == "variable" and node.procedure.value in ROOT.vars \
                and not node.procedure.predicate and not node.procedure.keep_array:
            direct = self._direct_builtin(node, args, applied, ROOT.vars[node.procedure.value])
        else:
            direct = None

        def call(inp: Any, env: Frame) -> Any:
            fn = proc(inp, env)
            if fn is UNDEFINED and hint is not None and env.lookup(hint) is not UNDEFINED:
                raise JsonataError("T1005", position=position, token=hint)
            vals = [a(inp, env) for a in args]
            if applied is not None:
                vals.insert(0, applied(inp, env))
            return apply_at_depth(fn, vals, inp, env, static_depth, position, token)

        if _outer_collapse(node):
            if direct is None:
                return call
            builtin_ = ROOT.vars[node.procedure.value]
            name_ = node.procedure.value

            def call_raw(inp: Any, env: Frame) -> Any:
                return direct(inp, env) if env.lookup(name_) is builtin_ else call(inp, env)
            return call_raw

        if direct is None:
            def call_collapsed(inp: Any, env: Frame) -> Any:
                r = call(inp, env)
                return collapse(r) if type(r) is Seq else r
            return call_collapsed

        name = node.procedure.value
        builtin = ROOT.vars[name]
        if self.static_builtin(name):
            def call_static(inp: Any, env: Frame) -> Any:
                r = call(inp, env) if env.state.shadow else direct(inp, env)
                return collapse(r) if type(r) is Seq else r
            return call_static

        def call_builtin(inp: Any, env: Frame) -> Any:
            # the name still refers to the library function unless rebound
            r = direct(inp, env) if env.lookup(name) is builtin else call(inp, env)
            return collapse(r) if type(r) is Seq else r
        return call_builtin

    def _direct_builtin(self, node: Any, args: list[Fn], applied: Fn | None,
                        builtin: Builtin) -> Fn | None:
        """Call a library function without the generic apply machinery."""
        if builtin.needs_env:
            return None
        impl, sig = builtin.impl, builtin.signature
        position, name = node.position, builtin.name

        def direct(inp: Any, env: Frame) -> Any:
            vals = [a(inp, env) for a in args]
            if applied is not None:
                vals.insert(0, applied(inp, env))
            try:
                if sig is not None:
                    vals = sig.validate(vals, inp)
                return impl(*vals)
            except JsonataError as err:
                mark_error(err, position, name)
                raise
            except OverflowError:  # an integer argument made a float ($formatNumber)
                raise float_overflow(position, name) from None
        return direct

    def _c_partial(self, node: Any) -> Fn:
        proc = self.compile(node.procedure)
        args: list[Fn | None] = [
            None if (a.type == "operator" and a.value == "?") else self.compile(a)
            for a in node.arguments]
        position = node.position
        token = _proc_name(node)

        def partial(inp: Any, env: Frame) -> Any:
            template = [PLACEHOLDER if a is None else a(inp, env) for a in args]
            fn = proc(inp, env)
            if not is_function(fn) and not hasattr(fn, "search"):
                code = "T1008"
                if fn is UNDEFINED and node.procedure.type == "path" \
                        and env.lookup(node.procedure.steps[0].value) is not UNDEFINED:
                    code = "T1007"
                raise JsonataError(code, position=position, token=token)
            return Partial(fn, template, env)
        return partial

    def _c_apply(self, node: Any) -> Fn:
        lhs = self.compile(node.lhs)
        if node.rhs.type == "function":
            return self._call(node.rhs, lhs)
        rhs = self.compile(node.rhs)
        position = node.position

        def apply(inp: Any, env: Frame) -> Any:
            value = lhs(inp, env)
            fn = rhs(inp, env)
            if not is_function(fn) and not hasattr(fn, "search"):
                raise JsonataError("T2006", position=position, value=fn)
            if is_function(value):
                from .runtime import Chain
                return Chain(value, fn)
            return apply_fn(fn, [value], None, env)
        return apply

    def _c_transform(self, node: Any) -> Fn:
        from .transform import compile_transform
        return compile_transform(self, node)


def _raw_signature(source: str, position: int) -> str:
    # The parser keeps only a derived regex; recover the `<...>` text that
    # follows the parameter list of the lambda whose `(` ends at `position`.
    i = source.index(")", position) + 1
    while source[i] != "<":
        i += 1
    depth, j = 0, i
    while j < len(source):
        if source[j] == "<":
            depth += 1
        elif source[j] == ">":
            depth -= 1
            if depth == 0:
                break
        j += 1
    return source[i:j + 1]


_CHILD = ("lhs", "rhs", "condition", "then", "_else", "expression", "body", "procedure",
          "pattern", "update", "delete", "group", "expr")
_CHILDREN = ("expressions", "arguments", "steps", "predicate", "stages", "terms")


def _walk(node: Any, seen: set[int]) -> Iterator[Any]:
    """Every AST node below ``node`` (each once), without recursion."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen or not hasattr(n, "type"):
            continue
        seen.add(id(n))
        yield n
        d = n.__dict__
        stack.extend(d.get(a) for a in _CHILD)
        for a in _CHILDREN:
            stack.extend(d.get(a) or ())
        for pair in d.get("lhs_object") or ():
            stack.extend(pair)


def _binds(node: Any) -> bool:
    """Conservatively: does any `:=` occur anywhere below ``node``? (Asked
    several times per node while compiling, so the answer is kept on it.)"""
    known = node.__dict__.get("_flowrun_binds")
    if known is None:
        known = node.__dict__["_flowrun_binds"] = any(
            n.type == "bind" for n in _walk(node, set()))
    return bool(known)


_LAMBDA_PARAMS = re.compile(r"(?:function|\u03bb)\s*\(([^)]*)\)")
_PLAIN_PARAMS = re.compile(r"[\s,$\w]*")


def bound_names(root: Any, source: str = "") -> set[str]:
    """Variable names assigned or taken as parameters anywhere in the expression.

    Without `:=` in the text only lambda parameters can bind, and their
    lists are read off the text (walking the tree costs more than the rest
    of compiling a mapping); anything unusual there walks the tree."""
    if source and ":=" not in source:
        found: set[str] = set()
        for m in _LAMBDA_PARAMS.finditer(source):
            if not _PLAIN_PARAMS.fullmatch(m.group(1)):
                return _walk_names(root)
            found.update(re.findall(r"\$(\w+)", m.group(1)))
        return found
    return _walk_names(root)


def _walk_names(root: Any) -> set[str]:
    names: set[str] = set()
    for n in _walk(root, set()):
        if n.type == "bind" and getattr(n.lhs, "type", None) == "variable":
            names.add(n.lhs.value)
        elif n.type == "lambda":
            names.update(a.value for a in n.arguments or ())
    return names


def _outer_collapse(node: Any) -> bool:
    """True when Compiler.compile wraps this node with the collapse step, so
    the node itself must hand back its raw sequence."""
    return bool(node.predicate or node.keep_array)


def _proc_name(node: Any) -> Any:
    p = node.procedure
    if p is None:
        return None
    if p.type == "path" and p.steps:
        return p.steps[0].value
    return p.value


def _const(value: Any) -> Fn:
    def const(inp: Any, env: Frame) -> Any:
        return value
    return const


def _collapsing(fn: Fn, keep_array: bool) -> Fn:
    if keep_array:
        def keep(inp: Any, env: Frame) -> Any:
            return collapse(fn(inp, env), True)
        return keep

    def collapsed(inp: Any, env: Frame) -> Any:
        r = fn(inp, env)
        if type(r) is Seq:
            return collapse(r)
        return r
    return collapsed


def _flatten(arg: Any, out: list[Any]) -> list[Any]:
    if isinstance(arg, list):
        for item in arg:
            _flatten(item, out)
    else:
        out.append(arg)
    return out


def _descend(inp: Any, out: list[Any]) -> None:
    if isinstance(inp, list):
        for m in inp:
            _descend(m, out)
        return
    out.append(inp)
    if isinstance(inp, dict):
        for v in inp.values():
            _descend(v, out)


__all__ = ["Builtin", "Compiler"]
