"""Engine overhead: the reference flow (without its network call) vs a hand-written function.

Both do the same work on the same ~3 KB Shopify-shaped order in the same process and run: map to
the canonical order, validate against canonical/order.v1 (the same jsonschema validator), route
by region, a JMESPath-shaped projection and a set. Also: time to validate 1,000 generated flow
files. Prints a table and writes bench/results/engine_overhead.json.

    python bench/engine_overhead.py [--messages 300] [--flows 1000]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/jsonata.py would shadow the jsonata package the engine's parser comes from
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from engine.jsonata_backend import DEFAULT_BACKEND  # noqa: E402
from engine.loader import Loader  # noqa: E402
from engine.local import resources_factory, run_to_completion  # noqa: E402
from engine.refs import Secrets  # noqa: E402
from engine.runner import Runner  # noqa: E402
from engine.schemas import SchemaStore, violations  # noqa: E402


def order(i: int) -> dict[str, Any]:
    base = json.loads((ROOT / "flows" / "samples" / "shopify-order.json").read_text())
    base = copy.deepcopy(base)
    base["id"] = 5890840712243080 + i
    base["order_number"] = 10000 + i
    # pad to ~3 KB with more lines, as a mid-size B2B order
    extra = copy.deepcopy(base["line_items"][0])
    for n in range(4):
        item = copy.deepcopy(extra)
        item["id"] += n + 10
        item["sku"] = f"SKU-{n:04d}"
        base["line_items"].append(item)
    return base


def hand_written(validator: Any) -> Any:
    def process(msg: dict[str, Any]) -> dict[str, Any]:
        ship = msg["shipping_address"]
        canonical = {
            "order_id": str(msg["id"]), "channel": "shopify",
            "order_number": str(msg["order_number"]), "created_at": msg["created_at"],
            "currency": msg["currency"],
            "customer": {"id": str(msg["customer"]["id"]), "email": msg["customer"]["email"],
                         "name": msg["customer"]["first_name"] + " " +
                         msg["customer"]["last_name"]},
            "shipping_address": {"name": ship["name"], "company": ship["company"],
                                 "line1": ship["address1"], "line2": ship["address2"],
                                 "city": ship["city"], "region": ship["province_code"],
                                 "postal_code": ship["zip"], "country_code": ship["country_code"]},
            "lines": [{"line_id": str(li["id"]), "sku": li["sku"], "description": li["title"],
                       "qty": li["quantity"], "unit_price": li["price"]}
                      for li in msg["line_items"]],
            "totals": {"subtotal": msg["subtotal_price"], "tax": msg["total_tax"],
                       "grand_total": msg["total_price"]},
        }
        canonical["shipping_address"] = {k: v for k, v in canonical["shipping_address"].items()
                                         if v is not None}
        found = violations(validator, canonical)
        if found:
            raise ValueError(found)
        region = "eu" if ship["country_code"] in ("DE", "FR", "NL") else "us"
        body = {"order": canonical["order_id"], "skus": [li["sku"] for li in canonical["lines"]],
                "region": region}
        return {"body": body, "vars": {"order": body["order"], "sku_count": len(body["skus"])}}

    return process


def bench_messages(n: int) -> dict[str, Any]:
    schemas = SchemaStore(ROOT / "schemas")
    loader = Loader(schemas=schemas, secrets=Secrets(environ={}))
    flows = loader.load_paths([ROOT / "bench" / "flows" / "reference.yaml"])
    assert flows.ok, list(flows.problems)
    flow = flows.flows["reference"]
    runner = Runner(resources_factory(loader.secrets), loader.secrets.redactor)
    process = hand_written(schemas.validator("canonical/order.v1"))
    messages = [order(i) for i in range(n)]
    size = len(json.dumps(messages[0]))
    # same answers first, so the comparison is of equal work
    engine_out = run_to_completion(flows, flow, messages[0], runner=runner)[0]
    assert engine_out.status == "succeeded", engine_out.error
    assert engine_out.envelope["vars"]["sku_count"] == process(messages[0])["vars"]["sku_count"]

    def time_engine() -> float:
        t = time.perf_counter()
        for m in messages:
            run_to_completion(flows, flow, m, runner=runner)
        return time.perf_counter() - t

    def time_hand() -> float:
        t = time.perf_counter()
        for m in messages:
            process(m)
        return time.perf_counter() - t

    engine_times, hand_times = [], []
    for _ in range(3):  # interleaved rounds: both see the same machine load
        engine_times.append(time_engine())
        hand_times.append(time_hand())
    engine_rate = n / statistics.median(engine_times)
    hand_rate = n / statistics.median(hand_times)
    return {"messages": n, "message_bytes": size, "engine_msgs_per_s": round(engine_rate, 1),
            "hand_written_msgs_per_s": round(hand_rate, 1),
            "ratio_engine_time_to_hand_written": round(hand_rate / engine_rate, 2),
            "goal_ratio": 1.5}


FLOW_TEMPLATE = """flow: gen-{i}
description: generated flow {i}
trigger:
  webhook:
    path: /hooks/gen/{i}
    idempotency_key: $headers."x-id"
steps:
  - id: map
    transform: '{{"id": $string(id), "sku": items[0].sku, "n": $count(items)}}'
  - id: check
    filter: n > 0
  - id: route
    route:
      - when: sku = "A"
        goto: a
      - otherwise: b
  - id: a
    set: {{picked: '"a"'}}
    next: end
  - id: b
    transform: {{jmespath: "{{id: id}}"}}
"""


def bench_validate(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(count):
            (folder / f"gen-{i}.yaml").write_text(FLOW_TEMPLATE.format(i=i))
        loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}))
        t = time.perf_counter()
        flows = loader.load_paths([folder])
        elapsed = time.perf_counter() - t
    assert flows.ok and len(flows.flows) == count, list(flows.problems)[:3]
    return {"flows": count, "seconds": round(elapsed, 3), "goal_seconds": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--flows", type=int, default=1000)
    args = parser.parse_args()
    import os

    backend = os.environ.get("FLOWRUN_JSONATA", DEFAULT_BACKEND)
    msgs = bench_messages(args.messages)
    val = bench_validate(args.flows)
    print(f"JSONata backend: {backend}")
    print(f"reference flow, {msgs['messages']} messages of {msgs['message_bytes']} bytes:")
    print(f"  engine        {msgs['engine_msgs_per_s']:>10.1f} msg/s")
    print(f"  hand-written  {msgs['hand_written_msgs_per_s']:>10.1f} msg/s")
    print(f"  engine time / hand-written time = {msgs['ratio_engine_time_to_hand_written']}× "
          f"(goal ≤ {msgs['goal_ratio']}×)")
    print(f"validating {val['flows']} generated flows: {val['seconds']} s (goal < 3 s)")
    out = ROOT / "bench" / "results" / "engine_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"jsonata_backend": backend, "python": platform.python_version(),
                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "reference_flow": msgs, "validate": val}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
