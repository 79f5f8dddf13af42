"""Bus events in, a JSONata mapping, bus events out: flowrunner next to Node-RED and raw kombu.

  mqtt  --messages shipment events at QoS 1 into Mosquitto (127.0.0.1:1883); each side maps
        them with the same JSONata and publishes the result at QoS 1: Node-RED 4's own MQTT
        nodes (mqtt in → change with JSONata → mqtt out), and `flowrun consume` (a consume
        trigger, a transform step, the mqtt step; every message recorded as a run in SQLite).
  amqp  the same through RabbitMQ (127.0.0.1:5672): `flowrun consume` (amqp trigger, transform,
        amqp step with publisher confirms) next to a raw kombu consumer doing the same mapping
        with jsonata-python and publishing with confirms, acknowledging after the publish —
        what a hand-written consumer would do, recording nothing.

The load is a closed window: at most --window messages are in flight (sent and not yet seen on
the output), so neither broker queues more than a subscriber session holds (Mosquitto drops
QoS 1 messages beyond max_queued_messages, 1000 by default). Messages per second run from the
first send to the last output; latency is output time minus the send time carried in the
message; CPU per message is what each side's process tree used in the round, divided by the
messages. Rounds take the targets in turn (A, B, A, B) on the shared machine; the table shows
medians and the median of each round's ratio. Writes bench/results/events.json.

    python bench/events.py [--messages 3000] [--rounds 3] [--window 200] [--workers 4]
                           [--baseline TREE] [--output PATH]

--baseline TREE runs a second `flowrun consume` from another source tree (a checkout of an
earlier commit) in the same rounds, so a change is measured against its base side by side.

Node-RED 4 is installed on first use into ~/.cache/flowrunner-bench/node-red (see
bench/nodered.py). Every process is stopped, with its process group, when the bench ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import kombu  # noqa: E402
import orjson  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.common import figure, free_port, output_path, write_result  # noqa: E402
from bench.sidebyside import servers  # noqa: E402
from bench.sidebyside.procs import (  # noqa: E402
    Processes,
    terminated_as_interrupt,
    tree_cpu,
    wait_until,
)

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
MAPPING = ('{"shipment": shipment.id, "order": order.number, "carrier": shipment.carrier, '
           '"parcels": $count(shipment.parcels), "weight": $sum(shipment.parcels.kg), '
           '"city": order.address.city, "t": t}')


def event(i: int) -> bytes:
    return orjson.dumps({
        "t": time.time(), "seq": i,
        "shipment": {"id": f"SH-{i}", "carrier": "DHL", "parcels": [
            {"sscc": f"00340000{i:010d}", "kg": 2.5}, {"sscc": f"00340001{i:010d}", "kg": 1.25}]},
        "order": {"number": f"SO-{i}", "address": {"city": "Hamburg", "country": "DE"}}})


class Window:
    """Sends through *send*, at most *size* unanswered, and times what comes back."""

    def __init__(self, size: int):
        self.size = size
        self.latencies: list[float] = []
        self.cond = threading.Condition()

    def arrived(self, body: bytes) -> None:
        now = time.time()
        sent = orjson.loads(body)["t"]
        with self.cond:
            self.latencies.append(now - sent)
            self.cond.notify()

    def run(self, count: int, send: Callable[[int], None],
            timeout: float = 300) -> dict[str, float]:
        start = time.monotonic()
        for i in range(count):
            with self.cond:
                while i - len(self.latencies) >= self.size:
                    if not self.cond.wait(timeout):
                        raise RuntimeError(f"no output for {timeout:g}s after {i} sent")
            send(i)
        with self.cond:
            while len(self.latencies) < count:
                if not self.cond.wait(timeout):
                    raise RuntimeError(f"{len(self.latencies)} of {count} came out")
        seconds = time.monotonic() - start
        ordered = sorted(self.latencies)
        return {"per_second": count / seconds,
                "p50_ms": 1000 * ordered[len(ordered) // 2],
                "p99_ms": 1000 * ordered[int(len(ordered) * 0.99) - 1]}


# -- MQTT --------------------------------------------------------------------------------------
def mqtt_client() -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def mqtt_run(inbox: str, outbox: str, count: int, window: int,
             timeout: float = 300) -> dict[str, float]:
    win = Window(window)
    listener = mqtt_client()
    subscribed = threading.Event()
    listener.on_message = lambda c, u, m: win.arrived(m.payload)
    listener.on_subscribe = lambda *a: subscribed.set()
    listener.subscribe(f"{outbox}/#", qos=1)
    subscribed.wait(10)
    sender = mqtt_client()
    try:
        return win.run(count, lambda i: sender.publish(f"{inbox}/dc1", event(i), qos=1),
                       timeout)
    finally:
        for client in (sender, listener):
            client.loop_stop()
            client.disconnect()


def node_red_flow(inbox: str, outbox: str) -> list[dict[str, Any]]:
    return [
        {"id": "tab", "type": "tab", "label": "events"},
        {"id": "broker", "type": "mqtt-broker", "name": "mosquitto", "broker": "127.0.0.1",
         "port": "1883", "clientid": "", "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "60", "cleansession": True},
        {"id": "in", "type": "mqtt in", "z": "tab", "topic": f"{inbox}/+", "qos": "1",
         "datatype": "json", "broker": "broker", "nl": False, "rap": True, "rh": 0,
         "inputs": 0, "wires": [["map"]]},
        {"id": "map", "type": "change", "z": "tab", "rules": [
            # Node-RED evaluates JSONata against the whole msg: the same mapping on its payload
            {"t": "set", "p": "payload", "pt": "msg", "to": f"payload.({MAPPING})",
             "tot": "jsonata"}],
         "wires": [["out"]]},
        {"id": "out", "type": "mqtt out", "z": "tab", "topic": f"{outbox}/nodered", "qos": "1",
         "retain": "false", "broker": "broker", "wires": []},
    ]


def start_node_red(procs: Processes, folder: Path, work: Path, inbox: str,
                   outbox: str) -> None:
    user_dir = work / "node-red"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "settings.js").write_text(servers.SETTINGS.format(
        port=free_port(), user_dir=json.dumps(str(user_dir))), encoding="utf-8")
    (user_dir / "flows.json").write_text(json.dumps(node_red_flow(inbox, outbox)),
                                         encoding="utf-8")
    red = folder / "node_modules" / "node-red" / "red.js"
    process = procs.start("node-red", ["node", str(red), "--settings",
                                       str(user_dir / "settings.js"), "--userDir", str(user_dir)],
                          env={**os.environ, "NODE_ENV": "production"}, cwd=user_dir)
    probe(lambda: mqtt_run(inbox, outbox, 1, 1, 3), "Node-RED", process, procs, "node-red")


FLOW_MQTT = """
flow: events-mqtt
trigger:
  consume: {{connection: mosquitto, mqtt: {{topic: "{inbox}/+", qos: 1}}, in_flight: 256,
             idempotency_key: "shipment.id & '-' & $string(t)"}}
