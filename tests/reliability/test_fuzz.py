"""Scenario 8: fuzzing with hypothesis — no traceback ever escapes.

Flow files: the shipped flows (valid, every one) mutated the way hands and merges break YAML —
lines deleted, doubled, swapped or re-indented, values replaced by awkward tokens, keys
misspelt. The loader answers each with problems (file:line:col, a message), never an exception,
and ``flowrun validate`` exits 0 or 1 without a traceback. (tests/engine/test_loader_property.py
fuzzes random text and structures; this starts from real flows, so the mutants get deep into
the DSL.)

Payloads: random bodies, media types, charsets and correlation headers, correctly signed, to
the webhook server over real HTTP. Each answer is 202, 200 (duplicate) or a 4xx with a JSON
error — never a 5xx — and the runs it accepted end without an internal error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from tests.engine.server_support import SECRETS, Running, hook_app, serving
from tests.engine.test_loader_property import JSONISH, LOADER, check
from tests.reliability.conftest import ROOT, report, settle, signed, size

FLOW_FILES = sorted(p for p in (ROOT / "flows").glob("*.yaml")
                    if not p.name.endswith(".test.yaml"))
EXAMPLES = size(150, 2000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

AWKWARD = ["", " ", "[", "{", "]", "}", "-", ":", "'", '"', "|", ">", "&a", "*a", "!!binary x",
           "!!python/object:os.system x", "${env:", "${secret:NOPE}", "{{", "}}", "$sum(", "((",
           "null", "~", "true", "no", "-1", "0", "1e999", "0x1F", "5m", "0s", "-5s", "99999d",
           "$", "$$", "$vars.", "end", "dead_letter", "\t", "é", "\u2028", "\ufeff", "💥",
           "x" * 5000, "[" * 500, "- " * 200, "max_retires: 3", "goto: nowhere"]


@st.composite
def mutant(draw: st.DrawFn) -> tuple[str, bytes]:
    """A shipped flow with 1–6 random edits."""
    path = draw(st.sampled_from(FLOW_FILES))
    lines = path.read_text(encoding="utf-8").splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "double", "swap", "indent", "dedent", "value",
                                     "insert", "key"]))
        line = lines[i]
        if edit == "delete":
            del lines[i]
        elif edit == "double":
            lines.insert(i, line)
        elif edit == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "indent":
            lines[i] = "  " + line
        elif edit == "dedent":
            lines[i] = line[2:] if line.startswith("  ") else line
        elif edit == "value" and ":" in line:
            lines[i] = line.split(":", 1)[0] + ": " + draw(st.sampled_from(AWKWARD))
        elif edit == "insert":
            indent = " " * (len(line) - len(line.lstrip()))
            lines.insert(i, indent + draw(st.sampled_from(AWKWARD)))
        else:  # a key misspelt: one letter dropped
            key, sep, rest = line.partition(":")
            if sep and len(key.strip()) > 2:
                k = draw(st.integers(len(key) - len(key.lstrip()), len(key) - 1))
                lines[i] = key[:k] + key[k + 1:] + sep + rest
    return path.name, "\n".join(lines).encode("utf-8", "surrogatepass")


def test_shipped_flows_load_cleanly() -> None:
    """Guards the property below: before the edits, every flow file compiles."""
    assert FLOW_FILES
    for path in FLOW_FILES:
        flow, problems = check(LOADER.load_file(path.name, path.read_bytes()))
        assert flow is not None, [str(p) for p in problems]


@FUZZ
@given(mutant())
def test_mutated_flow_files_give_problems_never_a_traceback(case: tuple[str, bytes]) -> None:
    name, raw = case
    _, problems = check(LOADER.load_file(name, raw))
    assert all(p.file == name for p in problems)


@settings(max_examples=size(25, 200), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutant())
def test_flowrun_validate_on_a_mutant_exits_0_or_1_without_traceback(
        tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, raw = case
    target = tmp_path / name
    target.write_bytes(raw)
    result = CliRunner().invoke(main, ["validate", str(target)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


# -- payloads ----------------------------------------------------------------------------------
INTAKE_FLOW = """
flow: fuzzed-intake
key: $string(id)
trigger:
  webhook:
    path: /hooks/fuzz
    signature: {scheme: shopify, secret: "${secret:SHOP}"}
    idempotency_key: $headers."x-shopify-webhook-id"
    max_body: 65536
