"""`flowrun test` catches real regressions in the shipped flows and reports them readably.

Each test copies the shipped flows, their tests and the schemas into a temporary folder, breaks
something the way an analyst might, and checks that the suite fails with a message that says
what and where. Also: JUnit XML, -k, coverage threshold, unmocked calls, test-file validation
and the pytest plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from engine.testing.model import flow_test_schema_text
from tests.conftest import ROOT, free_port

SHOPIFY = "shopify-order-intake"
MARKETPLACE = "marketplace-order-intake"
#: the flow the channel flows hand their canonical orders to: it routes and calls the ERPs
ERP = "canonical-order-to-erp"


def shipped_case_count() -> int:
    """How many cases the shipped flow tests hold, read from the files themselves."""
    return sum(len(yaml.safe_load(p.read_text(encoding="utf-8"))["cases"])
               for p in (ROOT / "flows").glob("*.test.yaml"))


def shipped_flows() -> set[str]:
    return {p.name.removesuffix(".test.yaml") for p in (ROOT / "flows").glob("*.test.yaml")}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the shipped flows, their tests, samples, the schemas and connections."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copytree(ROOT / "connections", tmp_path / "connections")
    return tmp_path


def flowrun(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["test", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def edit(path: Path, old: str, new: str) -> int:
    """Replace *old* (once, it must be there) and return the line it is on."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def step_line(flow: Path, step: str) -> int:
    lines = flow.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == f"- id: {step}")


def test_shipped_flow_tests_pass_and_cover_every_step_and_branch() -> None:
    code, out = flowrun(str(ROOT / "flows"), "--min-coverage", "100")
    assert code == 0, out
    assert "FAIL" not in out
    assert re.search(rf"{SHOPIFY}\s+\d+\s+4/4\s+1/1\s+100%", out), out
    assert re.search(rf"{MARKETPLACE}\s+\d+\s+4/4\s+1/1\s+100%", out), out
    assert re.search(rf"{ERP}\s+\d+\s+5/5\s+3/3\s+100%", out), out
    assert re.search(r"\n(\d+) passed, 0 failed", out)


def test_a_broken_mapping_fails_with_a_diff_of_the_field_and_the_transform_line(
        repo: Path) -> None:
    flow = repo / "flows" / f"{MARKETPLACE}.yaml"
    edit(flow, '"city": deliveryAddress.town', '"city": deliveryAddress.postcode')
    code, out = flowrun(str(repo / "flows"))
    assert code == 1
    assert f"FAIL  {MARKETPLACE}::US order waits out a 429 Retry-After" in out
    assert "expect.body: the final body differs" in out
    assert '-    "city": "Oxnard",' in out and '+    "city": "93035",' in out
    assert (f"step concerned: {flow}:{step_line(flow, 'to_canonical')} step 'to_canonical' "
            "(transform)") in out
    assert f"\n{shipped_case_count() - 1} passed, 1 failed" in out


def test_a_flipped_route_condition_fails_with_the_route_that_parted_at_the_route_step(
        repo: Path) -> None:
    flow = repo / "flows" / f"{ERP}.yaml"
    edit(flow, 'in ["US", "CA"]', 'in ["US"]')
    code, out = flowrun(str(repo / "flows"), "-k", ERP)
    assert code == 1
    # the Canadian order now falls to `otherwise` and is dead-lettered instead of reaching the ERP
    assert ("expect.status: expected succeeded, the run ended dead_lettered at step 'by_region': "
            "no ERP serves this country yet") in out
    assert "expect.route: the steps taken differ from step 4 on" in out
    assert f"step concerned: {flow}:{step_line(flow, 'by_region')} step 'by_region' (route)" in out
    assert '-  "erp_us"' in out
    assert "by_region when[1] → erp_us" in out  # and coverage shows the branch no longer taken


def test_a_flipped_route_to_an_unmocked_erp_names_the_call_and_where_the_route_parted(
        repo: Path) -> None:
    flow = repo / "flows" / f"{ERP}.yaml"
    edit(flow, "goto: erp_eu", "goto: erp_us")
    code, out = flowrun(str(repo / "flows" / f"{ERP}.yaml"), "-k", "An EU order goes")
    assert code == 1
    assert ("unmocked call: step 'erp_us' sent POST http://erp-us.test/sales-orders; add a mock "
            "for it") in out
    assert "expect.route: the steps taken (as far as the run got) differ from step 4 on" in out
    assert f"{flow}:{step_line(flow, 'by_region')} step 'by_region' (route)" in out


