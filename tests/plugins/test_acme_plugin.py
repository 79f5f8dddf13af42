"""A connector written as a separate distribution plugs in through entry points alone.

``tests/plugins/acme_connector`` has its own pyproject.toml and imports only `engine.plugin`. It
is installed the way pip lays out a package — the package beside an ``.dist-info`` folder with
its ``entry_points.txt`` — in a temporary folder on PYTHONPATH, and flowrunner's own commands
(started as processes, so nothing was loaded before the plugin arrived) find its connection
kind, its ``call:`` connector and its poll source: a flow using all three validates, and runs
against a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import free_port, wait_until

PLUGIN = Path(__file__).resolve().parent / "acme_connector"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "connector-authors.md"
TOKEN = "acme-token-7f3a"

FLOW = """\
flow: acme-relay
trigger:
  poll:
    every: 1s
    acme: {connection: acme_eu, queue: inbound}
steps:
  - id: shape
    transform: '{"order": id, "total": total * 2}'
  - id: forward
    call: {acme: {connection: acme_eu, queue: processed}}
"""
TESTS = """\
flow: acme-relay
env: {ACME_URL: "http://acme.test/api"}
secrets: {ACME_TOKEN: token-for-tests}
cases:
  - name: a message is doubled and posted to the processed queue
    input: {body: {id: m-9, total: 4}}
    mocks:
      - step: forward
        responses: [{status: 200, body: {id: p-9}}]
    expect:
      status: succeeded
      calls:
        - step: forward
          count: 1
          url: "http://acme.test/api/queues/processed"
          headers: {Authorization: Bearer token-for-tests}
          body: {order: m-9, total: 8}
"""
CONNECTION = """\
connection: acme_eu
acme: {base_url: "${env:ACME_URL}", token: "${secret:ACME_TOKEN}"}
"""


def install(site: Path) -> None:
    """What pip install would leave: the package, and its metadata with the entry points."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    shutil.copytree(PLUGIN / "acme_connector", site / "acme_connector")
    dist = site / f"acme_connector-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in project["dependencies"]), encoding="utf-8")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
        + "\n" for group, points in project["entry-points"].items()), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (flows/, connections/) with the plugin installed in site/."""
    install(tmp_path / "site")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "acme-relay.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "connections").mkdir()
    (tmp_path / "connections" / "acme_eu.yaml").write_text(CONNECTION, encoding="utf-8")
    return tmp_path


def env(project: Path, httpserver: HTTPServer) -> dict[str, str]:
    path = os.pathsep.join(p for p in [str(project / "site"), os.environ.get("PYTHONPATH")]
                           if p)
    return {**os.environ, "PYTHONPATH": path, "FLOWRUN_HOME": str(project / "home"),
            "ACME_URL": httpserver.url_for("/api"), "FLOWRUN_SECRET_ACME_TOKEN": TOKEN}


def flowrun(project: Path, httpserver: HTTPServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=project,
                          env=env(project, httpserver), capture_output=True, text=True,
                          timeout=120)


def test_its_parts_are_listed_as_the_plugin_s(project: Path, httpserver: HTTPServer) -> None:
    done = flowrun(project, httpserver, "connectors", "--format", "json")
    assert done.returncode == 0, done.stderr
    acme = {(p["kind"], p["distribution"], p["enabled"]) for p in json.loads(done.stdout)
            if p["name"] == "acme"}
    assert acme == {("connection", "acme-connector", True), ("connector", "acme-connector", True),
                    ("poll_source", "acme-connector", True)}


def test_a_flow_using_it_validates(project: Path, httpserver: HTTPServer) -> None:
    done = flowrun(project, httpserver, "validate", "flows")
    assert done.returncode == 0, done.stdout + done.stderr


def test_its_models_give_flowrunner_s_errors(project: Path, httpserver: HTTPServer) -> None:
    (project / "connections" / "acme_eu.yaml").write_text(
        CONNECTION.replace("token:", "tokn:"), encoding="utf-8")
    (project / "flows" / "acme-relay.yaml").write_text(
        FLOW.replace("queue: processed", "queue: processed, connection: acme_us")
        .replace("{connection: acme_eu, queue: processed, ", "{queue: processed, "),
        encoding="utf-8")
    done = flowrun(project, httpserver, "validate", "flows")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "acme_eu.yaml:2:37 acme.tokn: unknown key 'tokn'; did you mean 'token'?" in out, out
    assert ("acme-relay.yaml:5:24 trigger.poll.acme.connection: connection 'acme_eu' has "
            "errors") in out, out
    assert ("acme-relay.yaml:10:49 steps[1].call.acme.connection: no connection 'acme_us'"
            in out), out


def test_its_connector_is_answered_by_flow_test_mocks(project: Path,
                                                     httpserver: HTTPServer) -> None:
    # the connector sends through the HTTP transport it is handed: flowrun test's twin
    (project / "flows" / "acme-relay.test.yaml").write_text(TESTS, encoding="utf-8")
    done = flowrun(project, httpserver, "test", "flows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
    assert httpserver.log == []  # nothing reached a network


def test_a_flow_using_it_runs(project: Path, httpserver: HTTPServer) -> None:
    inbound = "/api/queues/inbound/messages"
    httpserver.expect_oneshot_request(inbound, method="GET").respond_with_json(
        [{"id": "m-1", "total": 21}])
    httpserver.expect_request(inbound, method="GET").respond_with_json([])
    httpserver.expect_request("/api/queues/processed", method="POST").respond_with_json(
        {"id": "p-1"})
    environment = env(project, httpserver)
    processes = [subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=project,
                                  env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
                 for args in (["scheduler", "--flows", "flows"],
                              ["serve", "--flows", "flows", "--port", str(free_port())])]
    try:
        posted = wait_until(lambda: [r for r, _ in httpserver.log
                                     if r.path == "/api/queues/processed"], 60,
                            "the flow to post to the processed queue")
    finally:
        for process in processes:
            process.terminate()
        errors = [process.communicate(timeout=30)[1].decode() for process in processes]
    assert posted[0].get_json() == {"order": "m-1", "total": 42}, errors
    assert posted[0].headers["Authorization"] == f"Bearer {TOKEN}"
    polls = [r for r, _ in httpserver.log if r.path == "/api/queues/inbound/messages"]
    assert polls[0].headers["Authorization"] == f"Bearer {TOKEN}"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", GUIDE.read_text(encoding="utf-8"),
                      re.MULTILINE | re.DOTALL)


def test_the_guide_shows_the_plugin_as_it_is() -> None:
    # the worked example in docs/connector-authors.md is this tested plugin, word for word
    module = (PLUGIN / "acme_connector" / "__init__.py").read_text(encoding="utf-8")
    pyproject = (PLUGIN / "pyproject.toml").read_text(encoding="utf-8")
    assert module in _blocks("python")
    assert "".join(line + "\n" for line in pyproject.splitlines()
                   if not line.startswith("#")).lstrip() in _blocks("toml")


def test_the_guide_s_yaml_validates_and_its_flow_test_passes(
        project: Path, httpserver: HTTPServer) -> None:
    written = []
    for block in _blocks("yaml"):
        first, _, text = block.partition("\n")
        target = project / first.removeprefix("# ")
        target.write_text(text, encoding="utf-8")
        written.append(first)
    assert written == ["# connections/acme_eu.yaml", "# flows/acme-relay.yaml",
                       "# flows/acme-relay.test.yaml"]
    done = flowrun(project, httpserver, "validate", "flows")
    assert done.returncode == 0, done.stdout + done.stderr
    done = flowrun(project, httpserver, "test", "flows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
