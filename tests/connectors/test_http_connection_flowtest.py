"""Flows that call through named connections, tested with `flowrun test` (mocks, no network).

A case mocks the API calls its flow makes: the connection's base URL, default headers and
credentials are applied to the mocked request as in production, and an OAuth2 connection sends
a placeholder token instead of asking its token endpoint (which no case should have to mock).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

CONNECTIONS = {
    "erp": """
        connection: erp
        http:
          base_url: http://erp.test/api?tenant=eu
          headers: {X-Channel: flowrunner}
          auth:
            oauth2:
              token_url: http://erp.test/oauth/token
              client_id: flowrunner
              client_secret: "${secret:ERP_CLIENT_SECRET}"
        """,
    "wms": """
        connection: wms
        http:
          base_url: http://wms.test
          auth:
            api_key: {header: X-Api-Key, value: "${secret:WMS_KEY}"}
        """,
}

FLOW = """
    flow: t
    defaults:
      retry: {max_attempts: 1}
    steps:
      - id: send
        call:
          http: {connection: erp, path: "/orders/{{ n }}"}
      - id: stock
        call:
          http: {connection: wms, method: GET, path: /stock}
    """

TESTS = """
    flow: t
    secrets: {ERP_CLIENT_SECRET: cs-only-for-tests, WMS_KEY: wk-only-for-tests}
    cases:
      - name: both calls carry their connection's credentials
        input: {body: {n: 7}}
        mocks:
          - step: send
            responses: [{status: 201, body: {ok: true}}]
          - step: stock
            responses: [{status: 200, body: []}]
        expect:
          status: succeeded
          calls:
            - step: send
              count: 1
              url: "http://erp.test/api/orders/7?tenant=eu"
              headers: {Authorization: Bearer flow-test-token, X-Channel: flowrunner}
            - step: stock
              count: 1
              url: "http://wms.test/stock"
              headers: {X-Api-Key: wk-only-for-tests}
      - name: a 401 from a mock is the step's failure, not a token refresh
        input: {body: {n: 8}}
        mocks:
          - step: send
            responses: [{status: 401}]
        expect:
          status: dead_lettered
          calls:
            - step: send
              count: 1
    """


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def test_flowrun_test_applies_connections_and_never_asks_a_token_endpoint(
        tmp_path: Path) -> None:
    (tmp_path / "connections").mkdir()
    (tmp_path / "flows").mkdir()
    for name, text in CONNECTIONS.items():
        write(tmp_path / "connections" / f"{name}.yaml", text)
    write(tmp_path / "flows" / "t.yaml", FLOW)
    write(tmp_path / "flows" / "t.test.yaml", TESTS)
    result = CliRunner().invoke(main, ["test", str(tmp_path / "flows")])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output
