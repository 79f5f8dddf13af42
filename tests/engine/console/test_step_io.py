"""What each step did, and finding runs and dead letters, over real HTTP.

A flow shapes an order, stores a variable, calls a partner on loopback that echoes the request
(with its ``Authorization`` header, a secret) and then validates what came back, which fails:
the run is dead-lettered and its timeline shows every step's input and output — with the
password field and the partner's echo of the secret masked — on the run page, in
``/api/runs/{id}`` and in ``flowrun runs show``. Runs are found by a payload field and dead
letters by error kind and HTTP status in the API, the pages and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.cli import main
from engine.console.models import RunDetail
from engine.records import compact
from engine.settings import Settings
from tests.engine.console.support import bearer, console_app, logged_in
from tests.engine.server_support import Running, serving

PARTNER_TOKEN = "partner-token-7f3a9c"
SECRETS = {"PARTNER": PARTNER_TOKEN}

FLOW = """
flow: echo
key: $string(order_number)
trigger:
  webhook: {{path: /hooks/echo}}
steps:
  - id: shape
    transform: '{{"order_number": order_number, "customer": customer, "password": password,
                 "lines": lines}}'
  - id: stamp
    set: {{seen: "true"}}
  - id: ask
    call:
      http:
        method: POST
        url: "{partner}/echo"
        auth: {{bearer: "${{secret:PARTNER}}"}}
        json: '{{"order": order_number}}'
    output: body
  - id: check
    validate: {{schema: console/order.v1}}
"""

BOOK_FLOW = """
flow: book
trigger:
  webhook: {path: /hooks/book}
steps:
  - id: check
    validate: {schema: console/order.v1}
  - id: erp
    call:
      http: {method: POST, url: "PARTNER/orders/{{ sku }}"}
