"""Benchmark: flowrunner's compiled JSONata vs jsonata-python vs hand-written
Python vs jsonata (JavaScript) under Node.

    python bench/jsonata.py [--quick] [--baseline DIR]

Times a ~30-line Shopify-order -> canonical-order mapping on a ~3 KB and a
~32 KB generated order, plus a 5-field payload mapping; prints a table and
writes bench/results/jsonata.json.  "compiled" is evaluated as flowrunner
evaluates a step (with its 5 s timeout and depth bound, so the bound checks
are included); "unbounded" without them, so the cost of the checks shows.

The compiled, unbounded, hand-written (and baseline) evaluations are timed in
turns, round after round, and each keeps its best round: their ratios come
from the same stretch of the run.

``--baseline DIR`` also times an older engine side by side in the same run:
DIR holds its ``engine/jsonata`` package, e.g. made with
``git archive <commit> engine/jsonata | tar -x -C DIR``.  The Node column needs `node` and `npm`
(the npm package `jsonata` is installed into a temporary directory); without
them it is skipped with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# this file is called jsonata.py: keep its directory off the path so that
# `import jsonata` finds jsonata-python, not this script
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))

from engine.jsonata import compile_expression  # noqa: E402
from engine.jsonata.api import compile_ast  # noqa: E402
from engine.jsonata.parse import parse  # noqa: E402

MAPPING = """{
  "id": $string(id),
  "number": name,
  "placed_at": created_at,
  "currency": currency,
  "status": financial_status = "paid" ? "PAID" : $uppercase(financial_status),
  "customer": {
    "id": $string(customer.id),
    "email": $lowercase(customer.email),
    "name": $trim(customer.first_name & " " & customer.last_name)
  },
  "shipping_address": {
    "line1": shipping_address.address1,
    "city": shipping_address.city,
    "postcode": shipping_address.zip,
    "country": $uppercase(shipping_address.country_code)
  },
  "lines": line_items.{
    "sku": sku,
    "title": $substring(title, 0, 40),
    "qty": quantity,
    "unit_price": $number(price),
    "total": $number(price) * quantity
  },
  "totals": {
    "items": $sum(line_items.($number(price) * quantity)),
    "shipping": $sum(shipping_lines.$number(price)),
    "tax": $number(total_tax),
    "grand": $number(total_price)
  },
  "tags": $map($split(tags, ","), function($t) { $trim($t) }),
  "item_count": $count(line_items)
}"""

TINY = ('{"id": id, "name": name, "email": $lowercase(email), '
        '"total": $number(total), "paid": status = "paid"}')


def hand_mapping(o: dict[str, Any]) -> dict[str, Any]:
    """The same mapping written by hand (for orders with 2+ line items)."""
    status = o["financial_status"]
    cust = o["customer"]
    ship = o["shipping_address"]
    lines = [{"sku": li["sku"], "title": li["title"][:40], "qty": li["quantity"],
              "unit_price": float(li["price"]), "total": float(li["price"]) * li["quantity"]}
             for li in o["line_items"]]
    return {
        "id": str(o["id"]),
        "number": o["name"],
        "placed_at": o["created_at"],
        "currency": o["currency"],
        "status": "PAID" if status == "paid" else status.upper(),
        "customer": {"id": str(cust["id"]), "email": cust["email"].lower(),
                     "name": (cust["first_name"] + " " + cust["last_name"]).strip()},
        "shipping_address": {"line1": ship["address1"], "city": ship["city"],
                             "postcode": ship["zip"], "country": ship["country_code"].upper()},
        "lines": lines,
        "totals": {"items": sum(x["total"] for x in lines),
                   "shipping": sum(float(s["price"]) for s in o["shipping_lines"]),
                   "tax": float(o["total_tax"]), "grand": float(o["total_price"])},
        "tags": [t.strip() for t in o["tags"].split(",")],
        "item_count": len(o["line_items"]),
    }


def hand_tiny(o: dict[str, Any]) -> dict[str, Any]:
    return {"id": o["id"], "name": o["name"], "email": o["email"].lower(),
            "total": float(o["total"]), "paid": o["status"] == "paid"}


def make_order(n_items: int) -> dict[str, Any]:
    address = {"first_name": "Ada", "last_name": "Lovelace", "address1": "12 Analytical Row",
               "address2": "", "city": "London", "zip": "N1 9GU", "province": "England",
               "country": "United Kingdom", "country_code": "gb", "phone": "+44 20 7946 0000",
               "company": None, "latitude": 51.5, "longitude": -0.12}
    items = [{
        "id": 11800000000000 + i, "variant_id": 4500000000000 + i, "product_id": 7200000000 + i,
        "sku": f"SKU-{i:05d}",
        "title": f"Handmade ceramic mug, glaze #{i} (350 ml, dishwasher safe)",
        "variant_title": "Blue / Large", "vendor": "Clayworks", "quantity": 1 + i % 4,
        # a price of its own per line: an engine that remembers a parsed string
        # gains nothing from repeated prices that real orders seldom have
        "price": f"{9.5 + i * 0.25:.2f}", "grams": 350, "taxable": True, "requires_shipping": True,
        "fulfillment_status": None, "gift_card": False,
        "properties": [{"name": "engraving", "value": f"For #{i}"}],
        "tax_lines": [{"title": "VAT", "price": "1.90", "rate": 0.2}],
        "discount_allocations": [],
    } for i in range(n_items)]
    return {
        "id": 5890840712243080, "name": "#1001", "email": "ADA@example.com",
        "created_at": "2024-03-01T10:15:00+00:00", "currency": "GBP",
        "financial_status": "paid", "fulfillment_status": None, "total_tax": "12.40",
        "total_price": "142.90", "subtotal_price": "120.50", "tags": "vip, wholesale ,  spring",
        "customer": {"id": 620000000001, "email": "Ada@Example.com", "first_name": "Ada",
                     "last_name": "Lovelace", "orders_count": 3, "verified_email": True},
        "shipping_address": address, "billing_address": dict(address),
        "shipping_lines": [{"title": "Royal Mail", "price": "4.95", "code": "RM48"}],
        "line_items": items,
        "note_attributes": [], "discount_codes": [],
    }


def _sized_order(target_bytes: int) -> dict[str, Any]:
    n = 2
    while len(json.dumps(make_order(n))) < target_bytes:
        n += 1
    return make_order(n)


def _time(fn: Any, budget: float) -> float:
    """Best per-call CPU seconds over a few repeats sized to the time budget.

    CPU time of this process, not wall time: the bench machines are shared,
    and wall time would charge other processes' work to whichever engine
    happened to be running."""
    return _side_by_side({"fn": fn}, budget)["fn"]


def _side_by_side(fns: dict[str, Any], budget: float, rounds: int = 7) -> dict[str, float]:
    """Best per-call CPU seconds of each function, timed in turns: every round
    times each function once, so a change in the machine's load during the run
    falls on all of them alike and their ratios stay meaningful."""
    numbers = {}
    for name, fn in fns.items():
        number = 1
        while timeit.timeit(fn, number=number, timer=time.process_time) < budget / 10 \
                and number < 1_000_000:
            number *= 4
        numbers[name] = number
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = timeit.timeit(fn, number=numbers[name], timer=time.process_time)
            best[name] = min(best[name], t / numbers[name])
    return best


NODE_SCRIPT = r"""
const jsonata = require('jsonata');
const cases = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
(async () => {
  const out = {};
  for (const c of cases) {
    const expr = jsonata(c.expr);
    for (let i = 0; i < 200; i++) await expr.evaluate(c.data);
    // CPU time of this process (user + system), as on the Python side
    const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
    let n = 1, t = 0;
    for (;;) {
      const s = cpu();
      for (let i = 0; i < n; i++) await expr.evaluate(c.data);
      t = cpu() - s;
      if (t > 0.3) break;
      n *= 2;
    }
    let best = t / n;
    for (let r = 0; r < 3; r++) {
      const s = cpu();
      for (let i = 0; i < n; i++) await expr.evaluate(c.data);
      best = Math.min(best, (cpu() - s) / n);
    }
    out[c.name] = best;
  }
  console.log(JSON.stringify(out));
})();
"""


def node_times(cases: list[dict[str, Any]]) -> tuple[dict[str, float] | None, str]:
    if not shutil.which("node") or not shutil.which("npm"):
        return None, "node/npm not found: JavaScript column skipped"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "jsonata@2"],
                           cwd=tmp, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"npm install jsonata failed ({exc}): JavaScript column skipped"
        Path(tmp, "bench.js").write_text(NODE_SCRIPT)
        Path(tmp, "cases.json").write_text(json.dumps(cases))
        proc = subprocess.run(["node", "bench.js", "cases.json"], cwd=tmp, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            return None, f"node run failed: {proc.stderr[-300:]}"
        version = json.loads(Path(tmp, "node_modules/jsonata/package.json").read_text())["version"]
        return json.loads(proc.stdout), f"jsonata {version} on node {_node_version()}"


def _node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def _baseline(argv: list[str]) -> Any:
    """The engine package under DIR of ``--baseline DIR``, imported under another name."""
    if "--baseline" not in argv:
        return None
    import importlib.util
    pkg = Path(argv[argv.index("--baseline") + 1]) / "engine" / "jsonata"
    spec = importlib.util.spec_from_file_location(
        "baseline_jsonata", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_jsonata"] = module
    spec.loader.exec_module(module)
    return module


# flowrunner's per-step bounds (engine/expressions.py)
BOUNDS = {"timeout_ms": 5000, "max_depth": 500}


def _jsonata_python() -> Any:
    limit = sys.getrecursionlimit()
    import jsonata
    sys.setrecursionlimit(limit)
    return jsonata


def main() -> None:
    budget = 0.2 if "--quick" in sys.argv else 1.0
    small, large = _sized_order(3_000), _sized_order(32_000)
    tiny = {"id": 42, "name": "Grace", "email": "GRACE@EXAMPLE.COM", "total": "19.99",
            "status": "paid"}
    cases = [
        ("mapping_3kb", MAPPING, small, hand_mapping),
        ("mapping_32kb", MAPPING, large, hand_mapping),
        ("tiny_5_fields", TINY, tiny, hand_tiny),
    ]
    jp = _jsonata_python()
    base = _baseline(sys.argv)
    rows = []
    node, node_note = node_times([{"name": n, "expr": e, "data": d} for n, e, d, _ in cases])
    for name, source, data, hand in cases:
        compile_ms = _time(lambda s=source: compile_expression(s), budget) * 1000
        # what a flow load pays: closures now, generated code once the expression is hot
        load_ms = _time(lambda s=source: compile_expression(s, tiered=True), budget) * 1000
        # and what it pays once the expression is hot: code generation from the
        # tree parsed at load
        tree = parse(source)
        upgrade_ms = _time(lambda t=tree, s=source: compile_ast(t, s, True, exported=True),
                           budget) * 1000
        expr = compile_expression(source)
        ours_result = expr.evaluate(data)
        assert ours_result == hand(data), f"{name}: compiled result differs from hand-written"
        jp_expr = jp.Jsonata(source)
        # jsonata-python renders $string(5890840712243080) as "5.89084071224308e+15"
        # (a known defect), so "id" is left out of this cross-check
        theirs = {k: v for k, v in jp_expr.evaluate(data).items() if k != "id"}
        assert theirs == {k: v for k, v in ours_result.items() if k != "id"}, \
            f"{name}: jsonata-python result differs"
        timed = {"ours": lambda e=expr, d=data: e.evaluate(d, **BOUNDS),
                 "unbounded": lambda e=expr, d=data: e.evaluate(d),
                 "hand": lambda h=hand, d=data: h(d)}
        if base is not None:
            base_expr = base.compile_expression(source)
            assert base_expr.evaluate(data, **BOUNDS) == hand(data)
            timed["baseline"] = lambda e=base_expr, d=data: e.evaluate(d, **BOUNDS)
        times = _side_by_side(timed, budget)
        ours, unbounded, handt = times["ours"], times["unbounded"], times["hand"]
        jpt = _time(lambda e=jp_expr, d=data: e.evaluate(d), budget)
        row = {
            "case": name, "input_bytes": len(json.dumps(data)),
            "compiled_ms": ours * 1000, "compiled_unbounded_ms": unbounded * 1000,
            "hand_written_ms": handt * 1000,
            "jsonata_python_ms": jpt * 1000,
            "jsonata_js_ms": node[name] * 1000 if node else None,
            "compile_ms": compile_ms, "compile_at_load_ms": load_ms,
            "compile_when_hot_ms": upgrade_ms,
            "ratio_vs_hand_written": ours / handt,
            "speedup_vs_jsonata_python": jpt / ours,
            "ratio_vs_jsonata_js": (ours / node[name]) if node else None,
        }
        if base is not None:
            base_compile = _time(lambda s=source: base.compile_expression(s), budget)
            row.update({"baseline_ms": times["baseline"] * 1000,
                        "baseline_compile_ms": base_compile * 1000,
                        "baseline_ratio_vs_hand_written": times["baseline"] / handt})
        rows.append(row)
    _print(rows, node_note)
    out = ROOT / "bench" / "results" / "jsonata.json"
    out.write_text(json.dumps({
        "python": sys.version.split()[0], "cpus": os.cpu_count(), "node": node_note,
        "goals": {"ratio_vs_hand_written_max": 3.0, "faster_than_jsonata_js": True,
                  "compile_ms_max": 5.0},
        "results": rows}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


def _print(rows: list[dict[str, Any]], node_note: str) -> None:
    def fmt(v: float | None, unit: str = "") -> str:
        return "-" if v is None else f"{v:.3f}{unit}"
    head = (f"{'case':<15}{'bytes':>7}{'compiled':>10}{'hand':>9}{'jsonata-py':>12}"
            f"{'jsonata-js':>12}{'x hand':>8}{'x js':>7}{'py/ours':>9}{'compile':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<15}{r['input_bytes']:>7}{fmt(r['compiled_ms']):>10}"
              f"{fmt(r['hand_written_ms']):>9}{fmt(r['jsonata_python_ms']):>12}"
              f"{fmt(r['jsonata_js_ms']):>12}{fmt(r['ratio_vs_hand_written']):>8}"
              f"{fmt(r['ratio_vs_jsonata_js']):>7}{r['speedup_vs_jsonata_python']:>9.0f}"
              f"{fmt(r['compile_ms']):>9}")
    print("times in ms per evaluation; 'x hand' / 'x js' = compiled time ratio (lower is better);"
          f" 'py/ours' = jsonata-python speedup.\nJavaScript: {node_note}")
    for r in rows:
        checks = 100 * (r["compiled_ms"] / r["compiled_unbounded_ms"] - 1)
        line = (f"{r['case']:<15} unbounded {r['compiled_unbounded_ms']:.3f} ms"
                f" (bound checks cost {checks:+.0f} %); compile at flow load (tiered)"
                f" {r['compile_at_load_ms']:.2f} ms, code generation when hot"
                f" {r['compile_when_hot_ms']:.2f} ms, both at once {r['compile_ms']:.2f} ms")
        if "baseline_ms" in r:
            line += (f"; baseline {r['baseline_ms']:.3f} ms ="
                     f" {r['baseline_ratio_vs_hand_written']:.1f}x hand,"
                     f" compile {r['baseline_compile_ms']:.2f} ms")
        print(line)


if __name__ == "__main__":
    main()