steps:
  - id: map
    transform: {{jsonata: '{mapping}'}}
  - id: out
    mqtt: {{connection: mosquitto, topic: "{outbox}/flowrunner", qos: 1}}
"""
FLOW_AMQP = """
flow: events-amqp
trigger:
  consume: {{connection: rabbit, amqp: {{queue: {inbox}, queue_type: classic}}, in_flight: 256}}
steps:
  - id: map
    transform: {{jsonata: '{mapping}'}}
  - id: out
    amqp: {{connection: rabbit, routing_key: {outbox}}}
"""
CONNECTIONS = {
    # the subscriber's session outlives the bench by a minute only
    "mosquitto": "connection: mosquitto\nmqtt: {{host: 127.0.0.1, port: 1883, "
                 "client_id: {client}, session_expiry: 1m}}\n",
    "rabbit": "connection: rabbit\namqp: {host: 127.0.0.1, port: 5672, username: guest, "
              "password: '${secret:RABBIT}'}\n",
}


def start_consume(procs: Processes, name: str, work: Path, flow: str,
                  ready: Callable[[], Any], workers: int, tree: Path = ROOT) -> None:
    home = work / name
    (home / "flows").mkdir(parents=True)
    (home / "connections").mkdir()
    (home / "flows" / "events.yaml").write_text(flow, encoding="utf-8")
    for key, text in CONNECTIONS.items():
        (home / "connections" / f"{key}.yaml").write_text(
            text.format(client=f"bench-{uuid.uuid4().hex[:6]}") if "{client}" in text
            else text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_")}
    env.update({"FLOWRUN_HOME": str(home / "state"), "FLOWRUN_LOG_LEVEL": "WARNING",
                "FLOWRUN_SECRET_RABBIT": "guest", "PYTHONPATH": str(tree),
                "FLOWRUN_WORKERS": str(workers)})
    process = procs.start(name, [sys.executable, "-m", "engine.cli", "consume", "--flows",
                                 str(home / "flows")], env=env, cwd=home)
    probe(ready, f"flowrun consume ({name})", process, procs, name)


def probe(ready: Callable[[], Any], what: str, process: Any, procs: Processes,
          name: str) -> None:
    def once() -> bool:
        ready()
        return True
    wait_until(once, what, lambda: process.poll() is None, log=lambda: procs.log_tail(name))


# -- AMQP --------------------------------------------------------------------------------------
def amqp_run(inbox: str, outbox: str, count: int, window: int,
             timeout: float = 300) -> dict[str, float]:
    win = Window(window)
    stop = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        with kombu.Connection(AMQP_URL) as conn:
            queue = kombu.Queue(outbox, channel=conn.default_channel)
            queue.declare()

            def on_message(message: Any) -> None:
                win.arrived(message.body)
                message.ack()

            with kombu.Consumer(conn, [queue], on_message=on_message, prefetch_count=500):
                ready.set()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    with kombu.Connection(AMQP_URL) as conn:
        producer = kombu.Producer(conn.default_channel)
        try:
            return win.run(count, lambda i: producer.publish(
                event(i), routing_key=inbox, serializer=None, content_type="application/json",
                content_encoding="binary", delivery_mode=2, message_id=f"m-{uuid.uuid4().hex}"),
                timeout)
        finally:
            stop.set()
            thread.join(5)


def raw_consumer(inbox: str, outbox: str) -> None:
    """The hand-written consumer: kombu, prefetch 256, jsonata-python, confirms, ack after."""
    import jsonata

    expression = jsonata.Jsonata(MAPPING)
    with kombu.Connection(AMQP_URL, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue = kombu.Queue(inbox, channel=channel, durable=True)
        queue.declare()
        producer = kombu.Producer(conn.channel())
        # deliveries are queued by the callback and handled between reads: a publish waiting
        # for its confirm reads the connection too, and must not re-enter the handler
        received: list[Any] = []

        with kombu.Consumer(channel, [queue], on_message=received.append, prefetch_count=256):
            while True:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=1)
                while received:
                    message = received.pop(0)
                    mapped = expression.evaluate(orjson.loads(message.body))
                    producer.publish(orjson.dumps(mapped), routing_key=outbox, serializer=None,
                                     content_type="application/json", content_encoding="binary",
                                     delivery_mode=2)
                    message.ack()


def declare(*queues: str) -> None:
    with kombu.Connection(AMQP_URL) as conn:
        for name in queues:
            kombu.Queue(name, channel=conn.default_channel, durable=True).declare()


def delete(*queues: str) -> None:
    with kombu.Connection(AMQP_URL) as conn:
        for name in queues:
            conn.default_channel.queue_delete(name)


# -- the run -----------------------------------------------------------------------------------
def rounds(targets: dict[str, Callable[[], dict[str, float]]], count: int, messages: int,
           processes: dict[str, int]) -> dict[str, list[dict[str, float]]]:
    """*count* rounds of the targets in turn; each round also gives the CPU time its target's
    process tree (pid in *processes*) used per message, which the machine's other load moves
    less than it moves messages per second."""
    seen: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for _ in range(count):
        for name, run in targets.items():
            before = tree_cpu([processes[name]])
            found = run()
            found["cpu_us"] = 1e6 * (tree_cpu([processes[name]]) - before) / messages
            seen[name].append(found)
            print(f"  {name}: {found['per_second']:.0f} msg/s, p50 {found['p50_ms']:.1f} ms, "
                  f"p99 {found['p99_ms']:.1f} ms, {found['cpu_us']:.0f} µs CPU/msg", flush=True)
    return seen


def pid(procs: Processes, name: str) -> int:
    return next(process.pid for started, process in procs.started if started == name)


def summary(seen: dict[str, list[dict[str, float]]], ours: str, theirs: str) -> dict[str, Any]:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in seen[name])
    ratio = statistics.median(a["per_second"] / b["per_second"]
                              for a, b in zip(seen[ours], seen[theirs], strict=True))
    return {name: {k: round(median(name, k), 1)
                   for k in ("per_second", "p50_ms", "p99_ms", "cpu_us")}
            for name in seen} | {"ratio": round(ratio, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4,
                        help="FLOWRUN_WORKERS of flowrunner's consume processes")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also run flowrunner from this source tree, in the same rounds")
    parser.add_argument("--output")
    parser.add_argument("--raw-consumer", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_consumer:
        raw_consumer(*args.raw_consumer)
        return
    suffix = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="flowrun-events-") as folder, \
            terminated_as_interrupt():
        work = Path(folder)
        procs = Processes(work / "logs")
        try:
            folder_red = servers.node_red_folder()
            version = servers.ensure_node_red(folder_red)
            mqtt_in, mqtt_out = f"bench/in/{suffix}", f"bench/out/{suffix}"
            red_in, red_out = f"bench/red-in/{suffix}", f"bench/red-out/{suffix}"
            start_node_red(procs, folder_red, work, red_in, red_out)
            start_consume(procs, "flowrunner-mqtt", work, FLOW_MQTT.format(
                inbox=mqtt_in, outbox=mqtt_out, mapping=MAPPING),
                lambda: mqtt_run(mqtt_in, mqtt_out, 1, 1, 3), args.workers)
            mqtt_targets = {
                "flowrunner": lambda: mqtt_run(mqtt_in, mqtt_out, args.messages, args.window),
                "Node-RED": lambda: mqtt_run(red_in, red_out, args.messages, args.window)}
            if args.baseline:
                base_in, base_out = f"bench/base-in/{suffix}", f"bench/base-out/{suffix}"
                start_consume(procs, "baseline-mqtt", work, FLOW_MQTT.format(
                    inbox=base_in, outbox=base_out, mapping=MAPPING),
                    lambda: mqtt_run(base_in, base_out, 1, 1, 3), args.workers,
                    args.baseline.resolve())
                mqtt_targets["baseline"] = lambda: mqtt_run(base_in, base_out, args.messages,
                                                            args.window)
            print(f"MQTT: {args.messages} messages a round, window {args.window}", flush=True)
            mqtt = rounds(mqtt_targets, args.rounds, args.messages, {
                name: pid(procs, proc) for name, proc in (
                    ("flowrunner", "flowrunner-mqtt"), ("Node-RED", "node-red"),
                    ("baseline", "baseline-mqtt")) if name in mqtt_targets})
            queues = [f"bench.{n}.{suffix}" for n in ("in", "out", "raw-in", "raw-out")]
            declare(*queues)
            start_consume(procs, "flowrunner-amqp", work, FLOW_AMQP.format(
                inbox=queues[0], outbox=queues[1], mapping=MAPPING),
                lambda: amqp_run(queues[0], queues[1], 1, 1, 5), args.workers)
            raw = procs.start("kombu", [sys.executable, str(Path(__file__).resolve()),
                                        "--raw-consumer", queues[2], queues[3]],
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
            probe(lambda: amqp_run(queues[2], queues[3], 1, 1, 5), "raw kombu consumer", raw,
                  procs, "kombu")
            amqp_targets = {
                "flowrunner": lambda: amqp_run(queues[0], queues[1], args.messages, args.window),
                "raw kombu": lambda: amqp_run(queues[2], queues[3], args.messages, args.window)}
            if args.baseline:
                base_queues = [f"bench.base-{n}.{suffix}" for n in ("in", "out")]
                declare(*base_queues)
                queues += base_queues
                start_consume(procs, "baseline-amqp", work, FLOW_AMQP.format(
                    inbox=base_queues[0], outbox=base_queues[1], mapping=MAPPING),
                    lambda: amqp_run(base_queues[0], base_queues[1], 1, 1, 5), args.workers,
                    args.baseline.resolve())
                amqp_targets["baseline"] = lambda: amqp_run(base_queues[0], base_queues[1],
                                                            args.messages, args.window)
            print(f"AMQP: {args.messages} messages a round, window {args.window}", flush=True)
            amqp = rounds(amqp_targets, args.rounds, args.messages, {
                name: pid(procs, proc) for name, proc in (
                    ("flowrunner", "flowrunner-amqp"), ("raw kombu", "kombu"),
                    ("baseline", "baseline-amqp")) if name in amqp_targets})
        finally:
            for _, process in reversed(list(procs.started)):
                procs.stop(process)
            if "queues" in locals():
                delete(*queues)
    mqtt_sum, amqp_sum = summary(mqtt, "flowrunner", "Node-RED"), \
        summary(amqp, "flowrunner", "raw kombu")
    if args.baseline:
        for found, seen in ((mqtt_sum, mqtt), (amqp_sum, amqp)):
            found["ratio_to_baseline"] = round(statistics.median(
                a["per_second"] / b["per_second"]
                for a, b in zip(seen["flowrunner"], seen["baseline"], strict=True)), 2)
    figures = [
        figure("MQTT msg/s, flowrunner ÷ Node-RED", mqtt_sum["ratio"], "×", 1.0, "higher",
               "same Mosquitto, same messages, rounds in turn"),
        figure("AMQP msg/s, flowrunner ÷ raw kombu consumer", amqp_sum["ratio"], "×", 0.7,
               "higher", "same RabbitMQ, same messages, rounds in turn"),
        figure("MQTT end-to-end p99, flowrunner", mqtt_sum["flowrunner"]["p99_ms"], "ms"),
        figure("AMQP end-to-end p99, flowrunner", amqp_sum["flowrunner"]["p99_ms"], "ms"),
        figure("MQTT CPU per message, flowrunner", mqtt_sum["flowrunner"]["cpu_us"], "µs"),
        figure("MQTT CPU per message, Node-RED", mqtt_sum["Node-RED"]["cpu_us"], "µs"),
    ]
    for name, found in (("MQTT", mqtt_sum), ("AMQP", amqp_sum)):
        print(f"\n{name}  (medians of {args.rounds} rounds; ratio: median of per-round ratios)")
        for target, row in found.items():
            if not target.startswith("ratio"):
                print(f"  {target:12} {row['per_second']:8.0f} msg/s   p50 {row['p50_ms']:7.1f} ms"
                      f"   p99 {row['p99_ms']:7.1f} ms   {row['cpu_us']:6.0f} µs CPU/msg")
        print(f"  ratio flowrunner ÷ other: {found['ratio']:.2f}")
        if "ratio_to_baseline" in found:
            print(f"  ratio flowrunner ÷ baseline: {found['ratio_to_baseline']:.2f}")
    write_result(output_path(args.output, "events"), "events",
                 {"messages": args.messages, "rounds": args.rounds, "window": args.window,
                  "workers": args.workers,
                  # the tree's folder name (name it after its commit), not where it lies
                  "baseline": args.baseline.resolve().name if args.baseline else None,
                  "node_red": version, "mqtt": mqtt, "amqp": amqp,
                  "summary": {"mqtt": mqtt_sum, "amqp": amqp_sum}}, figures)


if __name__ == "__main__":
    main()
