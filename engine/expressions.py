"""Expressions over the envelope: JSONata (the default) and JMESPath, compiled once at load.

`compile_expr` turns an `ExprSpec` into an object whose ``evaluate(envelope)`` runs the expression
with the body as input and ``$headers``, ``$vars`` and ``$meta`` bound. Syntax errors carry the
character offset inside the expression so the loader can point at the line and column in the
flow file; evaluation errors become `ExpressionError`, which the runner turns into a step error.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import jmespath
import jmespath.exceptions

from engine.dsl.base import ExprSpec
from engine.envelope import Envelope

#: bounds applied to every evaluation so a runaway expression fails its step, not the process
DEFAULT_TIMEOUT_MS = 5000
DEFAULT_MAX_DEPTH = 500


class ExprSyntaxError(ValueError):
    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


class ExpressionError(Exception):
    """An expression failed while evaluating a message."""

    def __init__(self, message: str, source: str, position: int | None = None):
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where} in expression {_clip(source)}")
        self.source = source
        self.position = position


class Compiled(Protocol):
    source: str

    def evaluate(self, envelope: Envelope) -> Any: ...


def _clip(source: str, limit: int = 120) -> str:
    flat = " ".join(source.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def compile_expr(spec: ExprSpec) -> Compiled:
    if spec.lang == "jmespath":
        return JmesPathExpr(spec.source)
    return JsonataExpr(spec.source)


def _bindings(envelope: Envelope) -> dict[str, Any]:
    return {"headers": envelope.headers, "vars": envelope.vars, "meta": envelope.meta}


class JsonataExpr:
    def __init__(self, source: str):
        from engine import jsonata_backend

        self.source = source
        try:
            self._compiled = jsonata_backend.compile(source)
        except jsonata_backend.SyntaxFailure as exc:
            raise ExprSyntaxError(f"JSONata syntax error: {exc.message}", exc.offset) from None

    def evaluate(self, envelope: Envelope) -> Any:
        from engine import jsonata_backend

        try:
            return self._compiled.evaluate(envelope.body, _bindings(envelope),
                                           timeout_ms=DEFAULT_TIMEOUT_MS,
                                           max_depth=DEFAULT_MAX_DEPTH)
        except jsonata_backend.EvaluationFailure as exc:
            raise ExpressionError(exc.message, self.source, exc.offset) from None


# `$headers` etc. outside string literals: JMESPath has no variables, so the names are rewritten
# to quoted identifiers of a root object that carries them beside the body's own fields.
_JMES_VARS = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`)|\$(headers|vars|meta)\b""")


class JmesPathExpr:
    def __init__(self, source: str):
        self.source = source
        rewritten = _JMES_VARS.sub(lambda m: m.group(1) or f'"${m.group(2)}"', source)
        self._uses_vars = rewritten != source
        try:
            self._compiled = jmespath.compile(rewritten)
        except jmespath.exceptions.ParseError as exc:
            raise ExprSyntaxError(f"JMESPath syntax error: {exc.msg}",
                                  exc.lex_position or 0) from None
        except jmespath.exceptions.JMESPathError as exc:
            raise ExprSyntaxError(f"JMESPath syntax error: {exc}") from None

    def evaluate(self, envelope: Envelope) -> Any:
        data = envelope.body
        if self._uses_vars:
            base = data if isinstance(data, dict) else {}
            data = {**base, "$headers": envelope.headers, "$vars": envelope.vars,
                    "$meta": envelope.meta}
        try:
            return self._compiled.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(f"JMESPath error: {exc}", self.source) from None
        except RecursionError:
            raise ExpressionError("expression nested too deeply", self.source) from None
