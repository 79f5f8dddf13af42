"""Values put into URLs are encoded: a ``{{ }}`` value in a path is one segment, in a query a
query value, and a ``${secret:…}`` in a query keeps its ``+``. The regression guard of the attack
where ``{"id": "../../admin/delete?all=1#"}`` in ``/orders/{{ id }}/lines`` sent
``GET /admin/delete?all=1``, out of the connection's base path.

A real loopback server records the raw request line it received (before any decoding), for a
step's ``url:``, a connection step's ``path:``, ``params:`` and a poll trigger's ``url:``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import make_app
from tests.connectors.connections_support import Project, one_call, project
from tests.engine.poll.support import T0, Clock, scheduler

ATTACK = "../../admin/delete?all=1#"
ENCODED = "..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23"
SECRET = "k+ey/with=odd&chars"  # a '+' that used to arrive as a space


class Recorder:
    """A loopback HTTP server that answers 200 {} and keeps each raw request target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.targets.append(self.path)  # the request line's target, as sent
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    made = Recorder()
    yield made
    made.close()


@pytest.fixture
def erp(tmp_path: Path, recorder: Recorder) -> Iterator[Project]:
    with project(tmp_path) as made:
        made.secret(ERP_KEY=SECRET)
        made.connection("erp", f"connection: erp\nhttp:\n  base_url: {recorder.url}/api/v2\n")
        yield made


def sent(erp: Project, recorder: Recorder, http: str, body: object) -> str:
    erp.flow(one_call(http))
    app = erp.app()
    state = erp.run(app, body)
    assert state.status == "succeeded", state.error
    [target] = recorder.targets
    return target


def test_a_value_in_a_url_path_is_one_encoded_segment(erp: Project, recorder: Recorder) -> None:
    target = sent(erp, recorder, f'{{method: GET, url: "{recorder.url}/api/v2/orders/{{{{ id }}}}'
                                 '/lines"}', {"id": ATTACK})
    assert target == f"/api/v2/orders/{ENCODED}/lines"


def test_a_value_in_a_connection_path_stays_under_the_base_path(erp: Project,
                                                                recorder: Recorder) -> None:
    target = sent(erp, recorder, '{connection: erp, method: GET, path: "/orders/{{ id }}/lines"}',
                  {"id": ATTACK})
    assert target == f"/api/v2/orders/{ENCODED}/lines"


def test_values_and_secrets_in_a_query_are_query_values(erp: Project, recorder: Recorder) -> None:
    target = sent(erp, recorder, '{connection: erp, method: GET, path: '
                                 '"/orders?id={{ id }}&key=${secret:ERP_KEY}", '
                                 'params: {q: "{{ id }}", key2: "${secret:ERP_KEY}"}}',
                  {"id": ATTACK})
    assert target == (f"/api/v2/orders?id={ENCODED}&key=k%2Bey%2Fwith%3Dodd%26chars"
                      "&q=..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23&key2=k%2Bey%2Fwith%3Dodd%26chars")


def test_a_dot_segment_is_refused_before_anything_is_sent(erp: Project,
                                                          recorder: Recorder) -> None:
    erp.flow(one_call('{connection: erp, method: GET, path: "/orders/{{ id }}/lines"}'))
    app = erp.app()
    state = erp.run(app, {"id": ".."})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "request_invalid"
    assert recorder.targets == []


def test_a_poll_url_encodes_its_values_too(tmp_path: Path, recorder: Recorder) -> None:
    flow = f"""
    flow: feed
    trigger:
      poll:
        every: 5m
        http:
          url: "{recorder.url}/feed/{{{{cursor}}}}/items"
          params: {{since: "{{{{cursor}}}}"}}
        cursor: {{field: updated_at, start: "{ATTACK}"}}
    steps:
      - id: keep
        set: {{a: id}}
    """
    app = make_app(tmp_path, {"feed": flow})
    with scheduler(app, Clock(T0.timestamp())) as sched:
        sched.tick()
    app.store.close()
    assert recorder.targets == [f"/feed/{ENCODED}/items?since={ENCODED}"]