"""


def echo(request: Request) -> Response:
    """The partner: says back what it was sent, the credentials too (a careless partner)."""
    return Response(json.dumps({"auth": request.headers.get("Authorization"),
                                "got": json.loads(request.get_data() or b"null")}),
                    status=200, content_type="application/json")


@pytest.fixture
def server(tmp_path: Path, httpserver: HTTPServer) -> Any:
    httpserver.expect_request("/echo", method="POST").respond_with_handler(echo)
    flows = {"echo": FLOW.format(partner=httpserver.url_for("/").rstrip("/"))}
    app = console_app(tmp_path, flows=flows, secrets=SECRETS)
    with serving(app) as running:
        yield running


def send(server: Running, body: Any) -> str:
    response = server.post("/hooks/echo", json.dumps(body), {"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    run_id = str(response.json()["run_id"])
    tree = server.app.wait_for(run_id, timeout=30)
    assert tree and tree[0].done, tree
    return run_id


def order(number: int, email: str = "ann@example.com", **extra: Any) -> dict[str, Any]:
    return {"order_number": number, "customer": {"email": email}, "password": "hunter2-long",
            "lines": [{"sku": "TONER-59X", "qty": 2}], **extra}


def detail(server: Running, run_id: str) -> RunDetail:
    answer = server.http.get(f"{server.url}/api/runs/{run_id}", headers=bearer())
    assert answer.status_code == 200, answer.text
    return RunDetail.model_validate(answer.json())


def test_each_step_shows_its_input_and_output_with_secrets_masked(server: Running) -> None:
    run_id = send(server, order(501))
    run = detail(server, run_id)
    assert run.status == "dead_lettered"
    shape, stamp, ask, check = run.steps
    assert shape.input is not None and shape.output is not None
    given, left = json.loads(shape.input.json_), json.loads(shape.output.json_)
    assert given["customer"] == {"email": "ann@example.com"} and given["password"] == "***"
    assert left == {"order_number": 501, "customer": {"email": "ann@example.com"},
                    "password": "***", "lines": [{"sku": "TONER-59X", "qty": 2}]}
    assert not shape.output.truncated and shape.output.size > len('{"password":"***"}')
    # a step that stored a variable and left the body alone
    assert stamp.unchanged and stamp.output is not None and stamp.output.json_ == \
        shape.output.json_
    # the partner echoed the bearer token: known to the secrets store, so masked by value
    assert ask.input is not None and ask.input.json_ == shape.output.json_
    assert ask.output is not None and PARTNER_TOKEN not in ask.output.json_
    answer = json.loads(ask.output.json_)
    assert answer["status"] == 200 and answer["body"] == {"auth": "Bearer ***",
                                                          "got": {"order": 501}}
    # the failing step: what it was given, nothing left
    assert check.status == "failed" and check.output is None
    assert check.input is not None and check.input.json_ == ask.output.json_
    # the stored record holds no secret either: masked when the step ran
    state = server.app.store.get_run(run_id)
    assert state is not None
    stored = json.dumps(state.steps)
    assert PARTNER_TOKEN not in stored and "hunter2-long" not in stored

    page = logged_in(server).get(f"{server.url}/console/runs/{run_id}")
    assert page.status_code == 200
    assert page.text.count('class="step-io"') == 4
    assert "did not change it" in page.text  # the set step
    assert "hunter2-long" not in page.text and PARTNER_TOKEN not in page.text


def test_a_big_output_is_kept_as_its_first_kilobytes(server: Running) -> None:
    lines = [{"sku": f"SKU-{i:05}", "qty": i} for i in range(2000)]
    run = detail(server, send(server, order(502, lines=lines)))
    output = run.steps[0].output
    assert output is not None and output.truncated
    assert len(output.json_.encode()) <= 4096 and output.size > 40_000
    assert output.json_.startswith('{"order_number":502')
    state = server.app.store.get_run(run.run_id)
    assert state is not None and len(json.dumps(state.steps)) < 4 * 4096


def test_snapshots_can_be_turned_off(tmp_path: Path, httpserver: HTTPServer) -> None:
    assert Settings(step_snapshots="0").step_snapshots == 0  # type: ignore[arg-type]
    httpserver.expect_request("/echo", method="POST").respond_with_handler(echo)
    flows = {"echo": FLOW.format(partner=httpserver.url_for("/").rstrip("/"))}
    app = console_app(tmp_path, flows=flows, secrets=SECRETS)
    app.runner.snapshots = 0  # what FLOWRUN_STEP_SNAPSHOTS=0 sets when the app is built
    with serving(app) as running:
        run = detail(running, send(running, order(503)))
    assert [s.status for s in run.steps] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert all(s.input is None and s.output is None for s in run.steps)


def test_a_compacted_run_drops_its_snapshots(server: Running) -> None:
    run_id = send(server, order(504))
    state = server.app.store.get_run(run_id)
    assert state is not None and "output" in state.steps[0]
    server.app.store.save_run(compact(state, state.updated_at))
    run = detail(server, run_id)
    assert [s.id for s in run.steps] == ["shape", "stamp", "ask", "check"]
    assert all(s.input is None and s.output is None for s in run.steps)


def test_runs_are_found_by_a_payload_field(server: Running) -> None:
    ann = send(server, order(601, "ann@example.com"))
    send(server, order(602, "bob@example.com"))
    ann_again = send(server, order(603, "ann@example.com"))

    def found(**params: str) -> tuple[list[str], str | None]:
        answer = server.http.get(f"{server.url}/api/runs", headers=bearer(), params=params)
        assert answer.status_code == 200, answer.text
        return [r["run_id"] for r in answer.json()], answer.headers.get("X-Flowrun-Searched")

    runs, searched = found(payload="customer.email = ann@example.com")
    assert runs == [ann_again, ann]
    assert searched == "searched the latest 10,000 runs matching the other filters"
    assert found(payload="payload.order_number=602", flow="echo")[0] != []
    assert found(payload="customer.email=nobody@example.com")[0] == []
    bad = server.http.get(f"{server.url}/api/runs", headers=bearer(),
                          params={"payload": "customer email"})
    assert bad.status_code == 400 and "customer.email = a@example.com" in bad.json()["error"]

    page = logged_in(server).get(f"{server.url}/console/runs",
                                 params={"payload": "customer.email = ann@example.com"})
    assert page.text.count('href="/console/runs/') == 2
    assert "searched the latest 10,000 runs" in page.text
    refused = logged_in(server).get(f"{server.url}/console/runs", params={"payload": "=x"})
    assert refused.status_code == 400 and "Traceback" not in refused.text


def test_dead_letters_are_filtered_by_error_kind_and_http_status(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    flow = BOOK_FLOW.replace("PARTNER", httpserver.url_for("/").rstrip("/"))
    httpserver.expect_request("/orders/GONE", method="POST").respond_with_data("gone", 410)
    httpserver.expect_request("/orders/BAD", method="POST").respond_with_json(
        {"error": "bad sku"}, 422)
    app = console_app(tmp_path, flows={"book": flow})
    with serving(app) as server:
        for body in ({"order_number": 1, "sku": "GONE", "qty": 1},
                     {"order_number": 2, "sku": "BAD", "qty": 1}, {"qty": 1}):
            response = server.post("/hooks/book", json.dumps(body),
                                   {"Content-Type": "application/json"})
            assert server.app.wait_for(response.json()["run_id"], timeout=30)

        def kinds(**params: str) -> list[tuple[str, str]]:
            answer = server.http.get(f"{server.url}/api/dead-letters", headers=bearer(),
                                     params=params)
            assert answer.status_code == 200, answer.text
            return sorted((e["step"], e["error"].split(":")[0]) for e in answer.json())

        assert kinds(kind="http") == [("erp", "erp (http 410)"), ("erp", "erp (http 422)")]
        assert kinds(kind="http", http_status="422") == [("erp", "erp (http 422)")]
        assert kinds(kind="validation") == [("check", "check (validation)")]
        assert kinds(kind="timeout") == []
        assert kinds(kind="http", since="1h", until="2999-01-01") != []
        bad = server.http.get(f"{server.url}/api/dead-letters", headers=bearer(),
                              params={"http_status": "abc"})
        assert bad.status_code == 400 and "http_status" in bad.json()["error"]

        page = logged_in(server).get(f"{server.url}/console/dlq",
                                     params={"kind": "http", "http_status": "410"})
        assert page.text.count('href="/console/dlq/') == 1
        assert '<option selected>http</option>' in page.text
        # a page of one: "select all matching" counts the entries of that kind, not all
        one = logged_in(server).get(f"{server.url}/console/dlq",
                                    params={"kind": "http", "limit": "1"})
        assert '<span id="matching">2</span>' in one.text


def test_the_cli_shows_step_io_and_filters(server: Running, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    run_id = send(server, order(701, "cli@example.com"))
    settings = server.app.settings
    for name, value in (("FLOWRUN_HOME", settings.home), ("FLOWRUN_FLOWS", settings.flows),
                        ("FLOWRUN_SECRETS_FILE", settings.secrets_file)):
        monkeypatch.setenv(name, str(value))
    cli = CliRunner()
    shown = cli.invoke(main, ["runs", "show", run_id[:12]])
    assert shown.exit_code == 0, shown.output
    assert "step shape" in shown.output and '"password": "***"' in shown.output
    assert "output: the body as it came in (unchanged)" in shown.output
    assert "output: none (the step failed)" in shown.output
    assert PARTNER_TOKEN not in shown.output and "hunter2-long" not in shown.output
    brief = cli.invoke(main, ["runs", "show", run_id[:12], "--no-io"])
    assert "step shape" not in brief.output
    # the JSON forms mask the secret the partner echoed too (its envelope holds the answer)
    as_json = cli.invoke(main, ["runs", "show", run_id[:12], "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert PARTNER_TOKEN not in as_json.output
    assert "Bearer ***" in as_json.output, as_json.output[:3000]
    (entry,) = json.loads(cli.invoke(main, ["dlq", "list", "--json"]).output)
    entry_shown = cli.invoke(main, ["dlq", "show", entry["id"]])
    assert entry_shown.exit_code == 0, entry_shown.output
    assert PARTNER_TOKEN not in entry_shown.output and '"Bearer ***"' in entry_shown.output

    listed = cli.invoke(main, ["runs", "--payload", "customer.email=cli@example.com"])
    assert listed.exit_code == 0, listed.output
    assert run_id[:12] in listed.output and "latest 10,000 runs" in listed.output
    wrong = cli.invoke(main, ["runs", "--payload", "customer.email"])
    assert wrong.exit_code == 2 and "--payload" in wrong.output

    by_kind = cli.invoke(main, ["dlq", "list", "--kind", "validation", "--json"])
    assert by_kind.exit_code == 0, by_kind.output
    assert [e["run_id"] for e in json.loads(by_kind.output)] == [run_id]
    assert json.loads(cli.invoke(main, ["dlq", "list", "--kind", "http", "--json"]).output) == []
    assert cli.invoke(main, ["dlq", "list", "--http-status", "99"]).exit_code == 2
