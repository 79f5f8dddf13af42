"""The transform operator ``| pattern | update [, delete] |``.

Evaluates to a function that deep-copies its argument (via whatever
``$clone`` is in scope, as the language specifies) and applies the update and
delete clauses to each node the pattern selects - the input is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import JsonataError
from .runtime import Builtin, Frame, apply_fn
from .values import UNDEFINED, is_function

if TYPE_CHECKING:
    from .compiler import Compiler, Fn


def compile_transform(c: Compiler, node: Any) -> Fn:
    pattern = c.compile(node.pattern)
    update = c.compile(node.update)
    delete = c.compile(node.delete) if node.delete is not None else None
    position = node.position

    def transform(inp: Any, env: Frame) -> Any:
        def transformer(obj: Any) -> Any:
            if obj is UNDEFINED:
                return UNDEFINED
            clone = env.lookup("clone")
            if not is_function(clone):
                raise JsonataError("T2013", position=position)
            result = apply_fn(clone, [obj], None, env)
            matches = pattern(result, env)
            if matches is UNDEFINED:
                return result
            if not isinstance(matches, list):
                matches = [matches]
            for match in matches:
                upd = update(match, env)
                if upd is not UNDEFINED:
                    if not isinstance(upd, dict):
                        raise JsonataError("T2011", position=position, value=upd)
                    if isinstance(match, dict):
                        match.update(upd)
                if delete is not None:
                    dels = delete(match, env)
                    if dels is UNDEFINED:
                        continue
                    val = dels
                    if not isinstance(dels, list):
                        dels = [dels]
                    if not all(isinstance(d, str) for d in dels):
                        raise JsonataError("T2012", position=position, value=val)
                    if isinstance(match, dict):
                        for d in dels:
                            match.pop(d, None)
            return result

        return Builtin("transform", transformer, "<(oa):o>", 1)

    return transform
