"""`flowrun serve --consume`: the webhook server consumes the message buses in its own process.

A real `flowrun serve --consume` subprocess on SQLite, with Mosquitto (:1883) and RabbitMQ
(:5672): it takes MQTT and AMQP messages and runs them, SIGTERM in the middle of a stream loses
no message and runs none twice, a reload that adds, changes or removes a consume trigger
starts, restarts or stops its consumer, and `/readyz` names a consumer whose broker is away.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from engine.records import RunState
from engine.store.base import RunFilter
from tests.conftest import free_port, wait_until
from tests.connectors.bus_support import Project
from tests.connectors.test_amqp import URL, consumers, ready
from tests.connectors.test_amqp import publish as amqp_publish
from tests.connectors.test_mqtt import forget_session, shipment
from tests.connectors.test_mqtt import publish as mqtt_publish

pytestmark = pytest.mark.integration

RABBIT = """
connection: rabbit
amqp: {host: 127.0.0.1, port: 5672, username: guest, password: "${secret:BUS_PASSWORD}"}
"""
MOSQUITTO = """
connection: mosquitto
mqtt: {{host: 127.0.0.1, port: 1883, client_id: "{client}", session_expiry: 5m}}
"""
AMQP_FLOW = """
flow: {flow}
trigger:
  consume:
    connection: rabbit
    amqp: {{queue: {queue}}}
    in_flight: 32
steps:
  - id: label
    transform:
      jsonata: '{{"order": order_id}}'
"""
MQTT_FLOW = """
flow: from-mqtt
trigger:
  consume:
    connection: mosquitto
    mqtt: {{topic: "{topic}/+", qos: 1}}
    in_flight: 32
steps:
  - id: label
    transform:
      jsonata: '{{"order": order_id}}'
