"""`flowrun` as a real subprocess: exit statuses and what analysts read, never a traceback.

Every command runs with ``python -m engine.cli`` in the repository root. The shipped flows call
the ERP over HTTP, so `run` tests point ``ERP_EU_URL``/``ERP_US_URL`` at a loopback server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import ROOT

SAMPLES = ROOT / "flows" / "samples"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def flowrun(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FLOWRUN_", "ERP_"))}
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, input=stdin,
                          env={**base, **(env or {})})
    result = Result(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in result.both, result.both
    return result


@pytest.fixture
def erp(httpserver: HTTPServer) -> Iterator[dict[str, str]]:
    """A loopback ERP accepting sales orders; returns the environment that points at it."""
    httpserver.expect_request("/eu/sales-orders", method="POST").respond_with_json(
        {"erp_order": "EU-1"}, status=201)
    httpserver.expect_request("/us/sales-orders", method="POST").respond_with_json(
        {"erp_order": "US-1"}, status=201)
    yield {"ERP_EU_URL": httpserver.url_for("/eu"), "ERP_US_URL": httpserver.url_for("/us")}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- validate --------------------------------------------------------------------------------

def test_validate_shipped_flows_exits_zero() -> None:
    result = flowrun("validate", "flows")
    assert result.code == 0
    shipped = [p for p in (ROOT / "flows").glob("*.yaml") if not p.name.endswith(".test.yaml")]
    assert f"{len(shipped)} flow(s) valid, 0 error(s)" in result.out
    assert " error" not in result.out.replace("0 error(s)", "")


def test_validate_default_folder_is_flows() -> None:
    assert flowrun("validate").out == flowrun("validate", "flows").out


BROKEN = """flow: broken
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
"""


def test_validate_broken_file_exits_one_with_precise_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    result = flowrun("validate", str(path))
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[:2] == [
        f"{path}:4:5 steps[0].transfrom: unknown step kind 'transfrom'; did you mean "
        "'transform'?",
        f"{path}:8:15 steps[1].route[0].goto: no step 'erp_eu2' in this flow; "
        "did you mean 'erp_eu'?",
    ]
    assert lines[2].startswith(f"{path}:11:18 steps[2].filter: JSONata syntax error: ")
    assert "Unexpected end of expression" in lines[2]
    assert "0 flow(s) valid, 3 error(s), 0 warning(s)" in result.both


@pytest.mark.parametrize(("content", "expected"), [
    (b"", ":1:1 empty file"),
    (b"\x00\x01binary", ":1:1 not a text file (it contains NUL bytes)"),
    (b"flow: x\nsteps:\n  - id: a\n    set: {x: '\xff'}\n", ":4:15 not valid UTF-8 (byte 0xff)"),
    (b"flow: x\nsteps:\n\t- id: a\n", ":3:1 tab character"),
    (b"- a\n- b\n", ":1:1 a flow file is a mapping"),
    (b"flow: x\nsteps:\n  - id: a\n    transform: '$x +'\n",
     ":4:21 steps[0].transform: JSONata syntax error: "),
])
def test_validate_unreadable_files_exit_one(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    result = flowrun("validate", str(path))
    assert result.code == 1
    assert f"{path}{expected}" in result.out


def test_validate_missing_path_exits_one(tmp_path: Path) -> None:
    result = flowrun("validate", str(tmp_path / "nope"))
    assert result.code == 1
    assert f"{tmp_path / 'nope'}:1:1 no such file or folder" in result.out


def test_validate_json_format(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    result = flowrun("validate", "--json", str(path), "flows")
    assert result.code == 1
    report = json.loads(result.out)
    assert set(report) == {"ok", "flows", "problems"}
    assert report["ok"] is False
    shipped = sorted(p.name.removesuffix(".yaml") for p in (ROOT / "flows").glob("*.yaml")
                     if not p.name.endswith(".test.yaml"))
    assert "shopify-order-intake" in shipped and report["flows"] == shipped
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors[0] == {"file": str(path), "line": 4, "column": 5, "path": "steps[0].transfrom",
                         "message": "unknown step kind 'transfrom'; did you mean 'transform'?",
                         "severity": "error"}
    assert len(errors) == 3
    for problem in report["problems"]:
        assert set(problem) == {"file", "line", "column", "path", "message", "severity"}
    ok = json.loads(flowrun("validate", "--json", "flows").out)
    assert ok["ok"] is True and {p["severity"] for p in ok["problems"]} == {"warning"}


# -- run -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flow", "sample", "erp_order"), [
    ("shopify-order-intake", "shopify-order.json", "EU-1"),
    ("marketplace-order-intake", "marketplace-order.json", "US-1"),
])
def test_run_shipped_flows_with_samples_succeeds(erp: dict[str, str], flow: str, sample: str,
                                                 erp_order: str) -> None:
    result = flowrun("run", flow, "--input", str(SAMPLES / sample), env=erp)
    assert result.code == 0, result.both
    channel, booking = summaries(result.out)  # the channel hands the order to the ERP flow
    assert (channel["flow"], channel["status"]) == (flow, "handed_off")
    assert (booking["flow"], booking["status"]) == ("canonical-order-to-erp", "succeeded")
    response = booking["envelope"]["vars"]["erp_response"]
    assert (response["status"], response["body"]) == (201, {"erp_order": erp_order})
    assert booking["envelope"]["body"]["channel"] in ("shopify", "marketplace")
    assert "2 run(s) in " in result.err


def summaries(out: str) -> list[dict[str, Any]]:
    """The run summaries `flowrun run` prints, one JSON document per run."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while at < len(out.rstrip()):
        doc, at = decoder.raw_decode(out, at)
        docs.append(doc)
        while at < len(out) and out[at].isspace():
            at += 1
    return docs