def test_a_shortened_retry_policy_fails_the_cases_that_relied_on_it(repo: Path) -> None:
    flow = repo / "flows" / f"{ERP}.yaml"
    edit(flow, "max_attempts: 6", "max_attempts: 2")
    code, out = flowrun(str(repo / "flows"), "-k", ERP)
    assert code == 1
    assert (f"FAIL  {ERP}::A connect timeout is retried on the back-off, then the "
            "order is accepted") in out
    assert ("expect.status: expected succeeded, the run ended dead_lettered at step 'erp_eu': "
            "step 'erp_eu'") in out
    assert "expect.calls: step 'erp_eu' made 2 call(s), expected 6" in out
    assert "expect.retries: step 'erp_eu' was attempted 2 time(s), expected 6" in out
    assert f"PASS  {ERP}::An EU order goes to the EU ERP after a 503" in out


def test_junit_xml_has_a_suite_per_file_and_the_failure_report(repo: Path) -> None:
    edit(repo / "flows" / f"{SHOPIFY}.yaml", '"channel": "shopify"', '"channel": "web"')
    report = repo / "junit.xml"
    code, _ = flowrun(str(repo / "flows"), "--junit-xml", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == shipped_flows() and {SHOPIFY, MARKETPLACE} <= set(suites)
    assert suites[MARKETPLACE].get("failures") == "0"
    assert suites[MARKETPLACE].get("tests") == str(len(suites[MARKETPLACE].findall("testcase")))
    failed = [c for c in suites[SHOPIFY].findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["EU order goes to the EU ERP after a 503"]
    case_line = next(i for i, line in enumerate(
        (repo / "flows" / f"{SHOPIFY}.test.yaml").read_text(encoding="utf-8").splitlines(), 1)
        if line.strip() == "- name: EU order goes to the EU ERP after a 503")
    assert failed[0].get("classname") == SHOPIFY and failed[0].get("line") == str(case_line)
    failure = failed[0].find("failure")
    assert failure is not None and failure.text is not None
    assert '-  "channel": "shopify",' in failure.text and '+  "channel": "web",' in failure.text
    assert root.get("failures") == str(suites[SHOPIFY].get("failures")) != "0"


def test_k_selects_cases_by_flow_and_case_name(repo: Path) -> None:
    code, out = flowrun(str(repo / "flows"), "-k", "intake::a cancelled")
    assert code == 0, out
    assert out.count("PASS") == 1 and "PASS  marketplace-order-intake::A cancelled order" in out
    code, out = flowrun(str(repo / "flows"), "-k", "no such case")
    assert code == 1 and "no cases ran (none matches -k 'no such case')" in out


def test_min_coverage_fails_a_flow_whose_tests_miss_steps_and_branches(repo: Path) -> None:
    (repo / "flows" / f"{MARKETPLACE}.test.yaml").unlink()
    tests = repo / "flows" / f"{SHOPIFY}.test.yaml"
    tests.write_text(f"""flow: {SHOPIFY}
cases:
  - name: unpaid
    input: {{body: {{financial_status: pending}}}}
    expect: {{status: filtered}}
""", encoding="utf-8")
    code, out = flowrun(str(repo / "flows"), "--min-coverage", "80")
    assert code == 1
    assert re.search(rf"{SHOPIFY}\s+1\s+1/4\s+0/1\s+20%", out), out
    assert f"FAIL  coverage of {SHOPIFY} is 20%, below --min-coverage 80%" in out
    assert "never exercised: step to_canonical" in out
    assert f"to_erp otherwise → flow {ERP}" in out
    assert flowrun(str(repo / "flows"), "--min-coverage", "10")[0] == 0


def test_an_unmocked_call_fails_the_case_naming_step_url_and_flow_line(repo: Path) -> None:
    flow = repo / "flows" / f"{ERP}.yaml"
    (repo / "flows" / f"{ERP}.test.yaml").write_text(f"""flow: {ERP}
env: {{ERP_EU_URL: "http://erp.example"}}
cases:
  - name: no mocks
    input: {{file: samples/canonical-order.json}}
    expect: {{status: succeeded}}
""", encoding="utf-8")
    code, out = flowrun(str(repo / "flows" / f"{ERP}.test.yaml"))
    assert code == 1
    assert ("mocks: unmocked call: step 'erp_eu' sent POST http://erp.example/sales-orders; add "
            "a mock for it, e.g. mocks: [{step: erp_eu, responses: [{status: 200}]}]") in out
    assert f"step concerned: {flow}:{step_line(flow, 'erp_eu')} step 'erp_eu' (call)" in out


BROKEN = """flow: canonical-order-to-erp
cases:
  - name: typos everywhere
    input: {file: samples/no-such.json}
    mocks:
      - step: erp_e
        responses: [{status: 201}]
    expect:
      status: succeeded
      assert: 'body.order_id = '
      calls: [{step: remember, count: 1}]
  - name: second
    input: {body: {}, headrs: {a: b}}
    expcet: {status: filtered}
"""


def test_test_file_mistakes_are_all_reported_with_line_and_column(repo: Path) -> None:
    tests = repo / "flows" / f"{ERP}.test.yaml"
    tests.write_text(BROKEN, encoding="utf-8")
    code, out = flowrun(str(tests))
    assert code == 1
    assert (f"ERROR {tests}:13:23 cases[1].input.headrs: unknown key 'headrs'; did you mean "
            "'headers'?") in out
    assert (f"ERROR {tests}:14:5 cases[1].expcet: unknown key 'expcet'; did you mean "
            "'expect'?") in out
    assert f"ERROR {tests}:12:5 cases[1]: expect: field required" in out
    # the model is invalid, so cross-checks wait; fix the second case and they are reported
    tests.write_text(BROKEN.split("  - name: second")[0], encoding="utf-8")
    code, out = flowrun(str(tests))
    assert code == 1
    assert f"ERROR {tests}:4:19 cases[0].input.file: cannot read " in out
    assert (f"ERROR {tests}:6:15 cases[0].mocks[0].step: no step 'erp_e' in flow "
            f"'{ERP}'; did you mean 'erp_eu'?") in out
    # the column inside the expression is the JSONata backend's (being replaced); the line is ours
    assert re.search(rf"ERROR {re.escape(str(tests))}:10:3\d cases\[0\]\.expect\.assert: "
                     "JSONata syntax error", out), out
    assert (f"ERROR {tests}:11:22 cases[0].expect.calls[0].step: step 'remember' of flow "
            f"'{ERP}' makes no calls; call steps: erp_eu, erp_us") in out
    assert "0 passed, 0 failed, 4 error(s) in test files" in out


def test_a_test_file_for_an_unknown_flow_suggests_the_close_one(repo: Path) -> None:
    tests = repo / "flows" / "x.test.yaml"
    tests.write_text("flow: shopify-order-intak\ncases:\n  - {name: a, input: {body: 1}, "
                     "expect: {}}\n", encoding="utf-8")
    code, out = flowrun(str(tests))
    assert code == 1
    assert (f"{tests}:1:7 flow: no flow 'shopify-order-intak' in {tests.parent}; did you mean "
            "'shopify-order-intake'?") in out


@pytest.mark.parametrize(("error", "kind"), [
    ("timeout", "timeout"), ("read_timeout", "timeout"), ("connection_refused", "connection"),
    ("connection_reset", "connection"), ("dns", "dns"), ("tls", "tls"),
])
def test_mocked_network_errors_are_classified_like_real_ones(repo: Path, error: str,
                                                             kind: str) -> None:
    tests = repo / "flows" / f"{ERP}.test.yaml"
    tests.write_text(f"""flow: {ERP}
env: {{ERP_EU_URL: "http://erp-eu.test"}}
cases:
  - name: {error}
    input: {{file: samples/canonical-order.json}}
    mocks: [{{step: erp_eu, responses: [{{error: {error}}}]}}]
    expect: {{dead_letter: {{step: erp_eu, kind: {kind}}}}}
""", encoding="utf-8")
    code, out = flowrun(str(tests))
    assert code == 0, out


def test_a_long_back_off_is_recorded_on_the_virtual_clock_not_slept(repo: Path) -> None:
    tests = repo / "flows" / f"{ERP}.test.yaml"
    tests.write_text(f"""flow: {ERP}
env: {{ERP_EU_URL: "http://erp-eu.test"}}
cases:
  - name: ERP asks for ten minutes
    input: {{file: samples/canonical-order.json}}
    clock: "2026-11-20T10:00:00Z"
    mocks:
      - step: erp_eu
        responses: [{{status: 429, headers: {{Retry-After: "600"}}}}, {{status: 201}}]
    expect:
      status: succeeded
      retries: [{{step: erp_eu, attempts: 2, delays_at_least: [10m], delays_at_most: [10m]}}]
      assert: 'meta.received_at = "2026-11-20T10:00:00Z"'
""", encoding="utf-8")
    code, out = flowrun(str(tests))
    assert code == 0, out


def test_a_step_mock_wins_over_a_catch_all_request_mock_written_before_it(repo: Path) -> None:
    tests = repo / "flows" / f"{ERP}.test.yaml"
    tests.write_text(f"""flow: {ERP}
env: {{ERP_EU_URL: "http://erp-eu.test"}}
cases:
  - name: the ERP's own mock answers, not the catch-all
    input: {{file: samples/canonical-order.json}}
    mocks:
      - request: {{url: "*"}}
        responses: [{{status: 500}}]
      - step: erp_eu
        responses: [{{status: 201}}]
      - step: erp_eu
        request: {{method: POST, url: "http://erp-eu.test/*"}}
        responses: [{{status: 503}}, {{status: 201}}]
    expect:
      status: succeeded
      retries: [{{step: erp_eu, attempts: 2}}]
""", encoding="utf-8")
    code, out = flowrun(str(tests))
    # the mock naming step and request answers (503 then 201); neither the catch-all's 500 nor
    # the step-only mock (which would succeed on the first attempt) was used
    assert code == 0, out


def test_committed_flow_test_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "flow-test.schema.json").read_text(encoding="utf-8")
    assert committed == flow_test_schema_text(), (
        "schemas/flow-test.schema.json is stale: run `flowrun test --write-schema`")
    assert json.loads(committed)["properties"]["cases"]["description"] == "The cases."


def test_pytest_collects_test_yaml_one_item_per_case_with_the_diff(repo: Path) -> None:
    edit(repo / "flows" / f"{SHOPIFY}.yaml", '"channel": "shopify"', '"channel": "web"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir",
         str(repo), "-c", os.devnull, "--flowrun-tests", "flows"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(rf"1 failed, {shipped_case_count() - 1} passed", out), out
    assert "shopify-order-intake::EU order goes to the EU ERP after a 503" in out
    assert '-  "channel": "shopify",' in out and '+  "channel": "web",' in out


BUS_FLOW = """\
flow: shipment-fanout
steps:
  - id: to_erp
    amqp: {connection: rabbit, exchange: shipments, routing_key: "erp.{{ order }}",
           headers: {x-source: wms}}
  - id: to_plant
    mqtt: {connection: plant, topic: "shipments/{{ order }}", qos: 1}
  - id: to_crm
    redis: {connection: cache, stream: crm-shipments}
    output: vars.entry
  - id: to_archive
    nats: {connection: jet, subject: "archive.{{ order }}"}
    output: vars.ack
"""
BUS_TEST = """\
flow: shipment-fanout
cases:
  - name: every bus confirms, the plant's broker after one refused connection
    input: {body: {order: "A1"}}
    fixed_ids: true
    mocks:
      - {step: to_erp, responses: [{status: 200}]}
      - {step: to_plant, responses: [{error: connection_refused}, {status: 200}]}
      - {step: to_crm, responses: [{status: 200, body: "1733600000000-0"}]}
      - step: to_archive
        responses: [{status: 200, body: {stream: ARCHIVE, seq: 7, duplicate: false}}]
    expect:
      status: succeeded
      vars: {entry: "1733600000000-0", ack: {stream: ARCHIVE, seq: 7, duplicate: false}}
      calls:
        - step: to_erp
          count: 1
          url: "amqp://rabbit/shipments/erp.A1"
          body: {order: "A1"}
          headers: {x-source: wms, Message-Id: "run-1:to_erp"}
        - {step: to_plant, count: 2, url: "mqtt://plant/shipments/A1"}
        - {step: to_crm, count: 1, url: "redis://cache/crm-shipments"}
        - step: to_archive
          count: 1
          url: "nats://jet/archive.A1"
          headers: {Nats-Msg-Id: "run-1:to_archive"}
  - name: a stream the broker does not have dead-letters the run, not retried
    input: {body: {order: "A2"}}
    mocks:
      - {step: to_erp, responses: [{status: 200}]}
      - {step: to_plant, responses: [{status: 200}]}
      - {step: to_crm, responses: [{status: 200}]}
      - {step: to_archive, responses: [{status: 404}]}
    expect:
      dead_letter: {step: to_archive, kind: not_found}
      calls: [{step: to_archive, count: 1}]
"""


def test_bus_steps_are_answered_by_the_mocks_and_never_reach_a_broker(tmp_path: Path) -> None:
    # every connection names a port nothing listens on: a step that went to its broker would
    # fail with a refused connection, not pass
    (tmp_path / "flows").mkdir()
    (tmp_path / "connections").mkdir()
    closed = free_port()
    for name, kind in (("rabbit", "amqp"), ("plant", "mqtt"), ("cache", "redis"), ("jet", "nats")):
        (tmp_path / "connections" / f"{name}.yaml").write_text(
            f"connection: {name}\n{kind}: {{host: 127.0.0.1, port: {closed}, timeout: 1s}}\n")
    (tmp_path / "flows" / "shipment-fanout.yaml").write_text(BUS_FLOW)
    (tmp_path / "flows" / "shipment-fanout.test.yaml").write_text(BUS_TEST)
    code, output = flowrun(str(tmp_path / "flows" / "shipment-fanout.test.yaml"))
    assert code == 0, output
    assert "2 passed, 0 failed" in output
    # and a case without the mock names the publish it would have made
    (tmp_path / "flows" / "shipment-fanout.test.yaml").write_text(
        BUS_TEST.replace("      - {step: to_erp, responses: [{status: 200}]}\n", "", 1))
    code, output = flowrun(str(tmp_path / "flows" / "shipment-fanout.test.yaml"))
    assert code == 1
    assert "unmocked call: step 'to_erp' sent POST amqp://rabbit/shipments/erp.A1" in output
