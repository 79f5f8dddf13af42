"""`flowrun demo`: the shipped flows end to end on the embedded default, against the sandbox.

Shows, in well under a minute: a downstream that fails for a while (retried, then succeeded), a
429 with Retry-After (honoured), a duplicate webhook delivery (no second run), a message the
ERP rejects (dead-lettered, fixed by an operator and replayed successfully), a supplier portal
polled page by page, and an invoice sent as an X12 810 whose 997 comes back and is correlated.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.app import App
from engine.poll.job import PollJob
from engine.records import RunState
from engine.sandbox import Sandbox
from engine.settings import Settings
from engine.store.base import RunFilter

Echo = Callable[[str], None]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _row(state: RunState) -> list[str]:
    attempts = sum(int(s.get("attempts", 1)) for s in state.steps)
    took = state.updated_at - state.created_at
    return [state.flow_id, state.key or "-", state.trigger, state.status, str(len(state.steps)),
            str(attempts), f"{took:.1f}s"]


def run_demo(flows_dir: Path, home: Path, echo: Echo) -> int:
    samples = flows_dir / "samples"
    if not (samples / "shopify-order.json").is_file():
        echo(f"{flows_dir}: no shipped flows here (their sample messages are missing from "
             f"{samples}). `flowrun demo` runs the flows that come with flowrunner: leave "
             "--flows out, or pass --flows PATH/TO/flows of a flowrunner checkout.")
        return 2
    if home.exists():
        shutil.rmtree(home)
    shopify, marketplace = _load(samples / "shopify-order.json"), _load(samples /
                                                                         "marketplace-order.json")
    with Sandbox() as sandbox:
        os.environ.update(sandbox.env())
        app = App(Settings(home=home, flows=flows_dir, workers=4))
        if not app.flows.ok:
            for problem in app.flows.problems.errors:
                echo(str(problem))
            return 1
        app.executor.start(resume=False)
        echo(f"sandbox ERP/WMS/channel endpoints at {sandbox.url}; state in {home}")
        flows = app.flows.flows
        delivery = {"x-shopify-webhook-id": "demo-delivery-1", "x-shopify-topic": "orders/create"}

        # one order at a time: the EU ERP's two 503s are the first order's, as the story says
        echo("\n1. A Shopify order for the EU ERP, which is restarting: it answers the first "
             "two requests with 503")
        first = app.accept(flows["shopify-order-intake"], shopify, delivery, trigger="webhook")
        echo(f"   accepted as run {first.run_id[:12]}")
        runs = [_finished(app, sandbox, first.run_id, echo)]
        echo("2. The same webhook delivered again (same X-Shopify-Webhook-Id)")
        again = app.accept(flows["shopify-order-intake"], shopify, delivery, trigger="webhook")
        echo(f"   duplicate={again.duplicate}: no new run, original run {again.run_id[:12]}")
        echo("3. A marketplace order for the US ERP, which answers 429 with Retry-After: 1")
        second = app.accept(flows["marketplace-order-intake"], marketplace,
                            {"x-marketplace-event-id": "evt-771"}, trigger="webhook")
        runs.append(_finished(app, sandbox, second.run_id, echo))
        echo("4. A Shopify order with a discontinued article, which the ERP rejects with 422")
        broken = copy.deepcopy(shopify)
        broken["id"], broken["order_number"] = broken["id"] + 1, broken["order_number"] + 1
        broken["line_items"][1]["sku"] = "DISCONTINUED-HP-59A"
        third = app.accept(flows["shopify-order-intake"], broken,
                           {"x-shopify-webhook-id": "demo-delivery-2"}, trigger="webhook")
        runs.append(_finished(app, sandbox, third.run_id, echo))

        entries = app.store.list_dead_letters(__import__("engine.store.base", fromlist=["x"])
                                              .DeadLetterFilter(flow="canonical-order-to-erp"))
        if not entries:
            echo("expected one dead-letter entry, found none")
            return 1
        entry = entries[0]
        echo(f"\n5. Dead-letter entry {entry.id}: step '{entry.step}', "
             f"{len(entry.reason.get('attempts', []))} attempt(s), kept with the original message")
        fixed = copy.deepcopy(entry.envelope["body"])
        for line in fixed["lines"]:
            if line["sku"].startswith("DISCONTINUED"):
                line["sku"] = "TONER-HP-59X"
        echo("   an operator replaces the SKU and replays from the failed step")
        replay = app.replay(entry.id, start_from="failed-step", body=fixed, edited=True,
                            who="demo")
        replayed = app.wait_for(replay.run_id, timeout=30)[0]
        entry = app.store.get_dead_letter(entry.id) or entry
        echo(f"   replay run {replayed.run_id[:12]}: {replayed.status}; entry is now "
             f"'{entry.status}', audit: {entry.audit[-1]['action']} by {entry.audit[-1]['who']}")
        partners = _partner_flows(app, _load(samples / "erp-invoice.json"), echo)
        app.executor.stop()

        states = [app.store.get_run(r.run_id) or r for r in (*runs, replayed, *partners)]
        echo("\nRuns")
        header = ["FLOW", "KEY", "TRIGGER", "STATUS", "STEPS", "ATTEMPTS", "TOOK"]
        rows = [header, *[_row(s) for s in states]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for row in rows:
            echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        calls = len(sandbox.state.requests)
        effects = len(sandbox.state.effects)
        echo(f"\nThe sandbox saw {calls} request(s) and applied {effects} effect(s) once each.")
        echo(f"Look around: FLOWRUN_HOME={home} flowrun runs   |   flowrun runs show RUN_ID")
        ok = [s.status for s in states] == ["succeeded", "succeeded", "dead_lettered",
                                            "succeeded", *["succeeded"] * 3, "handed_off",
                                            "succeeded"]
        return 0 if ok else 1


def _finished(app: App, sandbox: Sandbox, run_id: str, echo: Echo) -> RunState:
    """Wait for *run_id*; say how it ended and what the ERP answered it, attempt by attempt
    (read from the sandbox's own record of the requests, so the story is what happened)."""
    # a channel run hands its canonical order to canonical-order-to-erp: show that last run
    state = app.wait_for(run_id, timeout=50)[-1]
    answers = [str(r["status"]) for r in sandbox.state.requests
               if r["correlation_id"] == state.correlation_id and "/erp/" in r["path"]]
    echo(f"   {state.flow_id} {state.key}: the ERP answered {', '.join(answers) or 'nothing'}; "
         f"{state.status}" + (f" — {state.error['message']}" if state.error else ""))
    return state


def _poll_now(app: App, flow_id: str) -> list[RunState]:
    """One poll of *flow_id*, as the scheduler makes it at a slot; the runs it started."""
    PollJob(app, app.flows.flows[flow_id], owner="demo", lease_ttl=30).run(time.time())
    started = app.store.list_runs(RunFilter(flow=flow_id))
    return sorted((app.wait_for(r.run_id, timeout=30)[0] for r in started),
                  key=lambda s: s.key or "")


def _partner_flows(app: App, invoice: Any, echo: Echo) -> list[RunState]:
    echo("\n6. The scheduler polls the supplier portal for PO acknowledgments (2 pages)")
    polled = _poll_now(app, "supplier-po-ack-poll")
    for state in polled:
        echo(f"   PO {state.key}: {state.status}, ERP {state.steps[-1]['id']}")
    echo("7. An ERP invoice goes to the trading partner as an X12 810; its 997 comes back")
    sent = app.accept(app.flows.flows["invoice-810-to-partner"], invoice,
                      {"x-erp-event": "demo-invoice"}, trigger="webhook")
    tree = app.wait_for(sent.run_id, timeout=30)
    for state in tree:
        acks = state.envelope["vars"].get("acks") or []
        said = (f": 997 {acks[0]['status']} for group {acks[0]['group_control_number']}, "
                f"matched to the 810 sent: {acks[0].get('matched')}") if acks else ""
        echo(f"   {state.flow_id}: {state.status}{said}")
    return [*polled, *tree]


def demo_main(flows_dir: str, home: str, echo: Echo) -> int:
    started = time.perf_counter()
    code = run_demo(Path(flows_dir), Path(home), echo)
    if code == 0:
        echo(f"demo finished in {time.perf_counter() - started:.1f} s")
    return code
