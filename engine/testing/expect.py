"""Compare what a case's run did with what the case expects; describe every difference.

Each difference is a `Failure` that names the expectation (with its line in the test file), the
flow step concerned (with its line in the flow file) and shows expected against actual as a
unified diff of pretty-printed JSON, so an analyst sees exactly which field changed.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from engine.compiled import CompiledFlow
from engine.envelope import Envelope
from engine.expressions import ExpressionError
from engine.records import DeadLetter, RunState
from engine.testing.mock_http import Call, url_matches
from engine.testing.model import Case
from engine.yamlsrc import Source

_MISSING = "<missing>"


@dataclass
class Failure:
    """One expectation that did not hold."""

    what: str  # e.g. "expect.body_subset"
    message: str
    at: str = ""  # test file position of the expectation
    step: str = ""  # the flow step concerned, with its file and line
    expected: Any = None
    actual: Any = None
    diff: bool = False

    def render(self) -> str:
        head = f"{self.at} {self.what}: {self.message}" if self.at else \
            f"{self.what}: {self.message}"
        lines = [head]
        if self.step:
            lines.append(f"  step concerned: {self.step}")
        if self.diff:
            lines.extend("  " + line for line in json_diff(self.expected, self.actual))
        return "\n".join(lines)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def json_diff(expected: Any, actual: Any) -> list[str]:
    return list(difflib.unified_diff(pretty(expected).splitlines(), pretty(actual).splitlines(),
                                     "expected", "actual", lineterm="", n=3))


def is_subset(expected: Any, actual: Any) -> bool:
    """Mappings may hold more keys than expected; lists match item by item, same length."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            is_subset(e, a) for e, a in zip(expected, actual, strict=True))
    # True == 1 in Python, but not in the JSON the flow sends on
    return bool(expected == actual) and isinstance(expected, bool) == isinstance(actual, bool)


def project(actual: Any, expected: Any) -> Any:
    """*actual* cut down to the keys *expected* names, so a subset diff shows only those."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: project(actual[k], v) if k in actual else _MISSING
                for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [project(a, e) for e, a in zip(expected, actual, strict=True)]
    return actual


def where(flow: CompiledFlow, step_id: str | None) -> str:
    if step_id is None or step_id not in flow.index:
        return ""
    step = flow.steps[flow.index[step_id]]
    return f"{flow.file}:{step.line} step '{step.id}' ({step.kind})"


@dataclass
class CaseOutcome:
    """What one case's run did."""

    states: list[RunState]
    calls: list[Call]
    #: (step, delay in seconds) for every retry the first run scheduled, in order
    delays: list[tuple[str, float]]
    #: the step of the first run that last changed the body ("body") and each var ("vars.x")
    writers: dict[str, str]


