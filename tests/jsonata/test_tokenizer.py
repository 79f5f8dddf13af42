"""parse.py reads the common tokens with regular expressions instead of
jsonata-python's character loop; on every expression of the reference suite
both must produce the same tokens, positions and errors."""

from __future__ import annotations

from typing import Any

from jsonata import tokenizer

from engine.jsonata.parse import _fast_tokenizer
from engine.jsonata.suite_runner import load_cases, suite_dir


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
    sources = {case["expr"] for _, case in load_cases(suite_dir())}
    sources |= {'$x := "a\\"b"; $y.`a b`[0] /* c */ ~> $f(1.5e3, true, null)', "1e400",
                "  name  ", "a and b or c in [1..10]", "$string(5890840712243080)"}
    assert len(sources) > 1000
    differ = [s for s in sources if _tokens(fast(s)) != _tokens(tokenizer.Tokenizer(s))]
    assert differ == []
