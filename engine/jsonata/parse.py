"""Front end: JSONata source text -> abstract syntax tree.

Decision: we reuse jsonata-python's tokenizer and Pratt parser, including its
post-parse pass (``process_ast``), and compile the tree it produces.  Having
read ``jsonata/parser.py`` it is a faithful port of the reference parser: it
flattens location paths into steps, attaches predicates/stages, resolves the
parent operator (``%``) into ancestor slots, marks tail calls for the
trampoline and reports syntax errors with the reference error codes and
offsets.  Re-deriving all of that would cost days and only risk drifting
from the reference grammar; the evaluation side (where jsonata-python's
defects and slowness live) is entirely our own, in ``compiler.py``.

Importing jsonata-python raises the process-wide recursion limit to 10,000 as
a side effect; we import it lazily, on first compile, and restore the limit.
Building a ``Parser`` registers every symbol (about 4 ms), so each thread keeps one and resets
its per-parse state; parsers are never shared between threads.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from typing import Any

from .errors import JsonataError

_lock = threading.Lock()
_local = threading.local()
_parser_cls: Any = None
_jexception_cls: Any = None


def _load() -> tuple[Any, Any]:
    global _parser_cls, _jexception_cls
    if _parser_cls is None:
        with _lock:
            if _parser_cls is None:
                limit = sys.getrecursionlimit()
                try:
                    from jsonata import jexception, parser
                finally:
                    sys.setrecursionlimit(limit)
                _jexception_cls = jexception.JException
                _parser_cls = parser.Parser
    return _parser_cls, _jexception_cls


# jsonata-python raises bare RuntimeErrors in a few places; map them to codes.
_RUNTIME_CODES = (
    ("Choice groups containing parameterized types", "S0402"),
    ("Type parameters can only be applied", "S0401"),
    ("Formatting or parsing an integer as a sequence", "D3130"),
    ("In a decimal digit pattern", "D3131"),
    ("No matching closing bracket", "D3135"),
    ("Unknown component specifier", "D3132"),
    ("The 'name' modifier", "D3133"),
    ("The timezone integer format specifier", "D3134"),
    ("The date/time picture string is missing", "D3136"),
)


def runtime_error_code(exc: Exception) -> str | None:
    text = str(exc)
    for prefix, code in _RUNTIME_CODES:
        if text.startswith(prefix):
            return code
    return None


class Marker:
    """Stands in for the shared left operand of ``?:`` and ``??``.

    Their parser nodes use the same sub-tree object as both condition and
    result; the post-parse pass would then process (and, for a negative
    literal, negate) it twice.  We cut the second reference before that pass
    and let the compiler evaluate the operand once.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind


DEFAULT = Marker("?:")
COALESCE = Marker("??")


def _detach_shared(node: Any, parser: Any, seen: set[int]) -> None:
    if node is None or id(node) in seen or not hasattr(node, "type"):
        return
    seen.add(id(node))
    if node.type == "condition" and node.then is not None:
        if node.then is node.condition:
            node.then = _marker_symbol(parser, DEFAULT, node.position)
        elif (node.condition is not None and node.condition.type == "function"
              and node.condition.arguments and node.then is node.condition.arguments[0]):
            node.then = _marker_symbol(parser, COALESCE, node.position)
    for attr in ("lhs", "rhs", "condition", "then", "_else", "expression", "body",
                 "procedure", "pattern", "update", "delete", "group"):
        _detach_shared(getattr(node, attr, None), parser, seen)
    for attr in ("expressions", "arguments", "steps", "predicate", "stages", "terms", "rhs_terms"):
        for child in getattr(node, attr, None) or ():
            _detach_shared(child, parser, seen)
    for attr in ("lhs_object", "rhs_object"):
        for pair in getattr(node, attr, None) or ():
            for child in pair:
                _detach_shared(child, parser, seen)


def _marker_symbol(parser: Any, marker: Marker, position: int) -> Any:
    sym = type(parser).Symbol(parser)
    sym.type = "string"
    sym.value = marker
    sym.position = position
    return sym


def _fast_clones(parser: Any) -> None:
    """Give this parser's symbol-table entries a cheaper ``clone``.

    The parser clones a table entry for every token with ``copy.copy`` (a third
    of the parse time).  A plain ``__dict__`` copy is the same shallow copy for
    these slot-less objects; the subclasses are made per entry class, so
    jsonata-python itself is left untouched for other users in the process.
    """
    prefix_cls = type(parser).Prefix
    with_prefix = type(parser).InfixAndPrefix
    made: dict[type, type] = {}
    for sym in parser.symbol_table.values():
        cls = type(sym)
        if cls not in made:
            def clone(self: Any, _new: Any = object.__new__) -> Any:
                c = _new(type(self))
                c.__dict__.update(self.__dict__)
                if isinstance(self, with_prefix):
                    # InfixAndPrefix.clone allocates a fresh prefix symbol per clone
                    c.prefix = prefix_cls(self._outer_instance, c.id)
                return c
            made[cls] = type(cls.__name__, (cls,), {"clone": clone})
        sym.__class__ = made[cls]


