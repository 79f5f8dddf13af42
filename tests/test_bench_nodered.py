"""The pure parts of bench/nodered.py (flowrunner next to Node-RED), without npm or wrk.

The comparison is only fair if both sides run the same work on the same load: the Node-RED flows
must be well-formed and carry flowrunner's mapping and routing expression to the letter, the
flowrunner flows must load, the signature the load carries must be one flowrunner accepts, and
the stub must tell "exactly once" from "as many effects as messages". The bench's processes
must not outlive it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sidebyside import procs  # noqa: E402
from bench.sidebyside.load import (  # noqa: E402
    SCRIPT,
    SECRET,
    order_body,
    parse_result,
    shopify_signature,
    wrk_command,
)
from bench.sidebyside.servers import NODE_RED_FILES, NODE_RED_FLOWS, node_red_flows  # noqa: E402
from bench.sidebyside.stub import Tally, _Handler  # noqa: E402

FLOWS = ROOT / "bench" / "flows"


def _mapping(flow_file: Path) -> str:
    """The JSONata block of the flow's to_canonical step, unindented."""
    block = re.search(r"      jsonata: \|\n((?:        .*\n)+)", flow_file.read_text()).group(1)
    return "\n".join(line[8:] for line in block.rstrip("\n").split("\n"))