steps:
  - id: shape
    transform: '{"id": id, "lines": $count(lines), "first": lines[0].sku, "text": $string($)}'
  - id: remember
    set: {kind: '$type(id)'}
"""
MEDIA = ["application/json", "application/json; charset=utf-8", "application/problem+json",
         "application/xml", "text/xml; charset=iso-8859-1", "application/atom+xml",
         "application/x-www-form-urlencoded", "text/plain", "text/plain; charset=latin-1",
         "text/plain; charset=nonsense", "text/plain; charset=utf-16", "application/octet-stream",
         "multipart/form-data; boundary=x", "", "json", ";;;", "text/html"]
XMLISH = st.lists(st.sampled_from(["<a>", "</a>", "<b x='1'>", "</b>", "<!DOCTYPE a>",
                                   "<?xml version='1.0'?>", "&amp;", "&x;", "<![CDATA[x]]>",
                                   "<!-- c -->", "text", "<a/>", "<", ">", "é"]),
                  max_size=30).map("".join)
BODIES = st.one_of(
    st.binary(max_size=3000),
    JSONISH.map(lambda data: json.dumps(data).encode()),
    st.dictionaries(st.sampled_from(["id", "lines", "sku", "x"]), JSONISH, max_size=4)
    .map(lambda data: json.dumps(data).encode()),
    XMLISH.map(str.encode),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
# what an HTTP client can send as a header value: printable ASCII, no surrounding blanks
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126),
                      max_size=80).map(str.strip)


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = hook_app(tmp_path_factory.mktemp("fuzz"), {"fuzzed-intake": INTAKE_FLOW})
    with serving(app) as server:
        server.seen = {}  # type: ignore[attr-defined]
        yield server
        settle(lambda: not app.store.active_runs(), 60)
        counts = app.store.count_runs()
        report("fuzz-intake", examples=sum(server.seen.values()),  # type: ignore[attr-defined]
               statuses=server.seen, runs=counts)  # type: ignore[attr-defined]


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=BODIES, media=st.sampled_from(MEDIA), correlation=HEADER_TEXT,
       traceparent=HEADER_TEXT, webhook_id=st.one_of(st.none(), HEADER_TEXT))
def test_fuzzed_payloads_get_2xx_or_4xx_never_5xx(
        intake: Running, body: bytes, media: str, correlation: str, traceparent: str,
        webhook_id: str | None) -> None:
    headers = signed(body, webhook_id or "", SECRETS["SHOP"])
    headers.update({"Content-Type": media, "X-Correlation-ID": correlation,
                    "traceparent": traceparent})
    if webhook_id is None:
        del headers["X-Shopify-Webhook-Id"]
    if not media:
        del headers["Content-Type"]
    answer = intake.post("/hooks/fuzz", body, headers)
    seen: dict[int, int] = intake.seen  # type: ignore[attr-defined]
    seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
    assert answer.status_code in (200, 202, 400, 413, 415), answer.text
    data = answer.json()
    assert ("run_id" in data) if answer.status_code < 300 else ("error" in data), data
    assert "Traceback" not in answer.text


def test_fuzzed_runs_ended_without_an_internal_error(intake: Running) -> None:
    """Runs the payload fuzzing accepted ran to an end the flow explains (this test runs after
    it: pytest keeps the order of a module's tests)."""
    app = intake.app
    settle(lambda: not app.store.active_runs(), 60)
    from engine.store.base import RunFilter

    runs = app.store.list_runs(RunFilter(limit=100_000))
    assert runs, "the payload fuzzing accepted nothing: it proved nothing"
    assert app.store.active_runs() == []
    internal = [(r.run_id, r.error) for r in runs if (r.error or {}).get("kind") == "internal"]
    assert internal == []
