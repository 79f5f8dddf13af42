"""The console's flow diagram and a run's path over it, over real HTTP: the pages, the drawing
as a file, links between flows, the version a run used, and the bad input (unknown flow, run or
format, a secret written into a flow)."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.engine.console.support import (
    ORDER_FLOW,
    TOKEN,
    console,
    console_app,
    dead_letter,
    logged_in,
    order,
    send,
)
from tests.engine.mermaid_check import problems
from tests.engine.server_support import serving

SVG = "{http://www.w3.org/2000/svg}"
HANDS_OFF = """
flow: intake
trigger:
  webhook: {path: /hooks/intake}
steps:
  - id: to_orders
    route:
      - otherwise: true
        flow: orders
"""


def states(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-node="([^"]+)" data-state="([^"]+)"', page))


def test_the_flow_page_draws_the_flow_and_lists_its_runs(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        state = send(server, order(7))
        http = logged_in(server)
        overview = http.get(server.url + "/console/")
        assert 'href="/console/flows/orders"' in overview.text
        page = http.get(server.url + "/console/flows/orders")
        assert page.status_code == 200
        svg = page.text[page.text.index("<svg"):page.text.index("</svg>") + 6]
        nodes = [g.get("data-node") for g in ET.fromstring(svg).iter(f"{SVG}g")
                 if "step" in (g.get("class") or "").split()]
        assert nodes == ["step:check", "step:shape", "step:confirm"]
        assert f'href="/console/runs/{state.run_id}/path"' in page.text
        assert "style=" not in svg  # the console's CSP refuses inline styles


def test_the_drawing_comes_as_svg_and_mermaid_files(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        http = logged_in(server)
        svg = http.get(server.url + "/console/flows/orders/graph.svg")
        assert svg.headers["content-type"] == "image/svg+xml"
        assert "default-src 'none'" in svg.headers["content-security-policy"]
        ET.fromstring(svg.text)
        mermaid = http.get(server.url + "/console/flows/orders/graph.mmd")
        assert mermaid.text.startswith("flowchart TD\n") and problems(mermaid.text) == []
        other = http.get(server.url + "/console/flows/orders/graph.png")
        assert other.status_code == 404 and "graph.svg" in other.text
        missing = http.get(server.url + "/console/flows/order")
        assert missing.status_code == 404
        assert "no flow 'order' loaded; did you mean 'orders'" in html.unescape(missing.text)
        gone = http.get(server.url + "/console/runs/0123456789abcdef/path")
        assert gone.status_code == 404 and "Traceback" not in gone.text
        # signed out, the diagram is behind the login like every page
        anonymous = server.http.get(server.url + "/console/flows/orders",
                                    allow_redirects=False)
        assert anonymous.status_code == 303 and "/console/login" in anonymous.headers["location"]


def test_a_dead_lettered_run_shows_its_failing_step_in_red(tmp_path: Path) -> None:
    with console(tmp_path) as server:
        entry = dead_letter(server, 11)
        http = logged_in(server)
        run_page = http.get(server.url + f"/console/runs/{entry.run_id}")
        assert f'href="/console/runs/{entry.run_id}/path"' in run_page.text
        page = http.get(server.url + f"/console/runs/{entry.run_id}/path")
        assert page.status_code == 200
        assert states(page.text) == {"trigger": "passed", "step:check": "failed",
                                     "dead_letter": "failed"}
        assert 'data-source="step:check" data-target="dead_letter" data-taken="true"' \
            in page.text


def test_a_hand_off_links_to_the_other_flow_and_the_path_ends_there(tmp_path: Path) -> None:
    app = console_app(tmp_path, flows={"orders": ORDER_FLOW, "intake": HANDS_OFF})
    with serving(app) as server:
        response = server.post("/hooks/intake", '{"order_number": 1, "sku": "A", "qty": 1}',
                               {"Content-Type": "application/json"})
        run_id = response.json()["run_id"]
        tree = app.wait_for(run_id, timeout=30)
        assert [s.status for s in tree] == ["handed_off", "succeeded"]
        http = logged_in(server)
        page = http.get(server.url + "/console/flows/intake")
        assert '<a href="/console/flows/orders" class="flow-link">' in page.text
        path = http.get(server.url + f"/console/runs/{run_id}/path")
        assert states(path.text) == {"trigger": "passed", "step:to_orders": "passed",
                                     "flow:orders": "reached"}
        assert "otherwise" in path.text and 'id="branches"' in path.text


def test_a_run_is_drawn_on_the_version_it_ran_on(tmp_path: Path) -> None:
    app = console_app(tmp_path)
    with serving(app) as server:
        first = send(server, order(21))
        # the flow changes under the server: a step is added
        changed = ORDER_FLOW + "  - id: audit\n    log: {message: '\"audited\"'}\n"
        (tmp_path / "flows" / "orders.yaml").write_text(changed, encoding="utf-8")
        app.versions.use(app.loader.load_paths([tmp_path / "flows"]))
        http = logged_in(server)
        today = http.get(server.url + "/console/flows/orders")
        assert 'data-node="step:audit"' in today.text
        then = http.get(server.url + f"/console/runs/{first.run_id}/path")
        assert 'data-node="step:audit"' not in then.text
        assert "the flow has changed since" in then.text


def test_a_secret_written_into_a_flow_is_not_drawn(tmp_path: Path) -> None:
    leaky = ORDER_FLOW + f"  - id: shout\n    log: {{message: '\"{TOKEN}\"'}}\n"
    app = console_app(tmp_path, flows={"orders": leaky})
    with serving(app) as server:
        http = logged_in(server)
        for address in ("/console/flows/orders", "/console/flows/orders/graph.svg",
                        "/console/flows/orders/graph.mmd"):
            page = http.get(server.url + address)
            assert page.status_code == 200 and TOKEN not in page.text, address