def test_run_by_file_path(erp: dict[str, str]) -> None:
    result = flowrun("run", "flows/shopify-order-intake.yaml", "--input",
                     str(SAMPLES / "shopify-order.json"), env=erp)
    assert result.code == 0, result.both
    assert [d["status"] for d in summaries(result.out)] == ["handed_off", "succeeded"]


def test_run_trace_shows_every_step(erp: dict[str, str]) -> None:
    result = flowrun("run", "shopify-order-intake", "--input",
                     str(SAMPLES / "shopify-order.json"), "--trace", env=erp)
    assert result.code == 0, result.both
    traced = [line.split()[1:3] for line in result.err.splitlines() if line.startswith("── ")]
    assert traced == [["only_paid", "(filter)"], ["to_canonical", "(transform)"],
                      ["check", "(validate)"], ["to_erp", "(route)"],
                      # canonical-order-to-erp, to which the order was handed
                      ["check", "(validate)"], ["remember", "(set)"], ["by_region", "(route)"],
                      ["erp_eu", "(call)"]]


def test_run_not_json_points_at_the_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", '{\n  "order": 1,\n  "lines": [1, 2,]\n}\n')
    result = flowrun("run", "shopify-order-intake", "--input", str(bad))
    assert result.code == 1
    assert f"{bad}:3:18: the message is not valid JSON: Expecting value" in result.err
    assert result.out == ""


def test_run_missing_input_file(tmp_path: Path) -> None:
    result = flowrun("run", "shopify-order-intake", "--input", str(tmp_path / "none.json"))
    assert result.code == 1
    assert f"{tmp_path / 'none.json'}: cannot read input: No such file or directory" in result.err


def test_run_unknown_flow_id_suggests_the_close_one() -> None:
    result = flowrun("run", "shopify-ordr-intake", "--input", str(SAMPLES / "shopify-order.json"))
    assert result.code == 1
    assert "no flow 'shopify-ordr-intake' in flows; did you mean 'shopify-order-intake'?" \
        in result.err


def test_run_missing_flow_file() -> None:
    result = flowrun("run", "flows/nope.yaml", "--input", str(SAMPLES / "shopify-order.json"))
    assert result.code == 1
    assert "flows/nope.yaml: no such flow file" in result.err


def test_run_broken_flow_file_shows_its_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    result = flowrun("run", str(path), "--input", str(SAMPLES / "shopify-order.json"),
                     "--flows", str(tmp_path))
    assert result.code == 1
    assert f"{path}:4:5 steps[0].transfrom: unknown step kind 'transfrom'" in result.both
    assert "the flows have errors" in result.err


