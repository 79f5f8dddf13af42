"""Python source generation for the hot shapes of JSONata.

Closures cost a Python call per AST node; a mapping of thirty fields is a
few hundred calls per record.  For the shapes mappings are made of - object
constructors with literal keys, paths of plain steps, library calls whose
arguments have the expected types, arithmetic, comparisons, conditions,
string concatenation - this module writes one Python function per
expression tree, with the JSONata semantics inlined as straight-line code:
field access is ``d.get(key)`` behind a type test, a library call whose
arguments already have the signature's types goes straight to its
implementation, arithmetic on two numbers is one Python operation.

Every fast path is guarded, and anything unusual (a value of another type, a
shadowed function name, a node kind not generated here) runs the ordinary
closure for that node, so results and errors are those of ``compiler.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .functions import ROOT
from .gen_runtime import Deferred, namespace
from .limits import MAX_STRING
from .operators import binary_function
from .parse import COALESCE, DEFAULT
from .runtime import Builtin, Frame
from .values import MAX_EXACT, UNDEFINED

if TYPE_CHECKING:
    from .compiler import Compiler

Fn = Callable[[Any, Frame], Any]

_ROOTS = {"unary", "path", "function", "binary", "condition", "block"}
_ARITH = {"+", "-", "*"}
_ORDER = {"<", "<=", ">", ">="}
_NUMBER_TEST = "type({v}) in _NUM"
_TYPE_TESTS = {"s": "type({v}) is str", "n": _NUMBER_TEST, "b": "type({v}) is bool"}
_TYPE_OF: dict[str, Callable[[Any], bool]] = {
    "s": lambda v: type(v) is str, "n": lambda v: type(v) is int or type(v) is float,
    "b": lambda v: type(v) is bool}


def worth_generating(c: Compiler, node: Any) -> bool:
    """Whether ``node`` is a shape generated here, big enough to be worth a function."""
    return node.type in _ROOTS and _generated(c, node)


def generate(c: Compiler, node: Any, exported: bool = False) -> Fn:
    """One Python function for ``node``. *exported*: it returns the result in
    exported form (plain JSON containers sharing nothing with the input, as
    :func:`~.values.export` makes it), built that way as it goes, so that the
    evaluation needs no copy of its result afterwards."""
    gen = _Gen(c)
    gen.indent = 2
    result = gen.expr_out(node, "inp") if exported else gen.expr(node, "inp")
    if exported:
        # a number that is not finite went into the result: fail now that the
        # result is complete, as export() of the closures' result fails
        gen.emit("if _st.pending is not None: raise _st.pending")
    gen.emit(f"return {result}")
    gen.settle_memos()
    # the globals read most often, made locals (a local read is the cheapest)
    fast = ", ".join(f"{name}={name}" for name in _FAST_NAMES)
    head = [f"def _generated(inp, env, {fast}):", "    _st = env.state"]
    if gen.uses_memo:
        head.append("    _nm = {}  # $number's results by string, for this evaluation")
    if gen.uses_builtins:
        # a binding or $eval rebound a library name: the closures look names up
        gen.ns["_whole"] = Deferred(c, node, c.depth)
        whole = "_ex(_whole(inp, env), _st)" if exported else "_whole(inp, env)"
        head.append(f"    if _st.shadow: return {whole}")
    head.append("    try:")
    tail = ["    except _JErr as err:",
            "        _mark_line(err, _sites)",
            "        raise",
            "    except OverflowError:",
            f"        raise _overflow({node.position!r}) from None",
            "    except ValueError as err:",  # str() of an integer over Python's limit
            "        raise _int_text(err) from None"]
    # an error raised inside a library call is marked by the line it came through
    gen.ns["_sites"] = {len(head) + i + 1: site for i, site in gen.sites.items()}
    source = "\n".join(head + gen.lines + tail) + "\n"
    exec(compile(source, f"<jsonata {node.type} at {node.position}>", "exec"), gen.ns)
    fn: Fn = gen.ns["_generated"]
    return fn


def _plain(node: Any) -> bool:
    """No predicate, grouping or array flag: the node's value is its core value."""
    return not (node.predicate or node.keep_array or node.group is not None or node.stages)


def _generated(c: Compiler, node: Any) -> bool:
    """Whether ``node`` is a shape written out here (asked many times of each
    node while one expression is generated: answered once)."""
    known = c.generated_shapes.get(id(node))
    if known is None:
        known = c.generated_shapes[id(node)] = _shape_generated(c, node)
    return known


def _shape_generated(c: Compiler, node: Any) -> bool:
    if not _plain(node):
        return False
    t = node.type
    if t == "unary":
        return node.value == "{" and _literal_keys(node) is not None
    if t == "path":
        return _simple_path(node)
    if t == "function":
        proc = node.procedure
        return proc.type == "variable" and _plain(proc) and c.static_builtin(proc.value)
    if t == "binary":
        return node.value in _ARITH or node.value in _ORDER or node.value in (
            "/", "%", "=", "!=", "&", "and", "or", "in")
    if t == "condition":
        marker = node.then.value if node.then is not None else None
        return marker is not DEFAULT and marker is not COALESCE
    if t == "block":
        return len(node.expressions) == 1 and not c.binds(node)
    return t in ("string", "number", "value", "variable", "name")


