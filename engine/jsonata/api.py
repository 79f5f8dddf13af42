"""Public entry points: :func:`compile_expression` and :class:`Expression`.

Compilation happens once; :meth:`Expression.evaluate` builds a fresh
per-evaluation state (clock, bounds, variable frame), runs the compiled
closure and hands back a result that shares no mutable object with the input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .compiler import Compiler
from .errors import JsonataError
from .functions import ROOT
from .parse import parse
from .runtime import Frame, State
from .values import UNDEFINED, Seq, js_number_str, out_of_range


def compile_ast(ast: Any, source: str = "", generate: bool = True) -> Callable[[Any, Frame], Any]:
    c = Compiler(source, ast)
    c.codegen = generate
    return c.compile(ast)


log = logging.getLogger("flowrunner.jsonata")

#: evaluations on closures before a tiered expression gets its generated Python source
HOT_AFTER = 3


class Expression:
    """A compiled JSONata expression; safe to share across threads.

    ``generate=True`` writes Python source for the hot shapes at once; ``False`` keeps to
    closures (the two must agree, which the tests check). ``None`` is tiered: closures now —
    a flow folder loads in the time the closures take, and an expression never evaluated costs
    no more — and generated source once the expression has been evaluated `HOT_AFTER` times.
    The swap is one attribute assignment: a thread still in the closures finishes there."""

    __slots__ = ("_calls", "_fn", "source")

    def __init__(self, source: str, *, generate: bool | None = True) -> None:
        self.source = source
        self._fn = compile_ast(parse(source), source, bool(generate))
        self._calls = 0 if generate is None else -1  # -1: nothing left to upgrade

    def _upgrade(self) -> None:
        self._calls = -1
        try:
            self._fn = compile_ast(parse(self.source), self.source, True)
        except Exception:  # a bug in codegen: the closures are correct, keep them and say so
            log.warning("JSONata code generation failed for %r; it stays on closures",
                        self.source[:200], exc_info=True)

    def evaluate(self, data: Any, bindings: dict[str, Any] | None = None, *,
                 timeout_ms: int | None = None, max_depth: int | None = None) -> Any:
        """Evaluate against ``data`` (pass ``UNDEFINED`` for "no input").

        ``bindings`` maps variable names (without ``$``) to values or Python
        callables.  Returns ``UNDEFINED`` when the expression yields nothing.
        Raises :class:`JsonataError`; exceeding ``max_depth`` (nesting depth
        of function calls, counted as the reference does) or ``timeout_ms``
        raises code ``U1001``.
        """
        if self._calls >= 0:
            self._calls += 1  # racy on purpose: an extra or a missed count changes nothing
            if self._calls > HOT_AFTER:
                self._upgrade()
        state = State(timeout_ms, max_depth)
        variables: dict[str, Any] = dict(bindings) if bindings else {}
        variables["$"] = data
        if bindings and not ROOT.vars.keys().isdisjoint(bindings):
            state.shadow = True
        env = Frame(ROOT, state, variables)
        inp = data
        if isinstance(data, list) and type(data) is not Seq:
            inp = Seq([data])
            inp.outer_wrapper = True
        try:
            return export(self._fn(inp, env))
        except RecursionError:
            # data or recursion deeper than Python's own stack: the same bound error
            raise JsonataError("U1001", position=None) from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def export(value: Any) -> Any:
    """Copy a result into plain JSON containers (no aliasing of input, no
    internal list subclasses, undefined members dropped as JSON does).

    A non-finite number can only arrive here from input data or a binding
    (every operator and function rejects producing one); JSON cannot carry
    it, so it fails the evaluation rather than reach the next step."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            t = type(v)
            # scalars copied inline: a call per leaf would double the cost
            if t is str or t is int or t is bool or v is None:
                out[k] = v
            elif v is not UNDEFINED:
                out[k] = export(v)
        return out
    if isinstance(value, list):
        return [v if type(v) is str else None if v is UNDEFINED else export(v) for v in value]
    if type(value) is float and value - value != 0:
        raise out_of_range(value, js_number_str(value))
    return value


def compile_expression(source: str, *, tiered: bool = False) -> Expression:
    """Compile ``source``; raises :class:`JsonataError` on a syntax error. *tiered*: closures
    first, generated source once the expression is hot (what flows use)."""
    return Expression(source, generate=None if tiered else True)