HELLO = """flow: hello-orders
steps:
  - id: big_only
    filter: total > 100
  - id: shape
    transform: '{"order": number}'
"""


def test_run_is_not_stopped_by_a_half_edited_file_elsewhere(tmp_path: Path) -> None:
    write(tmp_path, "hello-orders.yaml", HELLO)
    write(tmp_path, "half-edited.yaml", "flow: half-edited\nsteps:\n  - id: a\n    transfrom: x\n")
    big = write(tmp_path, "big.json", '{"number": 7, "total": 250}')
    result = flowrun("run", "hello-orders", "--input", str(big), "--flows", str(tmp_path))
    assert result.code == 0, result.both
    assert json.loads(result.out)["envelope"]["body"] == {"order": 7}
    assert "note: 1 other flow file(s) have errors and were not loaded" in result.err
    # the half-edited flow itself is still refused, with its problem
    broken = flowrun("run", "half-edited", "--input", str(big), "--flows", str(tmp_path))
    assert broken.code == 1 and "unknown step kind 'transfrom'" in broken.both


def test_run_refuses_a_flow_that_hands_off_to_a_broken_one(tmp_path: Path) -> None:
    write(tmp_path, "first.yaml", "flow: first\nsteps:\n  - id: pick\n    route:\n"
          "      - otherwise: true\n        flow: second\n")
    write(tmp_path, "second.yaml", "flow: second\nsteps:\n  - id: a\n    transfrom: x\n")
    body = write(tmp_path, "in.json", "{}")
    result = flowrun("run", "first", "--input", str(body), "--flows", str(tmp_path))
    assert result.code == 1
    assert "second.yaml:4:5 steps[0].transfrom: unknown step kind" in result.out
    assert "first.yaml:6:15 steps[0].route[0].flow: no flow 'second'" in result.out


def test_a_filtered_run_says_why_without_an_error(tmp_path: Path) -> None:
    write(tmp_path, "hello-orders.yaml", HELLO)
    small = write(tmp_path, "small.json", '{"number": 8, "total": 50}')
    result = flowrun("run", "hello-orders", "--input", str(small), "--flows", str(tmp_path))
    assert result.code == 0, result.both
    summary = json.loads(result.out)
    assert (summary["status"], summary["reason"], summary["step"]) == (
        "filtered", "filter 'big_only' did not match", "big_only")
    assert "error" not in summary


def test_validate_one_flow_warns_only_about_the_connections_it_uses(tmp_path: Path) -> None:
    """A connection file of the folder that the flow never names is no business of its check;
    its errors are (a broken file is worth fixing), its unset variables are not."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "connections").mkdir()
    write(tmp_path / "connections", "erp.yaml", "connection: erp\nhttp:\n"
          "  base_url: ${env:FLOWRUN_TEST_UNSET_ERP}\n")
    hello = write(tmp_path / "flows", "hello-orders.yaml", HELLO)
    assert flowrun("validate", str(hello)).out.splitlines() == [
        "1 flow(s) valid, 0 error(s), 0 warning(s)"]
    write(tmp_path / "flows", "uses-erp.yaml", "flow: uses-erp\nsteps:\n  - id: post\n"
          "    call:\n      http: {connection: erp, method: POST, path: /orders}\n")
    both = flowrun("validate", str(tmp_path / "flows"))
    assert "erp.yaml:3:13 warning: http.base_url: ${env:FLOWRUN_TEST_UNSET_ERP} is not set" \
        in both.out
    write(tmp_path / "connections", "broken.yaml", "connection: broken\nhtp: {}\n")
    broken = flowrun("validate", str(hello))
    assert broken.code == 1 and "broken.yaml:2:1 htp: unknown key 'htp'" in broken.out


def test_run_header_reaches_headers_and_stdin_input(tmp_path: Path) -> None:
    write(tmp_path, "echo.yaml", """flow: echo
steps:
  - id: show
    transform: '{"id": $headers."x-delivery-id", "kind": $headers.kind, "n": n}'