def _nodes(name: str) -> list[dict[str, Any]]:
    return list(json.loads((NODE_RED_FLOWS / name).read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", NODE_RED_FILES)
def test_node_red_flow_is_one_wired_tab_answering_202(name: str) -> None:
    nodes = _nodes(name)
    tabs = [n for n in nodes if n["type"] == "tab"]
    assert len(tabs) == 1
    ids = {n["id"] for n in nodes}
    assert len(ids) == len(nodes)
    for node in nodes[1:]:
        assert node["z"] == tabs[0]["id"], node["id"]
        for output in node.get("wires", []):
            assert set(output) <= ids, (node["id"], output)
    [entry] = [n for n in nodes if n["type"] == "http in"]
    assert entry["method"] == "post" and entry["url"].startswith("/hooks/shopify/")
    assert [n["statusCode"] for n in nodes if n["type"] == "http response"] == ["202"]


def test_node_red_flows_combine_without_clashing_ids_or_paths() -> None:
    nodes = node_red_flows("http://127.0.0.1:9")
    assert len({n["id"] for n in nodes}) == len(nodes)
    paths = [n["url"] for n in nodes if n["type"] == "http in"]
    assert sorted(paths) == ["/hooks/shopify/intake", "/hooks/shopify/mapping",
                             "/hooks/shopify/reference"]
    calls = [n["url"] for n in nodes if n["type"] == "http request"]
    assert sorted(calls) == ["http://127.0.0.1:9/eu/sales-orders",
                             "http://127.0.0.1:9/us/sales-orders"]


@pytest.mark.parametrize("name", ["mapping.json", "reference.json"])
def test_node_red_maps_and_routes_with_flowrunners_expressions(name: str) -> None:
    mapping = _mapping(FLOWS / "webhook-reference.yaml")
    # the reference flow of the engine benchmarks and of this one map alike
    assert mapping == _mapping(FLOWS / "reference.yaml")
    assert mapping.count("\n") >= 29
    nodes = _nodes(name)
    [change] = [n for n in nodes if n.get("name") == "to canonical"]
    payload = [r for r in change["rules"] if r["p"] == "payload"]
    assert payload == [{"t": "set", "p": "payload", "pt": "msg",
                        "to": f"payload.(\n{mapping}\n)", "tot": "jsonata"}]
    [switch] = [n for n in nodes if n["type"] == "switch"]
    when = re.search(r"- when: (.*)\n", (FLOWS / "webhook-reference.yaml").read_text()).group(1)
    assert switch["propertyType"] == "jsonata"
    assert switch["property"] == f"payload.{when}"
    assert [r["t"] for r in switch["rules"]] == ["true", "else"]


def test_node_red_reference_posts_the_webhook_id_the_stub_counts() -> None:
    nodes = _nodes("reference.json")
    [change] = [n for n in nodes if n.get("name") == "to canonical"]
    [headers] = [r for r in change["rules"] if r["p"] == "headers"]
    assert headers["to"] == '{"X-Webhook-Id": req.headers."x-shopify-webhook-id"}'
    flow = (FLOWS / "webhook-reference.yaml").read_text()
    assert flow.count("""X-Webhook-Id: '{{ $headers."x-shopify-webhook-id" }}'""") == 2
    assert all(n["persist"] for n in nodes if n["type"] == "http request")  # keep-alive


def test_flowrunner_bench_flows_load_with_flowrun_validate() -> None:
    env = {**os.environ, "FLOWRUN_SECRET_BENCH_SHOP": SECRET,
           "BENCH_STUB_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "validate",
                           str(FLOWS / "webhook-intake.yaml"),
                           str(FLOWS / "webhook-reference.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 flow(s) valid, 0 error(s)" in done.stdout + done.stderr
    for name in ("webhook-intake.yaml", "webhook-reference.yaml"):
        text = (FLOWS / name).read_text()
        assert 'idempotency_key: $headers."x-shopify-webhook-id"' in text
        assert "signature: {scheme: shopify" in text


def test_the_body_is_a_3_4_kb_order_the_same_every_time() -> None:
    body = order_body()
    assert body == order_body()
    assert 3400 <= len(body) < 3400 + 300  # one line item more than needed at most
    order = json.loads(body)
    assert order["shipping_address"]["country_code"] == "DE"
    assert len({item["sku"] for item in order["line_items"]}) == len(order["line_items"])


def test_the_signature_is_one_flowrunner_accepts_and_the_body_alone_decides_it() -> None:
    from connectors.signatures.base import SignatureError
    from connectors.signatures.shopify import SCHEME

    body = order_body()
    signature = shopify_signature(body)
    headers = {"X-Shopify-Hmac-Sha256": signature}
    SCHEME.verify(SCHEME.config(), body, headers, [SECRET], time.time())
    with pytest.raises(SignatureError):
        SCHEME.verify(SCHEME.config(), body + b" ", headers, [SECRET], time.time())
    assert shopify_signature(body, "another secret") != signature


def test_wrk_gets_body_file_signature_prefix_and_limit_in_the_scripts_order(
        tmp_path: Path) -> None:
    command = wrk_command("http://127.0.0.1:1/x", 64, 10, tmp_path / "body.json", "c2lnbg==",
                          "run7-", limit=3000)
    assert command[:6] == ["wrk", "-t1", "-c64", "-d10s", "--timeout", "30s"]
    assert "--latency" in command and command[command.index("-s") + 1] == str(SCRIPT)
    assert command[-5:] == ["--", str(tmp_path / "body.json"), "c2lnbg==", "run7-", "3000"]
    script = SCRIPT.read_text()
    reads = re.findall(r"args\[(\d)\]", script)
    assert reads == ["1", "2", "3", "4"]  # body file, signature, id prefix, limit
    assert '["X-Shopify-Webhook-Id"] = prefix .. sent' in script
    assert '["X-Shopify-Hmac-Sha256"] = signature' in script


def test_wrk_result_line_becomes_figures() -> None:
    line = ('WRK_RESULT {"duration_us": 2000000, "requests": 1003, "statuses": {"202": 1000, '
            '"401": 3}, "errors": {"connect": 0, "read": 0, "write": 0, "status": 3, '
            '"timeout": 0}, "latency_us": {"p50": 1500, "p90": 4000, "p99": 12345, '
            '"max": 20000, "mean": 1800.5}}')
    result = parse_result("Running 2s test\n" + line + "\nRequests/sec: 501.5\n")
    assert result["req_per_s"] == 500.0  # 202s only
    assert result["accepted_202"] == 1000 and result["errors"] == {"status": 3}
    assert (result["p50_ms"], result["p99_ms"]) == (1.5, 12.35)
    with pytest.raises(RuntimeError, match="no result line"):
        parse_result("wrk: connection refused\n")


def test_tally_tells_exactly_once_from_as_many_effects() -> None:
    tally = Tally()
    for webhook_id in ("a", "b", "b", None):
        tally.add(webhook_id, "/eu/sales-orders", 1.0)
    stats = tally.stats()
    assert (stats["effects"], stats["distinct"], stats["repeated_ids"], stats["without_id"]) \
        == (4, 2, 1, 1)
    tally.reset()
    assert tally.stats()["effects"] == 0


def test_stub_counts_posts_by_webhook_id_over_http() -> None:
    handler = type("Handler", (_Handler,), {"tally": Tally()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for webhook_id in ("x1", "x2", "x1"):  # keep-alive: one connection
            conn.request("POST", "/us/sales-orders", body=b"{}",
                         headers={"X-Webhook-Id": webhook_id})
            response = conn.getresponse()
            assert response.status == 201
            response.read()
        conn.request("GET", "/stats")
        stats = json.loads(conn.getresponse().read())
        assert (stats["effects"], stats["distinct"], stats["repeated_ids"]) == (3, 2, 1)
        assert stats["paths"] == {"/us/sales-orders": 3}
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


def test_stopping_ends_the_whole_process_group(tmp_path: Path) -> None:
    started = procs.Processes(tmp_path / "logs")
    leader = started.start("tree", ["sh", "-c", "sleep 300 & sleep 301"])
    deadline = time.monotonic() + 10
    while len(family := procs.tree([leader.pid])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(family) >= 2  # the shell and its background sleep
    assert procs.tree_cpu([leader.pid]) >= 0
    started.stop_all()
    assert started.started == []
    deadline = time.monotonic() + 10  # a killed process takes a moment to be reaped
    while (alive := [pid for pid in family if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_ratios_are_taken_round_by_round_and_mismatches_reported() -> None:
    from bench.nodered import NODE_RED_E2E, NODE_RED_INTAKE, figures, summarise

    def level(rates: list[float], cpu: list[float], p99: list[float]) -> list[dict[str, Any]]:
        return [{"req_per_s": r, "cpu_ms_per_request": c, "p99_ms": p}
                for r, c, p in zip(rates, cpu, p99, strict=True)]

    # Node-RED fast in round 1 and slow in round 2, flowrunner likewise: each round's ratio is
    # 0.5, while the ratio of the medians would be 1.0
    intake = {"targets": [{"label": NODE_RED_INTAKE, "side": "Node-RED"},
                          {"label": "fr", "side": "flowrunner"}],
              "rounds": {NODE_RED_INTAKE: {16: level([1000, 100], [1, 1], [10, 10]),
                                           64: level([1, 1], [1, 1], [10, 100])},
                         "fr": {16: level([500, 50], [2, 4], [20, 20]),
                                64: level([1, 1], [1, 1], [30, 300])}}}
    ok = {"effects_per_s": 100.0, "cpu_ms_per_message": 2.0, "exactly_once": True,
          "effects": 10, "distinct": 10, "missing": 0, "repeated_ids": 0}
    twice = {**ok, "effects_per_s": 50.0, "exactly_once": False, "effects": 11,
             "repeated_ids": 1}
    e2e = {"targets": [{"label": NODE_RED_E2E, "side": "Node-RED"},
                       {"label": "fr", "side": "flowrunner"}],
           "rounds": {NODE_RED_E2E: [ok], "fr": [twice]}}
    summary = summarise(intake, e2e)
    row = summary["intake"]["fr"]
    assert row["ratio_to_node_red"] == {"req_per_s": 0.5, "p99_ms": 3.0, "cpu_ms": 3.0}
    assert row["req_per_s"] == 275  # the median of 500 and 50, for the table
    flow = summary["end_to_end"]["fr"]
    assert flow["ratio_to_node_red"] == {"effects_per_s": 0.5, "cpu_ms": 1.0}
    assert flow["exactly_once_every_round"] is False
    assert flow["mismatches"] == [{"effects": 11, "distinct": 10, "missing": 0,
                                   "repeated_ids": 1}]
    graded = {f["name"]: f["met"] for f in figures(summary) if f["goal"] is not None}
    assert graded == {"fr ÷ Node-RED (a): req/s at 16": False,
                      "fr ÷ Node-RED (a): p99 at 64": False,
                      "fr ÷ Node-RED (a): CPU per request": False,
                      "end to end, fr ÷ Node-RED (c)": False}
