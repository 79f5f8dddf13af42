"""The one place that knows which JSONata implementation evaluates flow expressions.

flowrunner's own compiler (`engine.jsonata`) is used when present; until then the pure-Python
interpreter `jsonata-python` serves. Either way callers see one small interface: ``compile`` →
an object with ``evaluate(data, bindings, timeout_ms=, max_depth=)``, and two failure types.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any


class SyntaxFailure(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message, self.offset = message, offset


class EvaluationFailure(Exception):
    def __init__(self, message: str, offset: int | None):
        super().__init__(message)
        self.message, self.offset = message, offset


_lock = threading.Lock()
_interpreter: Any = None


def _jsonata_python() -> Any:
    """Import jsonata-python without letting it raise the process-wide recursion limit."""
    global _interpreter
    with _lock:
        if _interpreter is None:
            limit = sys.getrecursionlimit()
            try:
                import jsonata
            finally:
                sys.setrecursionlimit(limit)
            _interpreter = jsonata
    return _interpreter


#: which implementation serves when FLOWRUN_JSONATA does not say
DEFAULT_BACKEND = "native"


def _native() -> Any | None:
    if os.environ.get("FLOWRUN_JSONATA", DEFAULT_BACKEND) != "native":
        return None
    try:
        from engine import jsonata as native
    except ImportError:
        return None
    return native if hasattr(native, "compile_expression") else None


class _Interpreted:
    def __init__(self, source: str):
        jsonata = _jsonata_python()
        try:
            self._expr = jsonata.Jsonata(source)
        except jsonata.JException as exc:
            raise SyntaxFailure(_message(exc), int(getattr(exc, "location", 0) or 0)) from None
        except RecursionError:
            raise SyntaxFailure("expression nested too deeply", 0) from None
        self._expr.set_validate_input(False)

    def evaluate(self, data: Any, bindings: dict[str, Any], *, timeout_ms: int | None,
                 max_depth: int | None) -> Any:
        jsonata = _jsonata_python()
        try:
            return self._expr.evaluate(data, bindings)
        except jsonata.JException as exc:
            raise EvaluationFailure(_message(exc), getattr(exc, "location", None)) from None
        except RecursionError:
            raise EvaluationFailure("expression recursed too deeply", None) from None
        except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as exc:
            # the interpreter lets some Python errors through ($number("x"), 1/0)
            raise EvaluationFailure(f"{type(exc).__name__}: {exc}", None) from None


class _Native:
    def __init__(self, native: Any, source: str):
        self._native = native
        try:
            self._expr = native.compile_expression(source, tiered=True)
        except native.JsonataError as exc:
            raise SyntaxFailure(_native_message(exc), int(exc.position or 0)) from None

    def evaluate(self, data: Any, bindings: dict[str, Any], *, timeout_ms: int | None,
                 max_depth: int | None) -> Any:
        try:
            result = self._expr.evaluate(data, bindings, timeout_ms=timeout_ms,
                                         max_depth=max_depth)
        except self._native.JsonataError as exc:
            raise EvaluationFailure(_native_message(exc), exc.position) from None
        return None if self._native.is_undefined(result) else result


def _native_message(exc: Any) -> str:
    """Code, message and the function involved; the position travels separately
    (the caller turns it into a line and column or names it with the expression)."""
    token = exc.token
    # a run-time error's token names the function; a syntax error's is the token found
    where = f" (in ${token})" if isinstance(token, str) and token.isidentifier() \
        and not exc.code.startswith("S") and f"function {token}" not in exc.message else ""
    return f"{exc.message}{where} ({exc.code})"


def _message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    code = getattr(exc, "error", None)
    return f"{text} ({code})" if code and code not in text else text


def compile(source: str) -> Any:
    native = _native()
    return _Native(native, source) if native is not None else _Interpreted(source)