def check(case: Case, index: int, source: Source, flow: CompiledFlow, out: CaseOutcome,
          asserts: list[Any]) -> list[Failure]:
    """Every difference between *case*'s expectations and *out*."""
    exp = case.expect
    state = out.states[0]
    env = state.envelope
    route = [r["id"] for r in state.steps]
    failures: list[Failure] = []

    def at(*path: str | int) -> str:
        line, column = source.position(("cases", index, "expect", *path), key=True)
        return f"{source.file}:{line}:{column}"

    def fail(key: str, message: str, step: str | None = None, **kw: Any) -> None:
        failures.append(Failure(f"expect.{key}", message, at(key), where(flow, step), **kw))

    status = exp.status or ("dead_lettered" if exp.dead_letter else None)
    if status and status != state.status:
        error = (state.error or {}).get("message")
        ended = (state.error or {}).get("step") or (route[-1] if route else None)
        fail("status" if exp.status else "dead_letter",
             f"expected {status}, the run ended {state.status}"
             + (f" at step '{ended}': {error}" if error else ""), ended)
    if exp.route is not None and exp.route != route:
        failures.append(route_failure(exp.route, route, flow, at("route")))
    body_step = out.writers.get("body")
    if "body" in exp.model_fields_set and env["body"] != exp.body:
        fail("body", "the final body differs", body_step, expected=exp.body,
             actual=env["body"], diff=True)
    if "body_subset" in exp.model_fields_set and not is_subset(exp.body_subset, env["body"]):
        fail("body_subset", "the final body differs", body_step, expected=exp.body_subset,
             actual=project(env["body"], exp.body_subset), diff=True)
    for j, compiled in enumerate(asserts):
        failures.extend(_assert(compiled, env, at("assert", j) if isinstance(exp.assert_, list)
                                else at("assert"), where(flow, body_step)))
    if exp.vars is not None:
        actual = {k: env["vars"].get(k, _MISSING) for k in exp.vars}
        if actual != exp.vars:
            name = next(k for k in exp.vars if actual[k] != exp.vars[k])
            fail("vars", f"var '{name}' differs", out.writers.get(f"vars.{name}"),
                 expected=exp.vars, actual=actual, diff=True)
    for j, call_exp in enumerate(exp.calls):
        failures.extend(_calls(call_exp, [c for c in out.calls if c.step == call_exp.step],
                               at("calls", j), where(flow, call_exp.step)))
    for j, retry in enumerate(exp.retries):
        failures.extend(_retries(retry, state, out.delays, at("retries", j),
                                 where(flow, retry.step)))
    if exp.dead_letter and state.status == "dead_lettered":
        failures.extend(_dead_letter(exp.dead_letter, state, at("dead_letter"), flow))
    if exp.events is not None:
        # like calls: the run's and those of the runs it started (split items, hand-offs)
        published = [e for run in out.states for e in run.envelope["meta"].get("events", [])]
        failures.extend(_events(exp.events, published, at("events")))
    return failures


def _events(expected: list[Any], published: list[dict[str, Any]], at: str) -> list[Failure]:
    actual = [{k: e.get(k) for k in ("type", "key", "data")} for e in published]
    if len(expected) != len(published):
        return [Failure("expect.events", f"the run and the runs it started published "
                        f"{len(published)} event(s), expected {len(expected)}", at,
                        expected=[e.model_dump(exclude_unset=True) for e in expected],
                        actual=actual, diff=True)]
    out = []
    for n, (exp, event) in enumerate(zip(expected, actual, strict=True), 1):
        ok = exp.type == event["type"] and ("key" not in exp.model_fields_set
                                            or exp.key == event["key"])
        ok = ok and ("data" not in exp.model_fields_set or exp.data == event["data"])
        ok = ok and ("data_subset" not in exp.model_fields_set
                     or is_subset(exp.data_subset, event["data"]))
        if not ok:
            shown = event if "data_subset" not in exp.model_fields_set else \
                {**event, "data": project(event["data"], exp.data_subset)}
            out.append(Failure("expect.events", f"event {n} of {len(published)} differs", at,
                               expected=exp.model_dump(exclude_unset=True), actual=shown,
                               diff=True))
    return out


def route_failure(expected: list[str], route: list[str], flow: CompiledFlow, at: str,
                  partial: bool = False) -> Failure:
    """The steps taken differ; the step concerned is the one before they part (it chose)."""
    split = next((i for i, (e, a) in enumerate(zip(expected, route, strict=False)) if e != a),
                 min(len(expected), len(route)))
    concerned = route[split - 1] if split > 0 else (route[0] if route else None)
    so_far = " (as far as the run got)" if partial else ""
    return Failure("expect.route", f"the steps taken{so_far} differ from step {split + 1} on",
                   at, where(flow, concerned), expected=expected, actual=route, diff=True)


def _assert(compiled: Any, env: dict[str, Any], at: str, step: str) -> list[Failure]:
    doc = {k: env[k] for k in ("body", "headers", "vars", "meta")}
    try:
        value = compiled.evaluate(Envelope(doc, env["headers"], env["vars"], env["meta"]))
    except ExpressionError as exc:
        return [Failure("expect.assert", f"{compiled.source!r} failed: {exc}", at, step)]
    if value is True:
        return []
    return [Failure("expect.assert", f"{compiled.source!r} is {json.dumps(value, default=str)}, "
                    "expected true", at, step)]


