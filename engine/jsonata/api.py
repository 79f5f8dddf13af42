"""Public entry points: :func:`compile_expression` and :class:`Expression`.

Compilation happens once; :meth:`Expression.evaluate` builds a fresh
per-evaluation state (clock, bounds, variable frame), runs the compiled
closure and hands back a result that shares no mutable object with the input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import codegen
from .compiler import Compiler
from .errors import JsonataError
from .functions import ROOT
from .parse import parse
from .runtime import Frame, State
from .values import Seq, export, float_overflow


def compile_ast(ast: Any, source: str = "", generate: bool = True, *,
                exported: bool = False) -> Callable[[Any, Frame], Any]:
    """``ast`` as a function of (input, frame). *exported*: the function returns its
    result in exported form (see :func:`~.values.export`), as an evaluation hands it back;
    generated code builds the result that way, closures have it copied afterwards."""
    c = Compiler(source, ast)
    c.codegen = generate
    if not exported:
        return c.compile(ast)
    if generate and codegen.worth_generating(c, ast):
        return codegen.generate(c, ast, exported=True)
    inner = c.compile(ast)

    def exporting(inp: Any, env: Frame) -> Any:
        return export(inner(inp, env), env.state)

    return exporting


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

    __slots__ = ("_ast", "_calls", "_fn", "source")

    def __init__(self, source: str, *, generate: bool | None = True) -> None:
        self.source = source
        ast = parse(source)
        self._fn = compile_ast(ast, source, bool(generate), exported=True)
        self._calls = 0 if generate is None else -1  # -1: nothing left to upgrade
        # the tree again for the upgrade (compilation does not change it)
        self._ast = ast if generate is None else None

    def _upgrade(self) -> None:
        self._calls = -1
        ast, self._ast = self._ast, None  # a racing second upgrade parses again
        try:
            if ast is None:
                ast = parse(self.source)
            self._fn = compile_ast(ast, self.source, True, exported=True)
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
        variables: dict[str, Any] = dict(bindings) if bindings else {}
        variables["$"] = data
        env = State(timeout_ms, max_depth, ROOT, variables)
        if bindings and not ROOT.vars.keys().isdisjoint(bindings):
            env.shadow = True
        inp = data
        if isinstance(data, list) and type(data) is not Seq:
            inp = Seq([data])
            inp.outer_wrapper = True
        try:
            return self._fn(inp, env)
        except RecursionError:
            # data or recursion deeper than Python's own stack: the same bound error
            raise JsonataError("U1001", position=None) from None
        except OverflowError:  # an integer too large for a float, met where none was expected
            raise float_overflow() from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str, *, tiered: bool = False) -> Expression:
    """Compile ``source``; raises :class:`JsonataError` on a syntax error. *tiered*: closures
    first, generated source once the expression is hot (what flows use)."""
    return Expression(source, generate=None if tiered else True)
