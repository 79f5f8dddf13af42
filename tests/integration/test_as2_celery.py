"""AS2 through `flowrun serve` and a Celery worker on a real Redis: the partner (pyas2lib)
posts an 850 to the server, a worker process parses it and sends the 997 back over AS2 asking
for an asynchronous MDN; the partner's MDN, posted to the server, is matched in Redis to the
run the worker ran."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
import redis
import requests
from pytest_httpserver import HTTPServer

from connectors.as2.pending import RedisPending
from connectors.as2.wire import http_headers
from tests.connectors.as2.as2_support import (
    OURS,
    X12,
    connection,
    outbound,
    partner_server,
    read_mdn,
    setup,
)
from tests.integration.conftest import ROOT, Cluster, wait_until

FLOW = """
flow: acme-850-in
trigger:
  webhook:
    path: /as2/acme
    as2: {partner: acme_as2}
steps:
  - id: read_edi
    x12: {parse: {}}
    output: vars.edi
  - id: make_997
    x12: {ack: {}, value: $vars.edi}
    output: vars.ack
  - id: send_997
    as2: {connection: acme_as2, content: $vars.ack, filename: "997.edi"}
    output: vars.sent
"""

pytestmark = pytest.mark.integration


def test_850_in_through_serve_997_out_from_a_worker_async_mdn_matched_in_redis(
        cluster: Cluster, httpserver: HTTPServer) -> None:
    root = cluster.flows.parent
    partner = setup(root, connection(mdn="async"), mdn_mode="SYNC")
    (cluster.flows / "acme-850-in.yaml").write_text(FLOW, encoding="utf-8")
    server_out = partner_server(httpserver, partner)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**cluster.env, "FLOWRUN_SECRET_AS2_KEY": OURS[0].decode(),
           "AS2_PARTNER_URL": httpserver.url_for("/as2"), "AS2_MDN_URL": url + "/as2/acme"}
    cluster.env.update(env)
    worker = cluster.start_worker("as2")
    serve = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    http = requests.Session()
    http.trust_env = False
    try:
        worker.wait_ready()

        def ready() -> bool:
            try:
                return http.get(url + "/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert serve.poll() is None, serve.communicate()[0]
                return False
        wait_until(ready, 30, "flowrun serve")
        message = outbound(partner, X12.encode())
        response = http.post(url + "/as2/acme", data=message.content,
                             headers=http_headers(message.headers), timeout=30)
        assert response.status_code == 200, response.text
        assert read_mdn(message, response.headers, response.content) == ("processed", None)
        # the worker sends the 997; the partner keeps its MDN for later
        wait_until(lambda: server_out.async_mdns, 60, "the 997 to reach the partner")
        assert server_out.statuses == ["processed"]
        assert server_out.payloads[0].startswith(b"ISA") and b"AK1*PO*101" in \
            server_out.payloads[0]
        sent_id = server_out.received[0].message_id
        client = redis.Redis.from_url(cluster.redis_url)
        record = RedisPending(client).get(sent_id)
        assert record is not None and record["step"] == "send_997" and "mdn" not in record
        mdn = server_out.async_mdns[0]
        answer = http.post(url + "/as2/acme", data=mdn.content,
                           headers=http_headers(mdn.headers), timeout=30)
        assert answer.status_code == 200, answer.text
        settled = RedisPending(client).get(sent_id)
        assert settled is not None and settled["mdn"]["status"] == "processed"
        assert settled["run_id"] == response.headers["x-run-id"]
        client.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
        http.close()
    assert "/as2/acme  → acme-850-in (as2 from acme_as2, async)" in output
    assert "PRIVATE KEY" not in output and "PRIVATE KEY" not in worker.text()