"""


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    import kombu

    suffix = uuid.uuid4().hex[:8]
    found = {"queue": f"test.serve.{suffix}", "queue2": f"test.serve2.{suffix}",
             "topic": f"test/serve/{suffix}", "client": f"flowrun-serve-{suffix}"}
    yield found
    forget_session(f"{found['client']}-consume-from-mqtt")
    with kombu.Connection(URL) as conn:
        for queue in (found["queue"], found["queue2"]):
            conn.default_channel.queue_delete(queue)


class Server(Project):
    """`flowrun serve --consume` on a free port, over a project folder."""

    def __init__(self, folder: Path, flow: str, connection: str, flow_id: str):
        self.port = free_port()
        super().__init__(folder, flow, connection, flow_id,
                         command=("serve", "--consume", "--port", str(self.port)))
        self.env.update(FLOWRUN_RELOAD_INTERVAL="0.5", FLOWRUN_LOG_LEVEL="INFO")

    def write(self, folder: str, name: str, text: str) -> None:
        (self.folder / folder / name).write_text(text, encoding="utf-8")

    def ready(self) -> requests.Response | None:
        assert self.process is not None and self.process.poll() is None, self.output()
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5)
        except requests.ConnectionError:
            return None

    def runs_of(self, flow: str, status: str | None = "succeeded") -> list[RunState]:
        if not (self.folder / "home" / "state.db").exists():
            return []
        store = self.store()
        try:
            return store.list_runs(RunFilter(flow=flow, status=status, limit=100_000))
        finally:
            store.close()


@pytest.fixture
def server(tmp_path: Path, names: dict[str, str]) -> Iterator[Server]:
    running = Server(tmp_path, AMQP_FLOW.format(flow="from-amqp", queue=names["queue"]), RABBIT,
                     "from-amqp")
    running.write("connections", "mosquitto.yaml", MOSQUITTO.format(**names))
    yield running
    running.stop()


def with_mqtt(server: Server, names: dict[str, str]) -> None:
    server.write("flows", "from-mqtt.yaml", MQTT_FLOW.format(**names))


def consuming(server: Server, *flows: str) -> dict:
    """Wait for /readyz to report every one of *flows* consuming."""
    def check() -> dict | None:
        answer = server.ready()
        if answer is None or answer.status_code != 200:
            return None
        body = answer.json()
        return body if all(body.get("consumers", {}).get(f) == "consuming" for f in flows) \
            else None
    return wait_until(check, 30, f"/readyz reporting {flows} consuming")


def message_ids(runs: list[RunState]) -> Counter[str]:
    return Counter(run.original["request"]["message_id"] for run in runs)


def test_serve_consume_takes_mqtt_and_amqp_messages_and_runs_them(
        server: Server, names: dict[str, str]) -> None:
    with_mqtt(server, names)
    server.start()
    body = consuming(server, "from-amqp", "from-mqtt")
    assert body["webhooks"] == 0
    wait_until(lambda: consumers(names["queue"]), 30, "the AMQP consumer")
    wait_until(lambda: "consuming for 2 flow(s)" in server.output(), 10, "the start-up line")
    amqp_publish(names["queue"], [shipment(f"A-{i}") for i in range(3)],
                 [f"a-{i}" for i in range(3)])
    mqtt_publish(f"{names['topic']}/dc1", [shipment(f"M-{i}") for i in range(3)],
                 [f"m-{i}" for i in range(3)])
    amqp = wait_until(lambda: len(r := server.runs_of("from-amqp")) >= 3 and r, 30, "AMQP runs")
    mqtt = wait_until(lambda: len(r := server.runs_of("from-mqtt")) >= 3 and r, 30, "MQTT runs")
    assert message_ids(amqp) == Counter({"a-0": 1, "a-1": 1, "a-2": 1})
    assert message_ids(mqtt) == Counter({"m-0": 1, "m-1": 1, "m-2": 1})
    assert sorted(r.original["body"]["order_id"] for r in mqtt) == ["M-0", "M-1", "M-2"]
    wait_until(lambda: ready(names["queue"]) == 0, 10, "the AMQP messages acknowledged")


def paced(send: Callable[[list[bytes], list[str]], None], prefix: str, count: int,
          stopped: threading.Event) -> threading.Thread:
    """Publish *count* messages in small bursts on a thread of their own: the first half at
    once, the second half once *stopped* is set, so the stream goes on while the server stops
    and while it is down."""
    def run() -> None:
        for start in range(0, count, 10):
            if start == count // 2:
                stopped.wait(60)
            seqs = range(start, min(start + 10, count))
            send([shipment(f"{prefix}-{i}") for i in seqs], [f"{prefix}-{i}" for i in seqs])
            time.sleep(0.02)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sigterm_mid_stream_loses_nothing_and_runs_nothing_twice(
        server: Server, names: dict[str, str]) -> None:
    count = 600  # below Mosquitto's 1,000 queued messages for a session that is away
    with_mqtt(server, names)
    server.start()
    consuming(server, "from-amqp", "from-mqtt")
    wait_until(lambda: consumers(names["queue"]), 30, "the AMQP consumer")
    stopped = threading.Event()
    publishers = [
        paced(lambda bodies, ids: amqp_publish(names["queue"], bodies, ids), "a", count,
              stopped),
        paced(lambda bodies, ids: mqtt_publish(f"{names['topic']}/dc1", bodies, ids), "m",
              count, stopped)]
    wait_until(lambda: len(server.runs_of("from-amqp", None)) >= 50
               and len(server.runs_of("from-mqtt", None)) >= 50, 60, "the streams under way")
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    stopped.set()  # the second halves arrive while the server stops, and while it is down
    # uvicorn raises SIGTERM again once the shutdown is done
    assert server.process.wait(60) in (0, -signal.SIGTERM), server.output()
    stopped_at = {flow: len(server.runs_of(flow, None)) for flow in ("from-amqp", "from-mqtt")}
    server.start()  # the rest: redelivered or queued by the brokers, unfinished runs resumed
    for publisher in publishers:
        publisher.join(120)
    amqp = wait_until(lambda: len(r := server.runs_of("from-amqp")) >= count and r, 120,
                      "every AMQP message run")
    mqtt = wait_until(lambda: len(r := server.runs_of("from-mqtt")) >= count and r, 120,
                      "every MQTT message run")
    print(f"serve --consume SIGTERM: runs recorded when stopped {stopped_at}, "
          f"{count} messages per bus")
    for runs, prefix in ((amqp, "a"), (mqtt, "m")):
        seen = message_ids(runs)
        assert set(seen) == {f"{prefix}-{i}" for i in range(count)}
        assert max(seen.values()) == 1
    assert len(server.runs_of("from-amqp", None)) == count
    assert len(server.runs_of("from-mqtt", None)) == count
    wait_until(lambda: ready(names["queue"]) == 0, 10, "every AMQP message acknowledged")


def test_reload_starts_restarts_and_stops_consumers(server: Server,
                                                    names: dict[str, str]) -> None:
    (server.folder / "flows" / "from-amqp.yaml").unlink()
    server.start()
    answer = wait_until(lambda: [r] if (r := server.ready()) is not None else None, 30,
                        "the server")[0]  # a list: a 503 Response is falsy
    assert answer.status_code == 503
    assert "no flow has a consume trigger" in answer.json()["reason"]
    # a flow with a consume trigger appears: its consumer starts
    server.write("flows", "from-amqp.yaml", AMQP_FLOW.format(flow="from-amqp",
                                                             queue=names["queue"]))
    wait_until(lambda: consumers(names["queue"]), 30, "the new flow's consumer")
    consuming(server, "from-amqp")
    amqp_publish(names["queue"], [shipment("R-1")], ["r-1"])
    wait_until(lambda: server.runs_of("from-amqp"), 30, "the run of the first queue")
    # its trigger changes to another queue: the consumer moves
    server.write("flows", "from-amqp.yaml", AMQP_FLOW.format(flow="from-amqp",
                                                             queue=names["queue2"]))
    wait_until(lambda: consumers(names["queue2"]), 30, "the consumer of the new queue")
    wait_until(lambda: consumers(names["queue"]) == 0, 30, "the old queue left")
    amqp_publish(names["queue2"], [shipment("R-2")], ["r-2"])
    runs = wait_until(lambda: len(r := server.runs_of("from-amqp")) >= 2 and r, 30,
                      "the run of the second queue")
    assert message_ids(runs) == Counter({"r-1": 1, "r-2": 1})
    # serve writes its log lines in batches (engine/log_batching): the line may lag the run
    wait_until(lambda: "its consumer stops" in server.output(), 10, "the old consumer's stop")
    assert server.output().count("its consumer stops") == 1
    # only its steps change: the same consumer hands the next message to the new version
    server.write("flows", "from-amqp.yaml", AMQP_FLOW.format(
        flow="from-amqp", queue=names["queue2"]).replace("id: label", "id: relabel"))
    # reloaded a third time: it appeared, it moved queue, its steps changed
    wait_until(lambda: server.output().count("flow from-amqp reloaded") >= 3, 30, "the reload")
    amqp_publish(names["queue2"], [shipment("R-3")], ["r-3"])
    runs = wait_until(lambda: len(r := server.runs_of("from-amqp")) >= 3 and r, 30,
                      "the run of the new version")
    by_id = {run.original["request"]["message_id"]: run for run in runs}
    assert by_id["r-3"].flow_version != by_id["r-2"].flow_version
    assert server.output().count("its consumer stops") == 1
    # the flow goes: its consumer stops
    (server.folder / "flows" / "from-amqp.yaml").unlink()
    wait_until(lambda: consumers(names["queue2"]) == 0, 30, "the consumer stopped")
    # the server writes its INFO lines in batches (at most 0.2 s late): wait for the line
    wait_until(lambda: server.output().count("its consumer stops") == 2, 10,
               "the line saying the consumer stops")
    assert server.output().count("its consumer stops") == 2


def test_readyz_names_a_consumer_that_cannot_reach_its_broker(server: Server) -> None:
    server.write("connections", "rabbit.yaml", RABBIT.replace("5672", str(free_port())))
    server.start()

    def refused() -> dict | None:
        answer = server.ready()
        return answer.json() if answer is not None and answer.status_code == 503 \
            and "consumers" in answer.json() else None
    body = wait_until(refused, 30, "/readyz reporting the consumer")
    assert body["reason"] == "a consumer cannot reach its broker"
    assert "Connection refused" in body["consumers"]["from-amqp"]
    assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status_code == 200
