"""The consume trigger as the loader checks it: one bus, a connection of that bus, and the
broker's message id as the default idempotency key. No broker is needed for these."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.envelope import Envelope
from engine.loader import Loader
from engine.refs import Secrets
from engine.schemas import SchemaStore
from tests.conftest import ROOT

CONNECTIONS = {
    "rabbit": "connection: rabbit\namqp: {host: 127.0.0.1, password: '${secret:P}'}\n",
    "erp": "connection: erp\nhttp: {base_url: 'http://erp.test'}\n",
}


def load(tmp_path: Path, trigger: str) -> tuple[object, list[str]]:
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    for name, text in CONNECTIONS.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    loader = Loader(schemas=SchemaStore(ROOT / "schemas"), secrets=Secrets(environ={}),
                    connections_dir=folder)
    text = f"flow: f\ntrigger:\n{trigger}steps:\n  - id: a\n    log: {{message: '\"x\"'}}\n"
    flow, problems = loader.load_file(str(tmp_path / "f.yaml"), raw=text.encode())
    return flow, [f"{p.line}:{p.column} {p.message}" for p in problems if p.severity == "error"]


@pytest.mark.parametrize(("trigger", "said"), [
    ("  consume:\n    connection: rabbbit\n    amqp: {queue: q}\n",
     "4:17 no connection 'rabbbit'"),
    ("  consume:\n    connection: erp\n    amqp: {queue: q}\n",
     "4:17 connection 'erp' is an http connection; this needs amqp"),
    ("  consume:\n    connection: rabbit\n    amqp: {queue: q}\n    mqtt: {topic: t}\n",
     "a consume trigger needs exactly one bus"),
    ("  consume:\n    connection: rabbit\n    amqp: {queue: q, prefetch: 10}\n",
     "prefetch"),
    ("  consume:\n    connection: rabbit\n    amqp: {queue: q}\n    in_flight: 0\n",
     "6:16 input should be greater than or equal to 1"),
])
def test_a_mistake_in_a_consume_trigger_is_reported(tmp_path: Path, trigger: str,
                                                    said: str) -> None:
    flow, problems = load(tmp_path, trigger)
    assert flow is None
    assert any(said in p for p in problems), problems


def test_the_broker_message_id_is_the_default_idempotency_key(tmp_path: Path) -> None:
    flow, problems = load(tmp_path, "  consume:\n    connection: rabbit\n    amqp: {queue: q}\n")
    assert problems == []
    assert flow is not None and flow.idempotency_key is not None  # type: ignore[attr-defined]
    envelope = Envelope(body={}, meta={"request": {"message_id": "wms-41"}})
    assert flow.idempotency_key.evaluate(envelope) == "wms-41"  # type: ignore[attr-defined]


def test_a_trigger_key_overrides_the_default(tmp_path: Path) -> None:
    flow, problems = load(tmp_path, "  consume:\n    connection: rabbit\n    amqp: {queue: q}\n"
                                    "    idempotency_key: event_id\n")
    assert problems == []
    envelope = Envelope(body={"event_id": "e-7"}, meta={"request": {"message_id": "wms-41"}})
    assert flow.idempotency_key.evaluate(envelope) == "e-7"  # type: ignore[attr-defined]