def _calls(exp: Any, calls: list[Call], at: str, step: str) -> list[Failure]:
    out = []
    if exp.count is not None and exp.count != len(calls):
        made = "".join(f"\n    {c.method} {c.url}" for c in calls)
        out.append(Failure("expect.calls", f"step '{exp.step}' made {len(calls)} call(s), "
                           f"expected {exp.count}{made}", at, step))
    for n, call in enumerate(calls, 1):
        label = f"call {n} of {len(calls)} by '{exp.step}' ({call.method} {call.url})"
        if exp.url is not None and not url_matches(call.url, exp.url):
            out.append(Failure("expect.calls", f"{label} does not match url {exp.url}", at, step))
        if "body" in exp.model_fields_set and call.body != exp.body:
            out.append(Failure("expect.calls", f"{label}: body differs", at, step,
                               expected=exp.body, actual=call.body, diff=True))
        if "body_subset" in exp.model_fields_set and not is_subset(exp.body_subset, call.body):
            out.append(Failure("expect.calls", f"{label}: body differs", at, step,
                               expected=exp.body_subset, actual=project(call.body,
                                                                        exp.body_subset),
                               diff=True))
        if exp.headers:
            sent = {k.lower(): v for k, v in call.headers.items()}
            actual = {k: sent.get(k.lower(), _MISSING) for k in exp.headers}
            if actual != exp.headers:
                out.append(Failure("expect.calls", f"{label}: headers differ", at, step,
                                   expected=exp.headers, actual=actual, diff=True))
    return out


def _retries(exp: Any, state: RunState, delays: list[tuple[str, float]], at: str,
             step: str) -> list[Failure]:
    mine = [round(d, 6) for s, d in delays if s == exp.step]
    records = [r for r in state.steps if r["id"] == exp.step]
    attempts = records[-1]["attempts"] if records else len(mine) + 1 if mine else 0
    out = []
    if exp.attempts is not None and exp.attempts != attempts:
        out.append(Failure("expect.retries", f"step '{exp.step}' was attempted {attempts} "
                           f"time(s), expected {exp.attempts}", at, step))
    for name, bounds, ok in (("delays_at_least", exp.delays_at_least, lambda d, b: d >= b),
                             ("delays_at_most", exp.delays_at_most, lambda d, b: d <= b)):
        if bounds is None:
            continue
        if len(bounds) != len(mine) or not all(ok(d, b) for d, b in
                                               zip(mine, bounds, strict=False)):
            out.append(Failure("expect.retries", f"step '{exp.step}': scheduled delays (s) do not "
                               f"satisfy {name}", at, step, expected={name: bounds},
                               actual={"delays": mine}, diff=True))
    return out


def _dead_letter(exp: Any, state: RunState, at: str, flow: CompiledFlow) -> list[Failure]:
    entry = DeadLetter.for_run(state)
    reason = entry.reason or {}
    text = f"{reason.get('message', '')}\n{json.dumps(reason.get('detail'), default=str)}"
    concerned = where(flow, entry.step)
    out = []
    if exp.step is not None and exp.step != entry.step:
        out.append(Failure("expect.dead_letter", f"dead-lettered at step '{entry.step}', "
                           f"expected '{exp.step}': {reason.get('message')}", at, concerned))
    if exp.reason_contains is not None and exp.reason_contains not in text:
        out.append(Failure("expect.dead_letter", f"the reason does not contain "
                           f"{exp.reason_contains!r}; it is: {reason.get('message')}", at,
                           concerned))
    if exp.kind is not None and exp.kind != reason.get("kind"):
        out.append(Failure("expect.dead_letter", f"error kind is {reason.get('kind')!r}, "
                           f"expected {exp.kind!r}", at, concerned))
    return out
