"""parse.py reads the common tokens with regular expressions instead of
jsonata-python's character loop; on every expression of the reference suite
both must produce the same tokens, positions and errors."""

from __future__ import annotations

from typing import Any

import pytest
from jsonata import tokenizer

from engine.jsonata import JsonataError
from engine.jsonata.api import Expression
from engine.jsonata.parse import _fast_tokenizer
from engine.jsonata.suite_runner import load_cases
from tests.jsonata.suite import reference_suite


def _tokens(lexer: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    while True:
        try:
            # the parser asks with prefix=False after an operand, True otherwise;
            # both readings must agree
            tok = lexer.next(len(out) % 2 == 0)
        except Exception as exc:  # the original's own syntax errors
            out.append(("error", type(exc).__name__, getattr(exc, "error", None)))
            return out
        if tok is None:
            return out
        out.append((tok.type, repr(tok.value), tok.position))


def test_fast_tokenizer_matches_the_original_on_the_suite() -> None:
    fast = _fast_tokenizer(tokenizer.Tokenizer)
    sources = {case["expr"] for _, case in load_cases(reference_suite()[0])}
    sources |= {'$x := "a\\"b"; $y.`a b`[0] /* c */ ~> $f(1.5e3, true, null)', "1e400",
                "  name  ", "a and b or c in [1..10]", "$string(5890840712243080)"}
    assert len(sources) > 1000
    differ = [s for s in sources if _tokens(fast(s)) != _original(s)]
    assert differ == []


def _original(source: str) -> list[tuple[Any, ...]]:
    """The original's tokens, its one known fault mended: it reads a character
    past a comment that ends the text, so `a /* c */` and an unclosed comment
    both end in an IndexError where the fast reader ends or raises S0106."""
    out = _tokens(tokenizer.Tokenizer(source))
    if out and out[-1] == ("error", "IndexError", None):
        tail = source[source.rindex("/*"):]
        return out[:-1] + ([] if "*/" in tail else [("error", "JException", "S0106")])
    return out


@pytest.mark.parametrize("generate", [True, False])
@pytest.mark.parametrize(("source", "result"), [
    ("a /* note */", 5), ("a /* note */  ", 5), ("a + /* one */ 1 /**/", 6),
    ("/* first */ a", 5), ("a /* x */ /* y */", 5),
])
def test_a_comment_may_end_the_expression(source: str, result: Any, generate: bool) -> None:
    assert Expression(source, generate=generate).evaluate({"a": 5}) == result


@pytest.mark.parametrize(("source", "position"),
                         [("a /* note", 2), ("/*", 0), ("a /* x */ /* y", 10)])
def test_an_unclosed_comment_is_s0106_at_its_start(source: str, position: int) -> None:
    with pytest.raises(JsonataError) as info:
        Expression(source)
    assert (info.value.code, info.value.position) == ("S0106", position)
