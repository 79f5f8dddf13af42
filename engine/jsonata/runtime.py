"""Run-time support for compiled JSONata: frames, per-evaluation state,
function values and function application (with the tail-call trampoline).

All mutable state lives in objects created per evaluation (``State`` and the
``Frame`` chain hanging off it), so one compiled expression can be evaluated
concurrently from many threads.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

import regex as regex_engine

from .errors import JsonataError
from .limits import MAX_ARRAY
from .signature import Signature
from .values import UNDEFINED, Seq, float_overflow, is_function, js_number_str, out_of_range

#: items a loop may visit between two readings of the clock
PACE = 4096


class Frame:
    """A variable scope; lookups walk the parent chain."""

    __slots__ = ("parent", "state", "vars")

    def __init__(self, parent: Frame | None, state: State | None = None,
                 variables: dict[str, Any] | None = None) -> None:
        self.parent = parent
        if state is None:
            assert parent is not None
            state = parent.state
        self.state: State = state
        self.vars = variables if variables is not None else {}

    def lookup(self, name: str) -> Any:
        f: Frame | None = self
        while f is not None:
            v = f.vars
            if name in v:
                return v[name]
            f = f.parent
        return UNDEFINED


class State(Frame):
    """Per-evaluation state: the clock reading, the bounds and the current
    call depth (used to bound recursion the way the reference does).  It is
    also the evaluation's outermost frame (one object made per evaluation,
    not two); a frame's ``state`` is this object.

    ``budget`` counts down the items loops visit; reading the clock only when
    it runs out keeps the timeout check off the per-item path while still
    catching a runaway loop that calls no function."""

    __slots__ = ("budget", "deadline", "depth", "max_depth", "now_ms", "pending", "room",
                 "shadow", "timeout_ms")

    def __init__(self, timeout_ms: int | None, max_depth: int | None,
                 parent: Frame | None = None, variables: dict[str, Any] | None = None) -> None:
        self.parent = parent
        self.state = self
        self.vars = variables if variables is not None else {}
        self.now_ms = int(time.time() * 1000)
        self.timeout_ms = timeout_ms
        self.deadline = (time.monotonic() + timeout_ms / 1000.0) if timeout_ms else None
        self.max_depth = max_depth
        self.depth = 0
        self.budget = PACE
        # values the result may hold once copied out (see values.export)
        self.room = MAX_ARRAY
        # True when a binding or $eval may have rebound a library function's name
        self.shadow = False
        # the error of a non-finite number put into a generated result (see
        # gen_runtime.export_deferred), raised when the result is complete
        self.pending: JsonataError | None = None

    def tick(self) -> None:
        """The loop budget ran out: check the clock and grant a new one."""
        self.budget = PACE
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise timeout_error()


def timeout_error() -> JsonataError:
    return JsonataError("U1001", "Expression evaluation timeout: check for infinite loop")


def pace(items: Any, state: State) -> Any:
    """``items`` to loop over, charged to the time budget: a short sequence
    costs one subtraction; a long one is walked with a clock check every
    :data:`PACE` items, so even a single huge loop honours the timeout."""
    n = len(items)
    if n <= PACE:
        state.budget -= n
        if state.budget < 0:
            state.tick()
        return items
    return _paced(items, state)


def _paced(items: Any, state: State) -> Any:
    for start in range(0, len(items), PACE):
        state.tick()
        yield from items[start:start + PACE]


class Builtin:
    """A native function of the JSONata library."""

    __slots__ = ("arity", "impl", "name", "needs_env", "signature")

    def __init__(self, name: str, impl: Callable[..., Any], signature: str | None,
                 arity: int, needs_env: int = 0) -> None:
        self.name = name
        self.impl = impl
        self.signature = Signature(signature) if signature else None
        self.arity = arity
        self.needs_env = needs_env

    def __call__(self, *args: Any) -> Any:  # lets Python callers use library functions
        return self.impl(*args)


class Lambda:
    """A user-defined ``function($a, $b) { ... }`` closed over its frame."""

    __slots__ = ("arity", "body", "env", "input", "params", "signature")

    def __init__(self, params: list[str], body: Callable[[Any, Frame], Any], env: Frame,
                 inp: Any, signature: Signature | None) -> None:
        self.params = params
        self.body = body
        self.env = env
        self.input = inp
        self.signature = signature
        self.arity = len(params)

    def __call__(self, *args: Any) -> Any:
        return apply_fn(self, list(args), UNDEFINED, self.env)


class Thunk:
    """A pending tail call returned to the trampoline in :func:`apply_fn`."""

    __slots__ = ("args", "env", "input", "position", "proc", "token")

    def __init__(self, proc: Callable[[Any, Frame], Any], args: list[Callable[[Any, Frame], Any]],
                 inp: Any, env: Frame, position: int, token: Any) -> None:
        self.proc = proc
        self.args = args
        self.input = inp
        self.env = env
        self.position = position
        self.token = token


class Partial:
    """A partially applied function: ``?`` placeholders are filled at call time."""

    __slots__ = ("arity", "env", "proc", "template")

    def __init__(self, proc: Any, template: list[Any], env: Frame) -> None:
        self.proc = proc
        self.template = template
        self.env = env
        self.arity = sum(1 for a in template if a is PLACEHOLDER)

    def __call__(self, *args: Any) -> Any:
        return apply_fn(self, list(args), UNDEFINED, self.env)


class Chain:
    """Function composition produced by ``$f ~> $g``."""

    __slots__ = ("arity", "first", "second")

    def __init__(self, first: Any, second: Any) -> None:
        self.first = first
        self.second = second
        self.arity = 1

    def __call__(self, *args: Any) -> Any:
        raise TypeError("call through apply_fn")


PLACEHOLDER: Any = object()


def arity_of(f: Any) -> int:
    a = getattr(f, "arity", None)
    if isinstance(a, int):
        return a
    if isinstance(f, re.Pattern):
        return 1
    try:
        import inspect
        return len([p for p in inspect.signature(f).parameters.values()
                    if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):
        return 1


def check_bounds(state: State, depth: int) -> None:
    if state.max_depth is not None and depth > state.max_depth:
        raise JsonataError("U1001")
    if state.deadline is not None and time.monotonic() > state.deadline:
        raise timeout_error()


def apply_at_depth(fn: Any, vals: list[Any], inp: Any, env: Frame, static_depth: int,
                   position: int | None, token: Any) -> Any:
    """Apply ``fn`` from a call site ``static_depth`` levels into its function
    body: the recursion depth is counted (and bounded) here, and errors get
    the site's position and the function's name."""
    state = env.state
    base = state.depth
    here = base + static_depth
    if state.max_depth is not None or state.deadline is not None:
        check_bounds(state, here + 1)
    state.depth = here
    try:
        return apply_fn(fn, vals, inp, env)
    except JsonataError as err:
        mark_error(err, position, token)
        raise
    finally:
        state.depth = base


def mark_error(err: JsonataError, position: int | None, token: Any) -> None:
    """Give an error from inside a call the call site's position and name,
    unless something nearer the cause already did."""
    if err.position is None:
        err.position = position
    if err.token is None:
        err.token = token


def apply_fn(proc: Any, args: list[Any], inp: Any, env: Frame) -> Any:
    """Apply any JSONata function value, running tail calls in a loop."""
    result = _apply_inner(proc, args, inp, env)
    while type(result) is Thunk:
        th = result
        nxt = th.proc(th.input, th.env)
        nargs = [a(th.input, th.env) for a in th.args]
        try:
            result = _apply_inner(nxt, nargs, inp, env)
        except JsonataError as err:
            if err.position is None:
                err.position = th.position
            if err.token is None:
                err.token = th.token
            raise
    return result


def _apply_inner(proc: Any, args: list[Any], inp: Any, env: Frame) -> Any:
    tp = type(proc)
    if tp is Lambda:
        if proc.signature is not None:
            args = proc.signature.validate(args, inp)
        check = env.state
        if check.deadline is not None:
            check_bounds(check, 0)
        frame = Frame(proc.env, env.state)
        fv = frame.vars
        for i, name in enumerate(proc.params):
            fv[name] = args[i] if i < len(args) else UNDEFINED
        return proc.body(proc.input, frame)
    if tp is Builtin:
        if proc.signature is not None:
            args = proc.signature.validate(args, inp)
        try:
            if proc.needs_env:
                if proc.needs_env == 2:
                    return proc.impl(env, inp, *args)
                return proc.impl(env, *args)
            return proc.impl(*args)
        except JsonataError as err:
            if err.token is None:
                err.token = proc.name
            raise
        except OverflowError:  # an integer argument made a float ($formatNumber)
            raise float_overflow(None, proc.name) from None
    if tp is Partial:
        it = iter(args)
        full = [next(it, UNDEFINED) if a is PLACEHOLDER else a for a in proc.template]
        return apply_fn(proc.proc, full, inp, env)
    if tp is Chain:
        return apply_fn(proc.second, [apply_fn(proc.first, args, inp, env)], inp, env)
    if isinstance(proc, re.Pattern):
        return regex_closure(proc, env.state)(*args)
    if is_function(proc):
        py_args = [None if a is UNDEFINED else a for a in args[: arity_of(proc)]]
        result = proc(*py_args)
        if type(result) is float and result - result != 0:
            raise out_of_range(result, f"the result {js_number_str(result)} of a bound function")
        return UNDEFINED if result is None else result
    raise JsonataError("T1006")


def call_hof(env: Frame, f: Any, *args: Any) -> Any:
    """Call ``f`` from a higher-order builtin, passing as many of ``args`` as it takes."""
    n = arity_of(f)
    return apply_fn(f, list(args[: max(n, 1)]) if n < len(args) else list(args), None, env)


def seq_of(items: list[Any]) -> Seq:
    return Seq(items)


# -- a regex literal applied as a function (the reference matcher-object protocol); searches
# run on the ``regex`` engine, which takes the evaluation's deadline as a timeout --------------
_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE


@functools.lru_cache(maxsize=1024)
def _interruptible(text: str, flags: int) -> Any:
    # the flag values of these four are the same in both modules
    return regex_engine.compile(text, flags | regex_engine.VERSION0)


def search(pattern: re.Pattern[str], s: str, pos: int, state: State | None) -> Any:
    """``pattern.search(s, pos)``, stopped with U1001 at the evaluation's deadline."""
    timeout = None
    if state is not None and state.deadline is not None:
        timeout = state.deadline - time.monotonic()
        if timeout <= 0:  # a loop of many quick searches ($replace of every "a") ran out
            raise timeout_error()
    try:
        return _interruptible(pattern.pattern, pattern.flags & _FLAGS).search(
            s, pos, timeout=timeout)
    except TimeoutError:
        raise timeout_error() from None


def regex_closure(pattern: re.Pattern[str], state: State | None = None) -> Any:
    """A regex applied as a function: returns the reference match object."""

    def run(s: Any = UNDEFINED, start: Any = 0) -> Any:
        if not isinstance(s, str):
            return UNDEFINED
        m = search(pattern, s, int(start or 0), state)
        if m is None:
            return UNDEFINED
        end = m.end()

        def nxt() -> Any:
            if end >= len(s):
                return UNDEFINED
            res = run(s, end)
            if isinstance(res, dict) and res["match"] == "":
                raise JsonataError("D1004", value=pattern.pattern)
            return res

        return {"match": m.group(0), "start": m.start(), "end": end,
                "groups": [g if g is not None else UNDEFINED for g in m.groups()],
                "next": Builtin("next", nxt, None, 0)}

    return run