""")
    result = flowrun("run", "echo", "--input", "-", "--flows", str(tmp_path),
                     "--header", "X-Delivery-Id=abc=1", "-H", "kind=test", stdin='{"n": 5}')
    assert result.code == 0, result.both
    summary = json.loads(result.out)
    assert summary["envelope"]["headers"] == {"x-delivery-id": "abc=1", "kind": "test"}
    assert summary["envelope"]["body"] == {"id": "abc=1", "kind": "test", "n": 5}


def test_run_bad_header_exits_one() -> None:
    result = flowrun("run", "shopify-order-intake", "--input", str(SAMPLES / "shopify-order.json"),
                     "--header", "no-equals-sign")
    assert result.code == 1
    assert "--header 'no-equals-sign': write it as NAME=VALUE" in result.err


def test_run_dead_letter_exits_one_and_prints_the_reason(tmp_path: Path) -> None:
    write(tmp_path, "rejects.yaml", """flow: rejects
steps:
  - id: reject
    fail: {reason: '"unknown SKU " & sku'}
""")
    input_file = write(tmp_path, "in.json", '{"sku": "ZZ"}')
    result = flowrun("run", "rejects", "--input", str(input_file), "--flows", str(tmp_path))
    assert result.code == 1
    summary = json.loads(result.out)
    assert summary["status"] == "dead_lettered"
    assert summary["error"]["message"].endswith("): unknown SKU ZZ")


# -- schema ----------------------------------------------------------------------------------

def test_schema_writes_then_checks(tmp_path: Path) -> None:
    target = tmp_path / "flow.schema.json"
    written = flowrun("schema", "-o", str(target))
    assert written.code == 0 and f"wrote {target}" in written.out
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema["title"] == "Flow" or "properties" in schema
    checked = flowrun("schema", "--check", "-o", str(target))
    assert checked.code == 0 and f"{target} is up to date" in checked.out
    target.write_text(target.read_text(encoding="utf-8") + " ", encoding="utf-8")
    stale = flowrun("schema", "--check", "-o", str(target))
    assert stale.code == 1
    assert f"{target} is stale; run `flowrun schema`" in stale.err
    missing = flowrun("schema", "--check", "-o", str(tmp_path / "absent.json"))
    assert missing.code == 1 and "is stale" in missing.err


def test_run_a_flow_file_beside_a_folder_with_a_similar_name(tmp_path: Path) -> None:
    """flows-old/ is not inside flows/: the file must be loaded, not looked up as an id."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows-old").mkdir()
    write(tmp_path / "flows", "other.yaml", "flow: other\nsteps:\n  - id: a\n    set: {x: '1'}\n")
    hello = write(tmp_path / "flows-old", "hello.yaml",
                  "flow: hello\nsteps:\n  - id: greet\n    transform: '\"hello \" & name'\n")
    input_file = write(tmp_path, "in.json", '{"name": "Ada"}')
    result = flowrun("run", str(hello), "--input", str(input_file),
                     "--flows", str(tmp_path / "flows"))
    assert result.code == 0, result.both
    summary = json.loads(result.out)
    assert (summary["flow"], summary["status"]) == ("hello", "succeeded")
    assert summary["envelope"]["body"] == "hello Ada"


EDI_FLOW = """flow: read-asn
steps:
  - id: read
    x12: {parse: {}}
  - id: pick
    transform: '{"sets": $count(groups.transactions), "kind": groups[0].transactions[0].set}'
"""


def test_run_takes_an_edi_file_as_text_with_text_and_says_so_without(tmp_path: Path) -> None:
    flow = write(tmp_path, "read-asn.yaml", EDI_FLOW)
    sample = str(ROOT / "flows" / "samples" / "asn-856-nordic.edi")
    refused = flowrun("run", str(flow), "--input", sample)
    assert refused.code == 1
    assert "the message is not valid JSON" in refused.err and "add --text" in refused.err
    result = flowrun("run", str(flow), "--input", sample, "--text")
    assert result.code == 0, result.both
    assert json.loads(result.out)["envelope"]["body"] == {"sets": 1, "kind": "856"}


def test_demo_away_from_the_shipped_flows_says_where_to_run_it(tmp_path: Path) -> None:
    result = flowrun("demo", "--flows", str(tmp_path / "flows"), "--home", str(tmp_path / "h"))
    assert result.code == 2
    assert "no shipped flows here" in result.out and "--flows PATH/TO/flows" in result.out
    assert not (tmp_path / "h").exists()  # nothing made or wiped
