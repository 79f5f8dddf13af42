"""Engine overhead: the reference flow (without its network call) vs a hand-written function.

Both do the same work on the same ~3 KB Shopify-shaped order in the same process and run: map to
the canonical order, validate against canonical/order.v1 (the same jsonschema validator), route
by region, a JMESPath-shaped projection and a set. The two are timed in alternating rounds, so
both see the same machine load, by the CPU time of this process (msg/s are per CPU second).
Prints both next to the goal and writes bench/results/engine_overhead.json. (Validating 1,000
flow files is bench/validate_1000.py.)

    python bench/engine_overhead.py [--messages 300] [--output PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/jsonata.py would shadow the jsonata package the engine's parser comes from
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, interleaved_medians, output_path, write_result  # noqa: E402
from engine.jsonata_backend import DEFAULT_BACKEND  # noqa: E402
from engine.loader import Loader  # noqa: E402
from engine.local import resources_factory, run_to_completion  # noqa: E402
from engine.refs import Secrets  # noqa: E402
from engine.runner import Runner  # noqa: E402
from engine.schemas import SchemaStore, violations  # noqa: E402

GOAL_RATIO = 1.5


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
        t = time.process_time()
        for m in messages:
            run_to_completion(flows, flow, m, runner=runner)
        return time.process_time() - t

    def time_hand() -> float:
        t = time.process_time()
        for m in messages:
            process(m)
        return time.process_time() - t

    # CPU time, not wall time: both run in this one thread, and on a shared machine the wall
    # clock also counts the time the neighbours held the CPU
    medians = interleaved_medians({"engine": time_engine, "hand": time_hand}, rounds=5)
    engine_rate, hand_rate = n / medians["engine"], n / medians["hand"]
    return {"messages": n, "message_bytes": size, "engine_msgs_per_s": round(engine_rate, 1),
            "hand_written_msgs_per_s": round(hand_rate, 1),
            "ratio_engine_time_to_hand_written": round(hand_rate / engine_rate, 2),
            "goal_ratio": GOAL_RATIO}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--output")
    args = parser.parse_args()
    backend = os.environ.get("FLOWRUN_JSONATA", DEFAULT_BACKEND)
    msgs = bench_messages(args.messages)
    ratio = msgs["ratio_engine_time_to_hand_written"]
    print(f"JSONata backend: {backend}")
    print(f"reference flow, {msgs['messages']} messages of {msgs['message_bytes']} bytes:")
    print(f"  engine        {msgs['engine_msgs_per_s']:>10.1f} msg/s")
    print(f"  hand-written  {msgs['hand_written_msgs_per_s']:>10.1f} msg/s")
    print(f"  engine time / hand-written time = {ratio}× (goal ≤ {GOAL_RATIO}×)")
    figures = [
        figure("engine time ÷ hand-written (reference flow)", ratio, "×", GOAL_RATIO),
        figure("engine, reference flow", msgs["engine_msgs_per_s"], "msg/s", better="higher",
               note="one thread, no network call"),
    ]
    write_result(output_path(args.output, "engine_overhead"), "engine_overhead",
                 {"jsonata_backend": backend, "reference_flow": msgs}, figures)


if __name__ == "__main__":
    main()
