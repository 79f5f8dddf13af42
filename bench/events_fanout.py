"""Business events on the embedded executor: how fast published events become subscriber runs.

Publishes N events through `App.publish` (each recorded with its idempotency claims, then
queued) and waits until every subscriber run has ended, on a SQLite store in a temporary home.
Two shapes: three unordered subscribers (fan-out), and one subscriber whose runs wait in
per-key lines (20 keys, events of a key one at a time). The subscribers' step is a `set`, so
the figures are flowrunner's own cost per event, with no network in them. Writes
bench/results/events_fanout.json.

    python bench/events_fanout.py [--events 2000] [--output PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, output_path, write_result  # noqa: E402
from engine.app import App  # noqa: E402
from engine.events import Event  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.store.base import RunFilter  # noqa: E402

SUBSCRIBER = """flow: {name}
trigger:
  event: {{type: stock.moved{extra}}}
steps:
  - id: note
    set: {{seen: sku}}
"""


def measure(events: int, subscribers: dict[str, str], workers: int) -> float:
    """Seconds from the first publish until every subscriber run has ended."""
    with tempfile.TemporaryDirectory() as home:
        flows = Path(home) / "flows"
        flows.mkdir()
        for name, extra in subscribers.items():
            (flows / f"{name}.yaml").write_text(SUBSCRIBER.format(name=name, extra=extra))
        app = App(Settings(flows=flows, home=Path(home), schemas=ROOT / "schemas",
                           workers=workers))
        app.executor.start(resume=False)
        try:
            started = time.perf_counter()
            for n in range(events):
                app.publish(Event("stock.moved", f"m{n}", {"n": n, "sku": f"SKU-{n % 20}"}))
            expected = events * len(subscribers)
            while True:
                counts = [app.store.count_runs(name) for name in subscribers]
                done = sum(c.get("succeeded", 0) for c in counts)
                if done >= expected:
                    break
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            runs = app.store.list_runs(RunFilter(flow=next(iter(subscribers)), limit=1))
            assert runs and runs[0].status == "succeeded"
            return elapsed
        finally:
            app.executor.stop()
            app.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--output")
    args = parser.parse_args()
    fanout = measure(args.events, {"a": "", "b": "", "c": ""}, args.workers)
    ordered = measure(args.events, {"lined": ", key: sku"}, args.workers)
    details = {"events": args.events, "workers": args.workers,
               "fanout_seconds": round(fanout, 3), "ordered_seconds": round(ordered, 3)}
    figures = [
        figure("events fanned out to 3 subscribers", args.events / fanout, "events/s",
               better="higher", note=f"{3 * args.events} subscriber runs"),
        figure("ordered events, 20 keys", args.events / ordered, "events/s", better="higher",
               note="one subscriber; a key's events one at a time"),
    ]
    for item in figures:
        print(f"{item['name']}: {item['value']:.0f} {item['unit']}")
    write_result(output_path(args.output, "events_fanout"), "events_fanout", details, figures)


if __name__ == "__main__":
    main()
