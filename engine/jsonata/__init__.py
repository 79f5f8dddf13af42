"""flowrunner's JSONata engine: expressions are compiled once into Python
closures and evaluated many times, thread-safely.

    from engine.jsonata import compile_expression, JsonataError, UNDEFINED
    expr = compile_expression('Account.Order.Product.Price')
    expr.evaluate(data, {"vars": {...}}, timeout_ms=1000, max_depth=500)

See ``parse.py`` for why the parser is reused from jsonata-python, and
``CONFORMANCE.md`` for the reference-suite pass rate.
"""

from .api import Expression, compile_expression
from .errors import JsonataError
from .values import UNDEFINED, is_undefined

__all__ = ["UNDEFINED", "Expression", "JsonataError", "compile_expression", "is_undefined"]