_WHITE = re.compile(r"[ \t\n\r]*")
_DIGITS = re.compile(r"(0|([1-9][0-9]*))(\.[0-9]+)?([Ee][-+]?[0-9]+)?")
_fast_class: Any = None


def _fast_tokenizer(base: Any) -> Any:
    """jsonata-python's tokenizer with the common tokens - names, variables,
    numbers, strings without escapes - read by regular expressions.

    The original reads a character at a time and slices the rest of the text
    for every number; on a 30-line mapping that was most of the parse.  Every
    other token (operators, comments, regexes, escapes, back-quoted names) and
    every error still goes through the original ``next``, which produces
    the same tokens for the cases handled here."""
    global _fast_class
    if _fast_class is None:
        from jsonata.jexception import JException
        from jsonata.utils import Utils
        stops = "".join(re.escape(ch) for ch in base.operators if len(ch) == 1)
        name_re = re.compile(f"[^ \\t\\n\\r{stops}]+")
        stop_set = frozenset(ch for ch in base.operators if len(ch) == 1) | set("/`")
        keywords: dict[str, tuple[str, Any]] = {
            "and": ("operator", "and"), "or": ("operator", "or"), "in": ("operator", "in"),
            "true": ("value", True), "false": ("value", False), "null": ("value", None)}

        class Fast(base):
            def next(self: Any, prefix: bool) -> Any:
                path: str = self.path
                pos: int = self.position
                while True:
                    white = _WHITE.match(path, pos)
                    pos = white.end() if white else pos
                    if pos >= self.length:
                        self.position = pos
                        return None
                    if not path.startswith("/*", pos):
                        break
                    # a comment, read here: the original reads one character past
                    # one that ends the text, and fails `a /* note */` as unclosed
                    end = path.find("*/", pos + 2)
                    if end == -1:
                        raise JException("S0106", pos)
                    pos = end + 2
                c = path[pos]
                if c in stop_set:
                    self.position = pos
                    return base.next(self, prefix)
                if c == '"' or c == "'":
                    end = path.find(c, pos + 1)
                    if end == -1 or path.find("\\", pos + 1, end) != -1:
                        self.position = pos
                        return base.next(self, prefix)
                    self.position = end + 1
                    return self.create("string", path[pos + 1:end])
                if "0" <= c <= "9":
                    m = _DIGITS.match(path, pos)
                    num = float(m.group(0)) if m else math.nan
                    if not math.isfinite(num):
                        self.position = pos
                        return base.next(self, prefix)  # raises S0102
                    self.position = m.end()  # type: ignore[union-attr]
                    return self.create("number", Utils.convert_number(num))
                m = name_re.match(path, pos)
                assert m is not None
                self.position = end = m.end()
                if c == "$":
                    return self.create("variable", path[pos + 1:end])
                name = path[pos:end]
                kind, value = keywords.get(name, ("name", name))
                return self.create(kind, value)

        _fast_class = Fast
    return _fast_class


def parse(source: str) -> Any:
    """Parse ``source`` into the processed AST, raising JsonataError on syntax errors."""
    parser_cls, jexc = _load()
    from jsonata import tokenizer
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = parser_cls()
        _fast_clones(parser)
    parser.node, parser.lexer, parser.errors = None, None, []
    parser.ancestor_label, parser.ancestor_index, parser.ancestry = 0, 0, []
    try:
        # the steps of Parser.parse, with the shared-operand fix in the middle
        parser.source = source
        parser.lexer = _fast_tokenizer(tokenizer.Tokenizer)(source)
        parser.advance()
        expr = parser.expression(0)
        if parser.node.id != "(end)":
            raise jexc("S0201", parser.node.position, parser.node.value)
        if "?:" in source or "??" in source:
            # only these operators share an operand sub-tree; skip the walk otherwise
            _detach_shared(expr, parser, set())
        expr = parser.process_ast(expr)
        if expr.type == "parent" or expr.seeking_parent is not None:
            raise jexc("S0217", expr.position, expr.type)
        return expr
    except jexc as exc:
        code = exc.error
        if code == "S0301" and exc.current is not None:
            code = "S0103"  # jsonata-python reports a bad string escape with the regex code
        found, expected = exc.current, exc.expected
        if code in ("S0202", "S0203"):
            # jsonata-python's Parser.advance passes the token it wanted as the
            # current one and the token it met as the expected one
            found, expected = expected, found
        raise JsonataError(code, position=exc.location, token=found, value=expected) from None
    except IndexError:
        # the tokenizer runs off the end of the text inside an unclosed comment
        code = "S0106" if "/*" in source else "S0201"
        raise JsonataError(code, position=len(source)) from None
    except RecursionError:
        raise JsonataError("S0201", "Expression nested too deeply", position=0) from None
    except KeyError as exc:
        # the tokenizer indexes its operator table with unknown characters
        raise JsonataError("S0204", position=parser.lexer.position if parser.lexer else 0,
                           token=exc.args[0] if exc.args else None) from None
    except RuntimeError as exc:
        code = runtime_error_code(exc)
        if code is None:
            raise
        raise JsonataError(code, position=0) from None