def _literal_keys(node: Any) -> list[str] | None:
    keys = [k.value if k.type == "string" else None for k, _ in node.lhs_object]
    if any(k is None or not isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        return None
    return keys  # type: ignore[return-value]


def _simple_path(node: Any) -> bool:
    if node.keep_singleton_array or node.tuple or node.group is not None:
        return False
    if node.steps[0].consarray:
        return False
    return all(s.type != "sort" and not s.stages and not s.focus and not s.index
               and not s.tuple and s.ancestor is None for s in node.steps)


def _truth_test(v: str) -> str:
    return f"({v} is True or ({v} is not False and _tobool({v})))"


class _Gen:
    def __init__(self, c: Compiler) -> None:
        self.c = c
        self.lines: list[str] = []
        self.indent = 1
        self.ns: dict[str, Any] = namespace()
        self.count = 0
        # library calls whose errors need a position and function name:
        # index in ``lines`` -> (position, name)
        self.sites: dict[int, tuple[int, str]] = {}
        self.uses_builtins = False
        self.literals: dict[str, Any] = {}  # names holding literal values (types known now)
        self.defined: set[str] = set()  # names that never hold undefined
        self.dicts: set[str] = set()  # context names known to hold an object here
        self.strings: set[str] = set()  # names known to hold a string
        self.scalars: set[str] = set()  # names known never to hold an array
        self.numbers: set[str] = set()  # names known to hold a number or undefined
        # names known to hold a number, undefined or a sequence of numbers
        self.number_seqs: set[str] = set()
        # set by a `$sum(path)` call for the path it is about to generate: the
        # call's (position, name); the path then sums as it goes, into a name in `sums`
        self.summing: tuple[int, str] | None = None
        self.sums: set[str] = set()
        # `$number(x)` call sites by key (see _cse_key): the lines each wrote
        # for a memo (see settle_memos)
        self.memo_sites: dict[tuple[Any, ...], list[tuple[int, int, int]]] = {}
        self.uses_memo = False
        # names holding a value in exported form: a string, a boolean, null, a
        # finite number, or containers this function built from such values
        self.fresh: set[str] = set()
        self.out = False  # whether the node being generated builds exported output
        self.env = "env"  # the variable holding the current frame
        # common subexpressions: key of a pure node (see _cse_key) -> the name
        # holding its value and the indent of the block that computed it
        self.known: dict[tuple[Any, ...], tuple[str, int]] = {}
        # (frame variable, parameter name) -> the name holding the parameter's value
        self.params: dict[tuple[str, str], str] = {}

    def tmp(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def const(self, value: Any) -> str:
        name = f"_k{len(self.ns)}"
        self.ns[name] = value
        return name

    def emit(self, line: str, indent: int = 0) -> None:
        self.lines.append("    " * (self.indent + indent) + line)

    @contextmanager
    def block(self) -> Iterator[None]:
        self.indent += 1
        try:
            yield
        finally:
            self.dedent()

    def dedent(self) -> None:
        """Leave a block: what was computed in it is not known after it."""
        self.indent -= 1
        self.known = {k: v for k, v in self.known.items() if v[1] <= self.indent}

    def assign(self, target: str, node: Any, ctx: str, out: bool = False) -> None:
        value = self.expr_out(node, ctx) if out else self.expr(node, ctx)
        if value != target:
            self.emit(f"{target} = {value}")

    def paced(self, items: str) -> str:
        """``items`` charged to the loop budget as ``runtime.pace`` charges them,
        the common case (budget left) inline."""
        n = self.tmp()
        self.emit(f"if ({n} := len({items})) > _st.budget: {items} = _pace({items}, _st)")
        self.emit(f"else: _st.budget -= {n}")
        return items

    def settle_memos(self) -> None:
        """Keep the ``$number`` memo where a string may be parsed in two places:
        sites of one key written more than once (common-subexpression
        elimination has joined those of one block).  Elsewhere the memo lines
        are blanked (line numbers stay those ``sites`` knows)."""
        for lines in self.memo_sites.values():
            if len(lines) > 1:
                self.uses_memo = True
                continue
            for lookup, parse, store in lines:
                self.lines[lookup] = ""
                self.lines[parse] = self.lines[parse].replace("elif ", "if ", 1)
                self.lines[store] = ""

    def collapse_new(self, acc: str, r: str, init: int, plain: bool = False) -> None:
        """``r = collapse(acc)`` for a sequence made on line ``init`` and given
        no flag, written out.  *plain*: its items are in exported form and it
        goes into the result, so it is made a plain list instead."""
        if plain:
            self.lines[init] = self.lines[init].replace("Seq()", "[]")
        self.emit(f"{r} = {acc} if len({acc}) > 1 else {acc}[0] if {acc} else U")

    def closure(self, node: Any, ctx: str) -> str:
        fn = self.const(self.c.compile(node))
        r = self.tmp()
        self.emit(f"{r} = {fn}({ctx}, {self.env})")
        return r

    def own_closure(self, node: Any) -> str:
        """The closure of the node being generated (for its slow paths), at
        the node's own static depth (``expr`` has already counted the node)."""
        return self.const(Deferred(self.c, node, self.c.depth - 1))

    # dispatch -----------------------------------------------------------
    def expr(self, node: Any, ctx: str, out: bool = False) -> str:
        """Emit code computing ``node`` on context variable ``ctx``; return
        the name holding the value (as the compiled closure would return it).
        *out*: the value goes into the result as it is, so containers the node
        builds may be built in exported form (see :meth:`expr_out`)."""
        if not _generated(self.c, node):
            return self.closure(node, ctx)
        key = _cse_key(self.c, node)
        if key is not None:
            key = (key, ctx, self.env)
            if key in self.known:
                return self.known[key][0]
        self.c.depth += 1
        outer, self.out = self.out, out
        try:
            v: str = getattr(self, "_g_" + node.type)(node, ctx)
        finally:
            self.c.depth -= 1
            self.out = outer
        if key is not None:
            self.known[key] = (v, self.indent)
        return v

    def expr_out(self, node: Any, ctx: str) -> str:
        """``expr`` for a value that becomes part of the result: the name
        returned holds it in exported form.  Objects, and arrays of objects
        made by a path, are built that way; any other value not known to be
        is copied by ``export`` unless it is a string or an integer."""
        v = self.expr(node, ctx, out=True)
        if v in self.fresh or v in self.strings:
            return v
        w = self.tmp()
        if v in self.numbers:  # a number of the input, not finite in theory
            self.emit(f"{w} = {v} if type({v}) is not float or {v} - {v} == 0 else _exd({v}, _st)")
        else:
            self.emit(f"{w} = {_exported(v)}")
        self.fresh.add(w)
        if v in self.defined:
            self.defined.add(w)
        if v in self.scalars:
            self.scalars.add(w)
        return w

    def _g_string(self, node: Any, ctx: str) -> str:
        value = self.c.compile(node)(None, None)  # type: ignore[arg-type]
        name = self.const(value)
        self.literals[name] = value
        self.fresh.add(name)
        if value is not UNDEFINED:
            self.defined.add(name)
        return name

    def test(self, letters: str, v: str) -> str:
        """Python test that ``v`` has one of the signature types in ``letters``
        (s, n, b); "True"/"False" when ``v`` is a literal."""
        if v in self.strings:
            return str("s" in letters)
        if letters == "n" and v in self.numbers:
            return f"{v} is not U"
        if v in self.literals:
            value = self.literals[v]
            return str(any(_TYPE_OF[ch](value) for ch in letters if ch in _TYPE_OF))
        checks = [_TYPE_TESTS[ch].format(v=v) for ch in letters if ch in _TYPE_TESTS]
        return checks[0] if len(checks) == 1 else "(" + " or ".join(checks) + ")"

    _g_number = _g_value = _g_string

    def _g_variable(self, node: Any, ctx: str) -> str:
        r = self.tmp()
        if node.value == "":
            self.emit(f"{r} = {ctx}[0] if type({ctx}) is Seq and {ctx}.outer_wrapper else {ctx}")
            return r
        held = self.params.get((self.env, node.value))
        if held is not None:  # a parameter of a function written out as a loop
            self.emit(f"{r} = _collapse({held}) if type({held}) is Seq else {held}")
            return r
        self.emit(f"{r} = {self.env}.lookup({node.value!r})")
        self.emit(f"if type({r}) is Seq: {r} = _collapse({r})")
        return r

    def _g_name(self, node: Any, ctx: str) -> str:
        # A field value needs no singleton collapse: objects hold input values
        # or values an expression computed, which are collapsed already (a
        # sequence kept in an object has two or more items or keeps its
        # singleton, and collapse leaves both alone).
        r, key = self.tmp(), node.value
        if ctx in self.dicts:
            self.emit(f"{r} = {ctx}.get({key!r}, U)")
        else:
            self.emit(f"{r} = {ctx}.get({key!r}, U) if type({ctx}) is dict "
                      f"else _collapse(_lookup({ctx}, {key!r}))")
        return r

    def _g_block(self, node: Any, ctx: str) -> str:
        return self.expr(node.expressions[0], ctx, out=self.out)

    # paths ----------------------------------------------------------------
    def _g_path(self, node: Any, ctx: str) -> str:
        steps = node.steps
        summing, self.summing = self.summing, None
        if all(s.type == "name" and _plain(s) for s in steps):
            return self._names(node, ctx)
        out = self.out
        r, seq = self.tmp(), self.tmp()
        closure = False  # whether r may be the closure's result
        self.emit(f"{r} = U")
        self.emit("while True:")
        with self.block():
            first = steps[0]
            if first.type == "name" and _plain(first):
                # `items.<step>` on an object: one lookup instead of a loop over one item
                key = first.value
                known = ctx in self.dicts
                if not known:
                    self.emit(f"if type({ctx}) is dict:")
                    self.indent += 1
                self.emit(f"{seq} = {ctx}.get({key!r}, U)")
                self.emit(f"if type({seq}) is not list: {seq} = _items({seq})")
                self.emit(f"if not {seq}: break")
                if not known:
                    # an array or a scalar context is rare here: the closure serves it
                    self.dedent()
                    closure = True
                    whole = f"{self.own_closure(node)}({ctx}, {self.env})"
                    self.emit(f"else: {r} = {f'_exd({whole}, _st)' if out else whole}; break")
            elif first.type == "variable":
                self.emit(f"{seq} = ({ctx},)")
                self._step(first, seq, r, last=False)
            else:
                self.emit(f"{seq} = {ctx} if isinstance({ctx}, list) else ({ctx},)")
                self._step(first, seq, r, last=False)
            made = ""
            for i, step in enumerate(steps[1:], 1):
                last = i == len(steps) - 1
                made = self._step(step, seq, r, last, out and last,
                                  summing if last and not closure else None)
            self.emit("break")
        if made == "exported":  # and the closure's result is exported (above)
            self.fresh.add(r)
        elif made == "sum":
            self.sums.add(r)
        elif made == "numbers" and not closure:
            self.number_seqs.add(r)
        return r

    def _step(self, step: Any, seq: str, r: str, last: bool, out: bool = False,
              summing: tuple[int, str] | None = None) -> str:
        """One step of a path over the items of ``seq``; the last sets ``r``.
        *out*: the step's values go into the result.  *summing*: the path is
        the argument of that ``$sum`` call.  Returns what the last step leaves in
        ``r``: "exported" (values in exported form only), "numbers" (a number,
        undefined or a sequence of numbers), "sum" (the sum), or ""."""
        acc, item = self.tmp(), self.tmp()
        init = len(self.lines)
        self.emit(f"{acc} = Seq()")
        self.emit(f"for {item} in {self.paced(seq)}:")
        with self.block():
            v = self.expr(step, item, out=out)
            self.emit(f"{acc}.append({v})" if v in self.defined
                      else f"if {v} is not U: {acc}.append({v})")
        if v in self.scalars:
            # no item can be an array: the sequence is already flat
            if last and out and v in self.fresh:
                self.collapse_new(acc, r, init, plain=True)
                return "exported"
            if last and summing is not None and v in self.numbers:
                # `$sum(a.b)`: the sum of the values as they are, with no
                # sequence made of them first (undefined when there are none)
                self.lines[init] = self.lines[init].replace("Seq()", "[]")
                fsum = self.const(ROOT.vars["sum"].impl)
                self.emit_call(f"{r} = {fsum}({acc}) if {acc} else U", summing)
                return "sum"
            if last:
                self.collapse_new(acc, r, init)
                if v in self.numbers:
                    return "numbers"
            else:
                self.emit(f"{seq} = {acc}")
                self.emit(f"if not {seq}: break")
            return ""
        if last:
            self.emit(f"if len({acc}) == 1 and isinstance({acc}[0], list) "
                      f"and type({acc}[0]) is not Seq: {r} = {acc}[0]")
            self.emit(f"else: {r} = _collapse(_flat({acc}))")
        else:
            self.emit(f"{seq} = _flat({acc})")
            self.emit(f"if not {seq}: break")
        return ""

    def _names(self, node: Any, ctx: str) -> str:
        # a.b.c through nested objects; anything else takes the generic path
        r = self.tmp()
        first, *rest = [s.value for s in node.steps]
        known = ctx in self.dicts
        if not rest and known:
            self.emit(f"{r} = {ctx}.get({first!r}, U)")  # no collapse: see _g_name
            return r
        slow = self.own_closure(node)
        if not rest:
            self.emit(f"{r} = {ctx}.get({first!r}, U) if type({ctx}) is dict "
                      f"else {slow}({ctx}, {self.env})")
        else:
            if known:
                # the first step is a field of a known object: shared by every
                # path through it in this block (customer.id, customer.email)
                head = self.field(first, ctx)
            else:
                head = r
                self.emit(f"{r} = {ctx}.get({first!r}, U) if type({ctx}) is dict else _SLOW")
            if len(rest) == 1 and known:
                # a.b: anything but an object in the middle takes the generic path
                self.emit(f"{r} = {head}.get({rest[0]!r}, U) if type({head}) is dict "
                          f"else U if {head} is U else {slow}({ctx}, {self.env})")
                return r
            if head != r:
                self.emit(f"{r} = {head}")
            for key in rest:
                self.emit(f"{r} = {r}.get({key!r}, U) if type({r}) is dict "
                          f"else ({r} if {r} is U else _SLOW)")
            self.emit(f"if {r} is _SLOW: {r} = {slow}({ctx}, {self.env})")
        return r

    def field(self, key: str, ctx: str) -> str:
        """The name holding field ``key`` of ``ctx``, known to hold an object
        here: fetched once per block (no collapse: see _g_name)."""
        known = (("name", key), ctx, self.env)
        if known in self.known:
            return self.known[known][0]
        v = self.tmp()
        self.emit(f"{v} = {ctx}.get({key!r}, U)")
        self.known[known] = (v, self.indent)
        return v

    # constructors -----------------------------------------------------------
    def _g_unary(self, node: Any, ctx: str) -> str:
        keys = _literal_keys(node)
        assert keys is not None
        out = self.out
        r = self.tmp()
        self.defined.add(r)
        self.scalars.add(r)
        if out:
            self.fresh.add(r)
        if ctx in self.dicts:
            self._object(node, keys, ctx, r, out)
            return r
        # written out for an object context, where field access needs no type
        # tests; an array (grouping) or a scalar context takes the closure
        whole = f"{self.own_closure(node)}({ctx}, {self.env})"
        self.emit(f"if type({ctx}) is not dict: {r} = {f'_exd({whole}, _st)' if out else whole}")
        self.emit("else:")
        with self.block():
            self.dicts.add(ctx)
            try:
                self._object(node, keys, ctx, r, out)
            finally:
                self.dicts.discard(ctx)
        return r

    def _object(self, node: Any, keys: list[str], ctx: str, r: str, out: bool) -> None:
        self.emit(f"{r} = {{}}")
        for key, (_, value) in zip(keys, node.lhs_object, strict=True):
            names = _field_names(self.c, value)
            if names is not None and len(names) == 1:
                v = self.tmp()  # no collapse: see _g_name
                field = _exported(v) if out else v
                get = f"{ctx}.get({names[0]!r}, U)"
                self.emit(f"if ({v} := {get}) is not U: {r}[{key!r}] = {field}")
                self.known[(("name", names[0]), ctx, self.env)] = (v, self.indent)
                continue
            v = self.expr_out(value, ctx) if out else self.expr(value, ctx)
            if v in self.defined:
                self.emit(f"{r}[{key!r}] = {v}")
            else:
                self.emit(f"if {v} is not U: {r}[{key!r}] = {v}")

    # operators --------------------------------------------------------------
    def _g_condition(self, node: Any, ctx: str) -> str:
        out = self.out
        cond = self.expr(node.condition, ctx)
        r = self.tmp()
        self.emit(f"if {_truth_test(cond)}:")
        with self.block():
            self.assign(r, node.then, ctx, out)
        self.emit("else:")
        with self.block():
            if node._else is not None:
                self.assign(r, node._else, ctx, out)
            else:
                self.emit(f"{r} = U")
        if out:
            self.fresh.add(r)
        return r

    def _g_binary(self, node: Any, ctx: str) -> str:
        op = node.value
        if op in ("and", "or"):
            return self._boolean(node, ctx, op == "and")
        a = self.expr(node.lhs, ctx)
        b = self.expr(node.rhs, ctx)
        f = self.const(binary_function(op, node.position))
        r = self.tmp()
        self.fresh.add(r)  # operators give strings, booleans and finite numbers
        num_a, num_b = self.test("n", a), self.test("n", b)
        str_a, str_b = self.test("s", a), self.test("s", b)
        if op != "in":
            self.scalars.add(r)  # a number, a boolean, a string or undefined
        if op in _ARITH or op in ("/", "%"):
            self.numbers.add(r)
        if op in _ARITH:
            both = _both(num_a, num_b)
            if both == "False":
                self.emit(f"{r} = {f}({a}, {b})")
                return r
            # two numbers: the operation itself; anything else the operator function
            if both != "True":
                self.emit(f"if not {both}: {r} = {f}({a}, {b})")
                self.emit("else:")
            pad = "    " if both != "True" else ""
            self.emit(f"{pad}{r} = {a} {op} {b}")
            # a float result as the operator gives it: whole numbers as int,
            # non-finite as the operator's D1001
            self.emit(f"{pad}if type({r}) is float:")
            self.emit(f"{pad}    if {r}.is_integer():")
            self.emit(f"{pad}        if {-_MAX_FLOAT!r} < {r} < {_MAX_FLOAT!r}: {r} = int({r})")
            self.emit(f"{pad}    elif {r} - {r} != 0: {r} = {f}({a}, {b})")
            # an integer over the bound (limits.py): the operator function raises
            # D1011. The operands are at most that long (JSON brings in none longer,
            # every result is checked), so the operation made here took microseconds.
            # Small integers are told apart first: CPython specializes a comparison
            # of two one-digit (under 2**30) integers, not one with the bound itself
            self.emit(f"{pad}elif not {-_SMALL} < {r} < {_SMALL} and not _NIL < {r} < _IL: "
                      f"{r} = {f}({a}, {b})")
        elif op in _ORDER:
            self.emit(f"if {_both(num_a, num_b)} or {_both(str_a, str_b)}:")
            self.emit(f"    {r} = {a} {op} {b}")
            self.emit(f"else: {r} = {f}({a}, {b})")
        elif op in ("=", "!="):
            py = "==" if op == "=" else "!="
            self.emit(f"{r} = {a} {py} {b} if {_both(str_a, str_b)} else {f}({a}, {b})")
        elif op == "&":
            left, right = self.text_of(a, str_a), self.text_of(b, str_b)
            # the operator function raises D2015 for a result over the bound (limits.py);
            # a literal's length is known now
            sizes = [len(self.literals[v]) if type(self.literals.get(v)) is str else f"len({v})"
                     for v in (left, right)]
            known = sum(s for s in sizes if isinstance(s, int))
            measured = " + ".join(s for s in sizes if isinstance(s, str))
            if not measured:  # two literals
                self.emit(f"{r} = {left} + {right}" if known <= MAX_STRING
                          else f"{r} = {f}({a}, {b})")
            else:
                self.emit(f"{r} = {left} + {right} if {measured} <= {MAX_STRING - known} "
                          f"else {f}({a}, {b})")
            self.defined.add(r)
            self.strings.add(r)
            self.scalars.add(r)
        else:
            self.emit(f"{r} = {f}({a}, {b})")
        return r

    def text_of(self, v: str, is_str: str) -> str:
        """The name holding ``v`` as the text ``&`` joins (made once, read twice)."""
        text = _text(v, is_str)
        if text == v:
            return v
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t

    def _boolean(self, node: Any, ctx: str, is_and: bool) -> str:
        left = self.expr(node.lhs, ctx)
        r = self.tmp()
        self.fresh.add(r)
        test = _truth_test(left)
        self.emit(f"if {'not ' if is_and else ''}{test}: {r} = {'False' if is_and else 'True'}")
        self.emit("else:")
        with self.block():
            right = self.expr(node.rhs, ctx)
            self.emit(f"{r} = {right} if type({right}) is bool else bool(_tobool({right}))")
        return r

    # library calls ----------------------------------------------------------
    def emit_call(self, line: str, site: tuple[int, str]) -> None:
        self.sites[len(self.lines)] = site
        self.emit(line)

    def _special(self, name: str, builtin: Builtin, a: str, r: str, site: tuple[int, str],
                 generic: str, ctx: str, memo: tuple[Any, ...] | None = None) -> None:
        """Single-argument numeric functions with their common case written out."""
        impl = self.const(builtin.impl)
        if name == "number":
            out = self.out
            self.numbers.add(r)
            slow = f"_to_number({a}, {self.const(builtin)}, {ctx}, {site[0]!r})"
            if self.test("s", a) == "False":
                self.emit(f"{r} = {a} if {self.test('n', a)} else {slow}")
            else:
                # "19.99", "42": ASCII digits with at most one inner point, under 16
                # characters - a subset of to_number's DECIMAL_RE, tested by str
                # methods faster than the expression - so float() is exact enough
                # and a whole number fits an int exactly (as to_number has it)
                # a memo, kept if the expression parses this field in another
                # place too (the lines, then their total; see settle_memos)
                lookup = len(self.lines)
                self.emit(f"if type({a}) is str and ({r} := _nm.get({a})) is not None: pass")
                self.emit(f"elif type({a}) is str and len({a}) < 16 and {a}.isascii() and "
                          f"{a}.replace('.', '', 1).isdigit() and {a}[0] != '.' != {a}[-1]:")
                self.emit(f"    {r} = float({a})")
                self.emit(f"    if {r}.is_integer(): {r} = int({r})")
                self.emit(f"    _nm[{a}] = {r}")
                # a site whose argument has no key is a memo of its own: not kept
                self.memo_sites.setdefault(memo or (lookup,), []).append(
                    (lookup, lookup + 1, len(self.lines) - 1))
                self.emit("else:")
                self.emit(f"{r} = {a} if {self.test('n', a)} else {slow}", indent=1)
                if out and a not in self.fresh:
                    # going into the result: only a number passed through from the
                    # input may be one that is not finite (see export_deferred)
                    self.emit(f"if type({r}) is float and {r} - {r} != 0: _exd({r}, _st)",
                              indent=1)
                    self.fresh.add(r)
            if a in self.fresh:  # else a number of the input passed through, maybe not finite
                self.fresh.add(r)
            return
        self.fresh.add(r)  # the aggregates check what they compute
        if name == "count":
            self.emit(f"if type({a}) is list or type({a}) is Seq: {r} = len({a})")
        elif a in self.number_seqs or a in self.numbers:  # no item to check
            self.emit_call(f"{r} = {impl}({a} if type({a}) is Seq or {a} is U else [{a}])", site)
            return
        else:
            nums = self.tmp()
            self.emit(f"{nums} = _numbers({a})")
            self.emit_call(f"if {nums} is not None: {r} = {impl}({nums})", site)
        self.emit(f"else: {r} = {generic}")

    def _higher_order(self, node: Any, ctx: str, fn: Any) -> str:
        """``$map``/``$filter`` over a literal function: the loop written out,
        the function's body inline, its parameters in one frame reused for
        every item (the body creates nothing that could keep the frame).
        Calls made from the body count their depth from the enclosing
        function, one level less than through ``$map``'s own call."""
        name = node.procedure.value
        out = self.out
        arr, r, frame, acc, i, item = (self.tmp() for _ in range(6))
        self.assign(arr, node.arguments[0], ctx)
        self.emit(f"if {arr} is U: {r} = U")
        self.emit("else:")
        with self.block():
            self.emit(f"if not isinstance({arr}, list): {arr} = [{arr}]")
            frame_lines = [len(self.lines)]
            self.emit(f"{frame} = _Frame({self.env}, {self.env}.state)")
            init = len(self.lines)
            self.emit(f"{acc} = Seq()")
            loop = f"enumerate({self.paced(arr)})" if len(fn.arguments) > 1 else self.paced(arr)
            self.emit(f"for {i + ', ' if len(fn.arguments) > 1 else ''}{item} in {loop}:")
            with self.block():
                values = [item, i, arr]
                for k, param in enumerate(fn.arguments):
                    frame_lines.append(len(self.lines))
                    self.emit(f"{frame}.vars[{param.value!r}] = {values[k]}")
                    self.params[(frame, param.value)] = values[k]
                body_start = len(self.lines)
                outer, self.env = self.env, frame
                try:
                    body = fn.body.body if fn.body.type == "lambda" else fn.body
                    v = self.expr(body, ctx)
                finally:
                    self.env = outer
                uses = re.compile(rf"\b{frame}\b")
                if not any(uses.search(line) for line in self.lines[body_start:]):
                    # the body reads its parameters from the loop's own names and
                    # hands the frame to nothing: no frame to make or fill
                    for index in frame_lines:
                        self.lines[index] = ""
                if name == "map":
                    self.emit(f"if {v} is not U: {acc}.append({v})")
                else:
                    self.emit(f"if {_truth_test(v)}: {acc}.append({item})")
            plain = out and name == "map" and v in self.fresh
            self.collapse_new(acc, r, init, plain)
            if plain:
                self.fresh.add(r)
        return r

    def _written_out(self, name: str, args: list[str], call: str) -> str:
        """The Python for a library call whose arguments passed its type test: the
        operation itself where it is one (as the library function computes it), else
        *call*, the call of the implementation."""
        a = args[0] if args else ""
        if name == "string" and len(args) == 1:  # an integer's text is its Python text
            return f"{a} if type({a}) is str else str({a}) if type({a}) is int else {call}"
        if name in _STR_METHODS and len(args) == 1:  # the test says: a string
            return f"{a}.{_STR_METHODS[name]}()"
        if name == "trim" and len(args) == 1:  # no run of white space to fold
            return (f"{a}.strip(' ') if '  ' not in {a} and '\\t' not in {a} and "
                    f"'\\n' not in {a} and '\\r' not in {a} else {call}")
        if name == "split" and len(args) == 2:
            sep = self.literals.get(args[1])
            if type(sep) is str and sep:
                return f"{a}.split({args[1]})"  # a literal separator: str.split
        if name == "substring" and len(args) == 3:
            start, length = (self.literals.get(v, UNDEFINED) for v in args[1:])
            if type(start) is int and start >= 0 and type(length) is int and length > 0:
                return f"{a}[{start}:{start + length}]"
        return call

    def _g_function(self, node: Any, ctx: str) -> str:
        inline = _inline_lambda(self.c, node)
        if inline is not None:
            return self._higher_order(node, ctx, inline)
        name = node.procedure.value
        builtin: Builtin = ROOT.vars[name]
        r = self.tmp()
        if name == "sum" and len(node.arguments) == 1 and node.arguments[0].type == "path":
            self.summing = (node.position, name)  # taken by _g_path
        args = [self.expr(a, ctx) for a in node.arguments]
        self.summing = None
        if name == "sum" and len(args) == 1 and args[0] in self.sums:
            self.uses_builtins = True  # a binding may still rebind $sum
            self.fresh.add(args[0])
            self.scalars.add(args[0])
            self.numbers.add(args[0])
            return args[0]
        fast = _fast_call(builtin, args, self.test)
        if builtin.needs_env:
            # the library function may call back into the expression (a function
            # argument): the generic path keeps the call-depth accounting
            generic = (f"_call_env({self.const(builtin)}, [{', '.join(args)}], {ctx}, "
                       f"{self.env}, {node.position!r}, {self.c.depth})")
            if fast is not None:
                lead = [self.env] if builtin.needs_env == 1 else [self.env, ctx]
                fast = (fast[0], lead + fast[1])
        else:
            generic = f"_call({self.const(builtin)}, [{', '.join(args)}], {ctx}, {node.position!r})"
        site = (node.position, name)
        self.uses_builtins = True
        if len(args) == 1 and name in _SPECIAL:
            memo = _cse_key(self.c, node) if name == "number" else None
            self._special(name, builtin, args[0], r, site, generic, ctx, memo)
        elif fast is None:
            self.emit(f"{r} = {generic}")
        else:
            test, padded = fast
            call = self._written_out(name, args, f"{self.const(builtin.impl)}({', '.join(padded)})")
            if test == "False":
                self.emit(f"{r} = {generic}")
            elif test == "True":
                self.emit_call(f"{r} = {call}", site)
            else:
                self.emit_call(f"if {test}: {r} = {call}", site)
                self.emit(f"else: {r} = {generic}")
        if not _returns_scalar(builtin):
            self.emit(f"if type({r}) is Seq: {r} = _collapse({r})")
            return r
        self.scalars.add(r)
        if not builtin.signature.definition.endswith(":n>"):  # type: ignore[union-attr]
            self.fresh.add(r)  # a string or a boolean
        return r


_SPECIAL = {"number", "sum", "count", "max", "min", "average"}
_FAST_NAMES = ("U", "_NUM", "_SI", "_exd", "Seq", "_items", "_pace", "_collapse", "_IL",
               "_NIL")
_SMALL = 2**30 - 1  # the largest integer CPython stores in one digit
_MAX_FLOAT = float(MAX_EXACT)  # a float bound: compared with a float without conversion
#: library functions that are one str method on a string argument
_STR_METHODS = {"lowercase": "lower", "uppercase": "upper"}
#: library functions whose result depends on more than their arguments
_IMPURE = {"random", "eval", "error", "assert"}


def _cse_key(c: Compiler, node: Any) -> tuple[Any, ...] | None:
    """The key of ``node`` for common-subexpression elimination (see _node_key),
    worked out once per node."""
    keys = c.cse_keys
    if id(node) not in keys:
        keys[id(node)] = _node_key(c, node)
    return keys[id(node)]


def _node_key(c: Compiler, node: Any) -> tuple[Any, ...] | None:
    """A key equal for two nodes that compute the same value in the same context
    and frame: plain names, paths of names, literals, arithmetic and calls of
    pure library functions with scalar results over such nodes; else None.

    Generated code computes such a node once per block: ``$number(price)``
    twice in one object constructor is one parse."""
    if not _plain(node):
        return None
    t = node.type
    if t in ("string", "number", "value"):
        return (t, type(node.value), node.value)
    if t == "name":
        return (t, node.value)
    if t == "path":
        names = _field_names(c, node)
        return None if names is None else ("name", *names) if len(names) == 1 else (t, names)
    if t == "binary" and node.value in _ARITH:
        lhs, rhs = _cse_key(c, node.lhs), _cse_key(c, node.rhs)
        return None if lhs is None or rhs is None else (t, node.value, lhs, rhs)
    if t == "function" and _generated(c, node):
        name = node.procedure.value
        builtin = ROOT.vars[name]
        if name in _IMPURE or builtin.needs_env or not _returns_scalar(builtin):
            return None
        args = tuple(_cse_key(c, a) for a in node.arguments)
        return None if None in args else (t, name, args)
    return None


def _field_names(c: Compiler, node: Any) -> tuple[str, ...] | None:
    """The names of ``a.b.c`` when ``node`` is such a path of plain names."""
    if node.type != "path" or not _generated(c, node):
        return None
    if not all(s.type == "name" and _plain(s) for s in node.steps):
        return None
    return tuple(s.value for s in node.steps)


_CAPTURING = {"lambda", "bind", "partial", "transform", "parent"}


def _inline_lambda(c: Compiler, node: Any) -> Any:
    """The literal function of ``$map(array, function($v, $i, $a) {...})`` or
    ``$filter(...)`` when the call can be written as a loop, else None."""
    if node.procedure.value not in ("map", "filter") or len(node.arguments) != 2:
        return None
    fn = node.arguments[1]
    if fn.type != "lambda" or fn.thunk or fn.signature is not None or not _plain(fn):
        return None
    if not 1 <= len(fn.arguments) <= 3 or not _plain(node.arguments[0]):
        return None
    body = fn.body
    if body.type == "lambda" and body.thunk:
        body = body.body  # a tail call: in a loop it is an ordinary call
    from .compiler import _walk
    if any(n.type in _CAPTURING or getattr(n, "tuple", None) for n in _walk(body, set())):
        return None
    return fn


def _returns_scalar(builtin: Builtin) -> bool:
    sig = builtin.signature
    return sig is not None and sig.definition.endswith((":s>", ":n>", ":b>"))


def _exported(v: str) -> str:
    """Python for ``v`` in exported form: strings and integers as they are, anything
    else copied by export (a non-finite number held until the result is complete)."""
    return f"{v} if type({v}) in _SI else _exd({v}, _st)"


def _both(a: str, b: str) -> str:
    if a == "False" or b == "False":
        return "False"
    return a if b == "True" else b if a == "True" else f"({a} and {b})"


def _text(v: str, is_str: str) -> str:
    return v if is_str == "True" else f"({v} if {is_str} else _cat({v}))"


def _fast_call(builtin: Builtin, args: list[str],
               test: Callable[[str, str], str]) -> tuple[str, list[str]] | None:
    """The type test under which the signature would pass ``args`` through
    unchanged, and the argument list to call the implementation with."""
    sig = builtin.signature
    if sig is None or len(args) > len(sig.params):
        return None
    tests: list[str] = []
    for param, arg in zip(sig.params, args, strict=False):
        if param.regex.endswith("+"):
            return None
        kind = param.type
        if kind == "x":
            continue
        letters = kind.strip("()")
        if not any(ch in _TYPE_TESTS for ch in letters) or (
                len(letters) == 1 and letters not in _TYPE_TESTS):
            return None
        check = test(letters, arg)
        if check == "False":
            return "False", []
        if check != "True":
            tests.append(check)
    padded = list(args)
    for param in sig.params[len(args):]:
        if param.context or not param.regex.endswith("?"):
            return None  # the context value or a missing argument: the signature decides
        padded.append("U")
    return (" and ".join(tests) or "True"), padded
