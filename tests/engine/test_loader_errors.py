"""Broken flow snippets → the exact problem an analyst sees: line, column, path and message.

One table row per mistake. Each row's YAML is loaded through the real `Loader`; the file must
give no compiled flow and exactly the one error the row names. Further down: one file with five
mistakes reported in one pass, and cross-file checks through `load_paths` and `flowrun validate`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.loader import Loader
from engine.problems import Problem
from tests.conftest import ROOT


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    line: int
    column: int
    path: str
    fragment: str


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _big_mapping_with_error_on_line_40() -> str:
    head = y("""
        flow: big-mapping
        steps:
          - id: shape
            transform:
              jsonata: |
                {
        """)
    body = "".join(f'          "field_{i}": source_{i},\n' for i in range(33))  # lines 7..39
    bad = '          "broken": (1 + ,\n'  # line 40: the ',' is column 26
    return head + body + bad + "        }\n"


def _billion_laughs() -> str:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text + "flow: laughs\nsteps:\n  - id: s\n    set: {x: '1'}\n"


OK_STEP = "  - id: a\n    set: {x: '1'}\n"

CASES = [
    # -- YAML itself -------------------------------------------------------------------------
    Case("tab-before-dash", "flow: f\nsteps:\n\t- id: a\n    set: {x: '1'}\n",
         3, 1, "", "tab character; YAML indents with spaces only"),
    Case("tab-in-step-indent", "flow: f\nsteps:\n  - id: a\n\tset: {x: '1'}\n",
         4, 1, "", "replace the tab with spaces"),
    # indentation: at the line where it went wrong, naming the column it should line up with
    Case("indented-top-level-key", "flow: f\n  steps:\n  - id: a\n",
         2, 3, "", "indentation: 'steps' is indented 2 spaces, but the keys above are at 0 "
         "(line 1)"),
    Case("dedented-step-key", "flow: f\nsteps:\n  - id: a\n    set: {x: '1'}\n   next: end\n",
         5, 4, "", "indentation: 'next' is indented 3 spaces, but the keys above are at 4 "
         "(line 4); the keys of one mapping start in the same column"),
    Case("step-one-space-short", y("""
        flow: f
        steps:
          - id: a
            set: {x: '1'}
         - id: b
           set: {y: '2'}
        """), 5, 2, "", "indentation: this '-' is indented 1 space, but the list above has "
         "its '-' at 2 (line 3)"),
    Case("step-one-space-deep", y("""
        flow: f
        steps:
          - id: a
            set: {x: '1'}
           - id: b
             set: {y: '2'}
        """), 5, 4, "", "this '-' is indented 3 spaces, but the list above has its '-' at 2"),
    Case("step-keys-one-space-short", y("""
        flow: f
        steps:
          - id: a
            set: {x: '1'}
          - id: b
           filter: x > 1
        """), 6, 4, "", "'filter' is indented 3 spaces, but the keys above are at 4 (line 5)"),
    Case("step-key-one-space-deep", "flow: f\nsteps:\n  - id: a\n     set: {x: '1'}\n",
         4, 6, "", "'set' is indented 5 spaces, but the keys above are at 4 (line 3)"),
    Case("nested-key-short", y("""
        flow: f
        steps:
          - id: a
            call:
              http:
                url: http://erp.test/orders
               method: POST
        """), 7, 8, "", "'method' is indented 7 spaces, but the keys above are at 8 (line 6)"),
    Case("route-rule-short", y("""
        flow: f
        steps:
          - id: a
            route:
              - when: x = 1
                goto: b
             - otherwise: b
          - id: b
            set: {x: '1'}
        """), 7, 6, "", "this '-' is indented 5 spaces, but the list above has its '-' at 6 "
         "(line 5)"),
    Case("unquoted-colon-in-value", "flow: f\ndescription: Note: this\nsteps:\n" + OK_STEP,
         2, 18, "", "quote values that contain ': '"),
    Case("duplicate-top-level-key", "flow: f\nflow: g\nsteps:\n" + OK_STEP,
         2, 1, "flow", "duplicate key 'flow' (first defined at line 1)"),
    Case("duplicate-key-in-flow-mapping", "flow: f\nsteps:\n  - id: a\n    set: {x: '1', x: '2'}\n",
         4, 19, "steps[0].set.x", "duplicate key 'x' (first defined at line 4)"),
    Case("unterminated-quote", 'flow: f\nsteps:\n  - id: a\n    set: {x: "open}\n',
         5, 1, "", "found unexpected end of stream"),
    Case("complex-mapping-key", "? [a, b]\n: c\nflow: f\n",
         1, 3, "", "a mapping key must be a plain name"),
    Case("bad-tagged-scalar", "flow: f\nsteps:\n  - id: a\n    transform: !!int x\n",
         4, 16, "steps[0].transform", "'x' cannot be read as !!int"),
    Case("merge-key", y("""
        base: &b {x: '1'}
        flow: f
        steps:
          - id: a
            set:
              <<: *b
        """), 6, 7, "steps[0].set", "merge keys ('<<') are not supported"),
    Case("several-documents", "flow: f\nsteps:\n" + OK_STEP + "---\nflow: g\n",
         6, 1, "", "several YAML documents ('---') in one file"),
    Case("alias-bomb", _billion_laughs(),
         1, 8, "", "more than 250000 values once aliases ('*name') are expanded"),
    # -- the file as a whole -------------------------------------------------------------------
    Case("empty-file", "", 1, 1, "", "empty file; a flow starts with 'flow: <id>'"),
    Case("comment-only-file", "# yaml-language-server: $schema=x\n# nothing else\n\n",
         1, 1, "", "empty file"),
    Case("stray-byte-order-mark", "\n\ufeff\n", 1, 1, "", "empty file"),
    Case("binary-file", b"flow: f\nsteps:\x00\x01\x02\n", 1, 1, "", "contains NUL bytes"),
    Case("invalid-utf8", b"flow: f\nsteps:\n  - id: a\n    set: {x: '\xff'}\n",
         4, 15, "", "not valid UTF-8 (byte 0xff); save the file as UTF-8"),
    Case("five-megabytes", b"flow: f\n" + b"# padding\n" * (5 * 1024 * 1024 // 10),
         1, 1, "", "file is 5.0 MB; a flow file may be at most 1 MB"),
    Case("top-level-list", "- flow: f\n- steps: []\n",
         1, 1, "", "a flow file is a mapping starting with 'flow: <id>'"),
    Case("top-level-scalar", "just some words\n", 1, 1, "", "a flow file is a mapping"),
    Case("missing-flow-id", "steps:\n" + OK_STEP, 1, 1, "", "flow: field required"),
    Case("missing-steps", "flow: f\ndescription: nothing to do\n", 1, 1, "",
         "steps: field required"),
    Case("unknown-top-level-key-close", "flow: f\ndescripton: x\nsteps:\n" + OK_STEP,
         2, 1, "descripton", "unknown key 'descripton'; did you mean 'description'?"),
    Case("unknown-top-level-key-far", "flow: f\nzzz: 1\nsteps:\n" + OK_STEP,
         2, 1, "zzz", "allowed here: concurrency, defaults, description, flow, key, queue"),
    # -- ids and types -------------------------------------------------------------------------
    Case("flow-id-with-capitals", "flow: OrderIntake\nsteps:\n" + OK_STEP,
         1, 7, "flow", "'OrderIntake' does not have the expected form"),
    Case("flow-id-number", "flow: 12\nsteps:\n" + OK_STEP,
         1, 7, "flow", "input should be a valid string, got int 12"),
    Case("step-id-with-space", "flow: f\nsteps:\n  - id: Bad Id\n    set: {x: '1'}\n",
         3, 9, "steps[0].id", "'Bad Id' does not have the expected form"),
    Case("empty-steps-list", "flow: f\nsteps: []\n", 2, 8, "steps",
         "needs at least 1 item, got 0"),
    Case("steps-is-a-string", "flow: f\nsteps: transform\n", 2, 8, "steps",
         "input should be a valid list, got str 'transform'"),
    Case("methods-is-a-string", y("""
        flow: f
        trigger:
          webhook:
            path: /hooks/f
            methods: POST
        steps:
          - id: a
            set: {x: '1'}
        """), 5, 14, "trigger.webhook.methods", "input should be a valid list, got str 'POST'"),
    Case("concurrency-not-a-number", "flow: f\nconcurrency: many\nsteps:\n" + OK_STEP,
         2, 14, "concurrency", "valid integer, unable to parse string as an integer"),
    Case("validate-config-is-a-string",
         "flow: f\nsteps:\n  - id: a\n    validate: canonical/order.v1\n",
         4, 15, "steps[0].validate", "expected a mapping (key: value pairs), got str"),
    Case("set-value-is-a-number", "flow: f\nsteps:\n  - id: a\n    set: {x: 1}\n",
         4, 14, "steps[0].set.x", "expected an expression (a JSONata string), got 1"),
    Case("set-empty-mapping", "flow: f\nsteps:\n  - id: a\n    set: {}\n",
         4, 10, "steps[0].set", "needs at least 1 entry, got 0"),
    Case("set-bad-variable-name", "flow: f\nsteps:\n  - id: a\n    set: {2x: '1'}\n",
         4, 11, "steps[0].set.2x", "'2x' is not a valid variable name"),
    Case("output-not-body-or-vars", "flow: f\nsteps:\n" + OK_STEP + "    output: body2\n",
         5, 13, "steps[0].output", "'body2' does not have the expected form"),
    Case("fail-without-reason", "flow: f\nsteps:\n  - id: a\n    fail: {}\n",
         4, 5, "steps[0].fail", "reason: field required"),
    Case("log-level-unknown",
         "flow: f\nsteps:\n  - id: a\n    log: {message: '\"x\"', level: loud}\n",
         4, 34, "steps[0].log.level", "'loud' is not allowed; expected 'debug', 'info'"),
    # -- step kinds ----------------------------------------------------------------------------
    # at the key that is wrong, not at the step's first line
    Case("unknown-step-kind", "flow: f\nsteps:\n  - id: a\n    transfrom: total\n",
         4, 5, "steps[0].transfrom", "unknown step kind 'transfrom'; did you mean 'transform'?"),
    Case("unknown-step-kind-below-other-keys", y("""
        flow: f
        steps:
          - id: a
            description: the ERP call
            retry: {max_attempts: 2}
            output: vars.erp
            cal:
              http: {method: POST, url: "http://erp.test/orders"}
        """), 7, 5, "steps[0].cal", "unknown step kind 'cal'; did you mean 'call'?"),
    Case("unknown-step-kind-far", "flow: f\nsteps:\n  - id: a\n    zzz: total\n",
         4, 5, "steps[0].zzz", "unknown step kind 'zzz'; known kinds: "),
    Case("two-kinds-in-one-step", "flow: f\nsteps:\n  - id: a\n    transform: x\n    filter: y\n",
         5, 5, "steps[0].filter", "a step has exactly one kind; this one has transform and filter"),
    Case("step-without-kind", "flow: f\nsteps:\n  - id: a\n    description: nothing\n",
         3, 5, "steps[0]", "the step has no kind; add one of:"),
    Case("step-is-a-string", "flow: f\nsteps:\n  - transform total\n",
         3, 5, "steps[0]", "a step is a mapping with 'id:' and one kind"),
    Case("duplicate-step-ids", "flow: f\nsteps:\n" + OK_STEP + "  - id: a\n    set: {y: '2'}\n",
         5, 9, "steps[1].id", "duplicate step id 'a' (first used at line 3)"),
    # -- expressions ---------------------------------------------------------------------------
    # jsonata reports the offset just after the offending token: the ',' is column 26
    Case("jsonata-syntax-error-line-40", _big_mapping_with_error_on_line_40(),
         40, 27, "steps[0].transform.jsonata", "The symbol , cannot be used as a unary operator"),
    Case("jsonata-syntax-error-quoted", "flow: f\nsteps:\n  - id: a\n    filter: 'total > '\n",
         4, 22, "steps[0].filter", "Unexpected end of expression"),
    # a missing `)`: what was expected, then what was found, at the token found
    Case("jsonata-missing-paren-before-brace",
         "flow: f\nsteps:\n  - id: a\n    transform: '{\"total\": $sum(lines.(qty * price)}'\n",
         4, 52, "steps[0].transform", 'Expected ")", got "}" (S0202)'),
    Case("jsonata-missing-paren-at-end",
         "flow: f\nsteps:\n  - id: a\n    transform: '$sum(lines.(qty * price)'\n",
         4, 41, "steps[0].transform", 'Expected ")" before end of expression (S0203)'),
    Case("jsonata-unexpected-name", "flow: f\nsteps:\n  - id: a\n    filter: '(a b)'\n",
         4, 18, "steps[0].filter", 'JSONata syntax error: Expected ")", got "b" (S0202)'),
    Case("jmespath-syntax-error", y("""
        flow: f
        steps:
          - id: a
            transform: {jmespath: 'orders[?total > ]'}
        """), 4, 44, "steps[0].transform.jmespath", "JMESPath syntax error: invalid token"),
    Case("flow-key-syntax-error", "flow: f\nkey: 'order.'\nsteps:\n" + OK_STEP,
         2, 13, "key", "Unexpected end of expression"),
    # -- route ---------------------------------------------------------------------------------
    Case("route-to-missing-step", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: region = "eu"
                goto: erp_eu2
              - otherwise: erp_eu
          - id: erp_eu
            set: {x: '1'}
        """), 6, 15, "steps[0].route[0].goto",
         "no step 'erp_eu2' in this flow; did you mean 'erp_eu'?"),
    Case("route-otherwise-to-missing-step", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: region = "eu"
                goto: erp_eu
              - otherwise: erp_us2
          - id: erp_eu
            set: {x: '1'}
          - id: erp_us
            set: {x: '2'}
        """), 7, 20, "steps[0].route[1].otherwise",
         "no step 'erp_us2' in this flow; did you mean 'erp_us'?"),
    Case("otherwise-not-last", y("""
        flow: f
        steps:
          - id: pick
            route:
              - otherwise: b
              - when: x
                goto: b
          - id: b
            set: {x: '1'}
        """), 5, 9, "steps[0].route[0].otherwise", "'otherwise' must be the last rule of a route"),
    Case("route-rule-two-targets", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: x
                goto: b
                drop: true
          - id: b
            set: {x: '1'}
        """), 5, 9, "steps[0].route[0]", "needs exactly one target: goto, flow, drop: true or "
         "dead_letter: reason (found goto, drop)"),
    Case("route-rule-no-target", "flow: f\nsteps:\n  - id: a\n    route:\n      - when: x\n",
         5, 9, "steps[0].route[0]", "(found none)"),
    Case("otherwise-step-and-goto", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: x
                goto: b
              - otherwise: b
                goto: c
          - id: b
            set: {x: '1'}
          - id: c
            set: {x: '2'}
        """), 7, 9, "steps[0].route[1]", "'otherwise: step' already names the target"),
    Case("otherwise-to-itself", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: x
                dead_letter: unknown region
              - otherwise: pick
        """), 7, 20, "steps[0].route[1].otherwise", "a route cannot go to its own step"),
    Case("yaml-no-is-a-boolean", y("""
        flow: f
        steps:
          - id: pick
            route:
              - when: x
                dead_letter: no
              - otherwise: keep
          - id: keep
            set: {x: '1'}
        """), 6, 22, "steps[0].route[0].dead_letter", "valid string, got bool False"),
    Case("route-to-itself", y("""
        flow: f
        steps:
          - id: a
            route:
              - when: x
                goto: a
        """), 6, 15, "steps[0].route[0].goto", "a route cannot go to its own step"),
    Case("route-is-a-mapping", "flow: f\nsteps:\n  - id: a\n    route: {when: x, goto: a}\n",
         4, 12, "steps[0].route", "input should be a valid list, got a mapping"),
    # -- next, on_failure, defaults, retry -----------------------------------------------------
    Case("next-to-missing-step", y("""
        flow: f
        steps:
          - id: a
            set: {x: '1'}
            next: finsh
          - id: finish
            set: {x: '2'}
        """), 5, 11, "steps[0].next", "no step 'finsh' in this flow; did you mean 'finish'?"),
    Case("on-failure-goto-missing-step", y("""
        flow: f
        steps:
          - id: a
            set: {x: '1'}
            on_failure: {goto: handel}
          - id: handle
            log: {message: $vars.error.message}
        """), 5, 24, "steps[0].on_failure.goto",
         "no step 'handel' in this flow; did you mean 'handle'?"),
    Case("defaults-on-failure-goto-missing", y("""
        flow: f
        defaults:
          on_failure: {goto: handel}
        steps:
          - id: handle
            set: {x: '1'}
        """), 3, 22, "defaults.on_failure.goto", "no step 'handel' in this flow; did you mean"),
    Case("on-failure-unknown", "flow: f\nsteps:\n" + OK_STEP + "    on_failure: retry\n",
         5, 17, "steps[0].on_failure", "'retry' is not a failure handling; write dead_letter"),
    Case("misspelt-max-retries", y("""
        flow: f
        defaults:
          retry:
            max_retires: 3
        steps:
          - id: a
            set: {x: '1'}
        """), 4, 5, "defaults.retry.max_retires",
         "unknown key 'max_retires'; did you mean 'max_attempts'?"),
    Case("max-attempts-zero", "flow: f\ndefaults:\n  retry: {max_attempts: 0}\nsteps:\n" + OK_STEP,
         3, 25, "defaults.retry.max_attempts", "greater than or equal to 1, got int 0"),
    Case("bad-duration-words", "flow: f\ndefaults:\n  timeout: 5 minutes\nsteps:\n" + OK_STEP,
         3, 12, "defaults.timeout", "'5 minutes' is not a duration; write e.g. '500ms', '30s'"),
    Case("bad-duration-in-step-retry",
         "flow: f\nsteps:\n" + OK_STEP + "    retry: {backoff: {initial: soon}}\n",
         5, 32, "steps[0].retry.backoff.initial", "'soon' is not a duration"),
    Case("jitter-typo", "flow: f\ndefaults:\n  retry:\n    backoff: {jitter: fulll}\nsteps:\n"
         + OK_STEP, 4, 23, "defaults.retry.backoff.jitter",
         "'fulll' is not allowed; expected 'full', 'equal' or 'none'; did you mean 'full'?"),
    Case("http-status-class",
         "flow: f\ndefaults:\n  retry:\n    retry_on: {http_status: [429, 6xx]}\nsteps:\n"
         + OK_STEP, 4, 35, "defaults.retry.retry_on.http_status[1]",
         "'6xx' is not an HTTP status"),
    # -- triggers ------------------------------------------------------------------------------
    Case("unknown-trigger-kind", "flow: f\ntrigger:\n  cron: {every: 5m}\nsteps:\n" + OK_STEP,
         2, 1, "trigger", "unknown trigger 'cron'; use webhook, poll, event or manual"),
    Case("misspelt-trigger-kind", "flow: f\ntrigger:\n  webhok: {path: /x}\nsteps:\n" + OK_STEP,
         2, 1, "trigger", "unknown trigger 'webhok'; did you mean 'webhook'?"),
    Case("two-triggers", "flow: f\ntrigger:\n  webhook: {path: /x}\n  poll: {every: 5m}\nsteps:\n"
         + OK_STEP, 2, 1, "trigger", "a flow has exactly one trigger; found webhook and poll"),
    Case("poll-without-schedule", y("""
        flow: f
        trigger:
          poll:
            http: {url: 'https://supplier.example/acks'}
        steps:
          - id: a
            set: {x: '1'}
        """), 3, 3, "trigger.poll", "a poll trigger needs exactly one of 'every:' or 'cron:'"),
    Case("webhook-without-path", "flow: f\ntrigger:\n  webhook: {}\nsteps:\n" + OK_STEP,
         3, 3, "trigger.webhook", "path: field required"),
    Case("webhook-path-without-slash", "flow: f\ntrigger:\n  webhook: {path: hooks/x}\nsteps:\n"
         + OK_STEP, 3, 19, "trigger.webhook.path", "'hooks/x' does not have the expected form"),
    Case("retention-key-misspelt", "flow: f\nretention: {run: 30d}\nsteps:\n" + OK_STEP,
         2, 13, "retention.run", "unknown key 'run'; did you mean 'runs'?"),
    Case("retention-not-a-duration", "flow: f\nretention:\n  runs: 30days\nsteps:\n" + OK_STEP,
         3, 9, "retention.runs", "'30days' is not a retention; write a duration like '14d'"),
    # -- references ----------------------------------------------------------------------------
    Case("unknown-schema",
         "flow: f\nsteps:\n  - id: a\n    validate: {schema: canonical/ordr.v1}\n",
         4, 24, "steps[0].validate.schema",
         "no schema 'canonical/ordr.v1'; did you mean 'canonical/order.v1'?"),
    Case("unknown-reference-kind",
         "flow: f\nsteps:\n  - id: a\n    set: {x: '\"${vault:TOKEN}\"'}\n",
         4, 16, "steps[0].set.x", "unknown reference kind '${vault:...}'; write ${env:NAME}"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_snippet_reports_exact_problem(loader: Loader, case: Case) -> None:
    raw = case.text if isinstance(case.text, bytes) else case.text.encode("utf-8")
    flow, problems = loader.load_file("<input>", raw=raw)
    assert flow is None
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, "\n".join(str(p) for p in errors)
    (error,) = errors
    assert (error.line, error.column, error.path) == (case.line, case.column, case.path), str(error)
    assert error.file == "<input>"
    assert case.fragment in error.message, str(error)


def test_an_expression_compiler_that_crashes_is_a_problem(loader: Loader,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonata-python raised IndexError for an unterminated comment; whatever a compiler
    raises, loading reports it at the expression instead of raising."""
    def crash(spec: object) -> object:
        raise IndexError("string index out of range")

    monkeypatch.setattr("engine.loader.compile_expr", crash)
    flow, problems = loader.load_file(
        "<input>", raw=b"flow: f\nsteps:\n  - id: a\n    transform: '/* c'\n")
    assert flow is None
    assert [(p.line, p.column, p.path, p.message) for p in problems] == [
        (4, 16, "steps[0].transform",
         "jsonata expression cannot be compiled: IndexError: string index out of range")]


def test_unterminated_comment_is_reported_at_the_expression(loader: Loader) -> None:
    flow, problems = loader.load_file(
        "<input>", raw=b"flow: f\nsteps:\n  - id: a\n    transform: '/* c'\n")
    assert flow is None
    ((line, path),) = {(p.line, p.path) for p in problems}
    assert (line, path) == (4, "steps[0].transform")


def test_table_covers_at_least_forty_snippets() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_line_40_error_really_sits_on_line_40() -> None:
    lines = _big_mapping_with_error_on_line_40().splitlines()
    assert lines[39].strip() == '"broken": (1 + ,'
    assert lines[39].index(",", 20) + 1 == 26


FIVE_MISTAKES = y("""
    flow: five-mistakes
    defaults:
      retry:
        max_retires: 3
    steps:
      - id: shape
        transfrom: '{"a": 1}'
      - id: pick
        route:
          - when: a = 1
            goto: erp_eu2
          - otherwise: erp_eu
      - id: erp_eu
        filter: 'a = '
      - id: erp_eu
        set: {x: '"${vault:TOKEN}"'}
    """)


def test_one_file_reports_all_five_mistakes_in_one_pass(loader: Loader) -> None:
    flow, problems = loader.load_file("<input>", raw=FIVE_MISTAKES.encode())
    assert flow is None
    found = sorted((p.line, p.column, p.path, p.message) for p in problems)
    jsonata = found.pop(3)
    assert jsonata[:3] == (14, 18, "steps[2].filter")
    assert jsonata[3].startswith("JSONata syntax error: ")
    assert "Unexpected end of expression" in jsonata[3] and "S0207" in jsonata[3]
    assert found == [
        (4, 5, "defaults.retry.max_retires",
         "unknown key 'max_retires'; did you mean 'max_attempts'?"),
        (7, 5, "steps[0].transfrom", "unknown step kind 'transfrom'; did you mean 'transform'?"),
        (11, 15, "steps[1].route[0].goto",
         "no step 'erp_eu2' in this flow; did you mean 'erp_eu'?"),
        (15, 9, "steps[3].id", "duplicate step id 'erp_eu' (first used at line 13)"),
        (16, 16, "steps[3].set.x",
         "unknown reference kind '${vault:...}'; write ${env:NAME} or ${secret:NAME}"),
    ]


def test_problem_renders_as_file_line_column_path_message(loader: Loader) -> None:
    raw = b"flow: x\nsteps:\n  - id: a\n    transfrom: b\n"
    _, problems = loader.load_file("flows/x.yaml", raw=raw)
    assert [str(p) for p in problems] == [
        "flows/x.yaml:4:5 steps[0].transfrom: unknown step kind 'transfrom'; did you mean "
        "'transform'?"]


# -- several files ---------------------------------------------------------------------------

def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(y(text), encoding="utf-8")
    return path


def _errors(problems: list[Problem] | object) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]  # type: ignore[attr-defined]


def test_two_flows_with_one_id(loader: Loader, tmp_path: Path) -> None:
    _write(tmp_path, "orders.yaml", "flow: orders\nsteps:\n  - id: a\n    set: {x: '1'}\n")
    _write(tmp_path, "orders-copy.yaml", "flow: orders\nsteps:\n  - id: a\n    set: {x: '2'}\n")
    flows = loader.load_paths([tmp_path])
    assert not flows.ok
    assert list(flows.flows) == ["orders"]
    assert flows.flows["orders"].file == str(tmp_path / "orders-copy.yaml")  # sorted: first wins
    (error,) = _errors(flows.problems)
    assert error.file == str(tmp_path / "orders.yaml")
    assert (error.line, error.column, error.path) == (1, 1, "flow")
    assert error.message == (f"flow id 'orders' is already used by {tmp_path / 'orders-copy.yaml'}"
                             "; flow ids must be unique")


def test_two_flows_with_one_webhook_path(loader: Loader, tmp_path: Path) -> None:
    hook = """
        flow: {id}
        trigger:
          webhook:
            path: /hooks/orders
        steps:
          - id: a
            set: {{x: '1'}}
        """
    _write(tmp_path, "a-orders.yaml", hook.format(id="a-orders"))
    _write(tmp_path, "b-orders.yaml", hook.format(id="b-orders"))
    flows = loader.load_paths([tmp_path])
    assert list(flows.flows) == ["a-orders"]
    (error,) = _errors(flows.problems)
    assert error.file == str(tmp_path / "b-orders.yaml")
    assert (error.line, error.column, error.path) == (4, 11, "trigger.webhook.path")
    assert "webhook path '/hooks/orders' is already used by flow 'a-orders'" in error.message


def test_route_hand_off_to_unknown_flow(loader: Loader, tmp_path: Path) -> None:
    _write(tmp_path, "intake.yaml", """
        flow: intake
        steps:
          - id: pick
            route:
              - when: kind = "return"
                flow: return-intake
              - otherwise: keep
          - id: keep
            set: {x: '1'}
        """)
    _write(tmp_path, "returns-intake.yaml", "flow: returns-intake\nsteps:\n"
           "  - id: a\n    set: {x: '1'}\n")
    flows = loader.load_paths([tmp_path])
    assert not flows.ok
    (error,) = _errors(flows.problems)
    assert error.file == str(tmp_path / "intake.yaml")
    assert (error.line, error.column, error.path) == (6, 15, "steps[0].route[0].flow")
    assert error.message == ("no flow 'return-intake' among the flows loaded; "
                             "did you mean 'returns-intake'?")


def test_on_failure_flow_to_unknown_flow(loader: Loader, tmp_path: Path) -> None:
    _write(tmp_path, "main.yaml", """
        flow: main
        defaults:
          on_failure: {flow: errors}
        steps:
          - id: a
            set: {x: '1'}
        """)
    flows = loader.load_paths([tmp_path])
    (error,) = _errors(flows.problems)
    assert (error.line, error.column, error.path) == (3, 22, "defaults.on_failure.flow")
    assert error.message.startswith("no flow 'errors' among the flows loaded")


def test_on_failure_goto_end_is_refused_pointing_at_drop(loader: Loader, tmp_path: Path) -> None:
    _write(tmp_path, "main.yaml", """
        flow: main
        steps:
          - id: a
            set: {x: '1'}
            on_failure: {goto: end}
        """)
    flows = loader.load_paths([tmp_path])
    (error,) = _errors(flows.problems)
    assert error.path == "steps[0].on_failure.goto"
    assert "write 'on_failure: drop'" in error.message


def test_missing_path_is_a_problem_not_an_exception(loader: Loader, tmp_path: Path) -> None:
    flows = loader.load_paths([tmp_path / "nope"])
    (error,) = _errors(flows.problems)
    assert error.message == "no such file or folder"


UNRESOLVED = """
    flow: unresolved
    trigger:
      webhook:
        path: /hooks/unresolved
        signature: {scheme: shopify, secret: "${secret:NOT_SET_ANYWHERE}"}
    steps:
      - id: a
        set: {url: '"${env:FLOWRUN_TEST_NOT_SET_ANYWHERE}/x"'}
    """


def test_unresolved_env_and_secret_are_warnings(loader: Loader, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWRUN_TEST_NOT_SET_ANYWHERE", raising=False)
    _write(tmp_path, "unresolved.yaml", UNRESOLVED)
    flows = loader.load_paths([tmp_path])
    assert flows.ok
    assert list(flows.flows) == ["unresolved"]
    warnings = sorted((p.line, p.column, p.path, p.message) for p in flows.problems.warnings)
    assert warnings == [
        (5, 43, "trigger.webhook.signature.secret",
         "${secret:NOT_SET_ANYWHERE} is not set here; set FLOWRUN_SECRET_NOT_SET_ANYWHERE or add "
         "it to the secrets file where the flow runs"),
        (8, 18, "steps[0].set.url",
         "${env:FLOWRUN_TEST_NOT_SET_ANYWHERE} is not set here; it must be set where the flow "
         "runs"),
    ]


def test_validate_cli_exits_zero_with_only_warnings(tmp_path: Path) -> None:
    _write(tmp_path, "unresolved.yaml", UNRESOLVED)
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith("FLOWRUN_") and k != "FLOWRUN_TEST_NOT_SET_ANYWHERE"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(tmp_path),
                           "--schemas", str(ROOT / "schemas")], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: trigger.webhook.signature.secret: ${secret:NOT_SET_ANYWHERE}" in done.stdout
    assert "warning: steps[0].set.url: ${env:FLOWRUN_TEST_NOT_SET_ANYWHERE}" in done.stdout
    assert "1 flow(s) valid, 0 error(s), 2 warning(s)" in done.stdout
    out = subprocess.run([sys.executable, "-m", "engine.cli", "validate", "--json",
                          str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert {p["severity"] for p in report["problems"]} == {"warning"}
