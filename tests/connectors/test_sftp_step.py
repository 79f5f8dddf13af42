"""The ``sftp`` step from YAML through the real loader, against the SFTP sandbox on loopback.

Connections are real connection files in a temp ``connections/`` folder; the password comes
from the secrets, the server key from the known_hosts file the sandbox writes (or a pin). Runs go
through the runner's in-process loop with its retry policy, so retryable and final failures are
told apart exactly as in production.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.loader import FlowSet, Loader
from engine.local import resources_factory, run_to_completion
from engine.problems import Problems
from engine.records import RunState
from engine.refs import Secrets
from engine.runner import Runner
from engine.sandbox_sftp import SftpSandbox, new_key

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENV = "FLOWRUN_SECRET_SUPPLIER_SFTP_PASSWORD"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[SftpSandbox]:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    with SftpSandbox(root) as sandbox:
        yield sandbox


def connection_file(folder: Path, box: SftpSandbox, *, port: int | None = None,
                    check: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    check = check or f"known_hosts: {box.known_hosts}"
    (folder / "supplier.yaml").write_text(
        "connection: supplier\nsftp:\n  host: 127.0.0.1\n"
        f"  port: {port or box.port}\n  username: {box.username}\n"
        "  password: ${secret:SUPPLIER_SFTP_PASSWORD}\n"
        f"  {check}\n  timeout: 2s\n", encoding="utf-8")
    (folder / "erp.yaml").write_text(
        "connection: erp\nhttp: {base_url: 'http://127.0.0.1:9'}\n", encoding="utf-8")
    return folder


def load(text: str, connections: Path, password: str) -> tuple[Any, Secrets, list[str]]:
    secrets = Secrets(environ={SECRET_ENV: password})
    loader = Loader(secrets=secrets, connections_dir=connections)
    flow, problems = loader.load_file("t.yaml", text.encode("utf-8"))
    return flow, secrets, [f"{p.line}:{p.column} {p.message}" for p in problems
                           if p.severity == "error"]


def run(text: str, box: SftpSandbox, tmp_path: Path, body: Any = None, *,
        password: str | None = None, **conn: Any) -> RunState:
    folder = connection_file(tmp_path / "connections", box, **conn)
    flow, secrets, problems = load(text, folder, password or box.password)
    assert flow is not None, problems
    runner = Runner(resources_factory(secrets), secrets.redactor)
    states = run_to_completion(FlowSet({flow.id: flow}, Problems()), flow, body, {},
                               runner=runner, sleep=lambda s: None)
    return states[0]


def flow(step: str, attempts: int = 3) -> str:
    return (f"flow: t\ndefaults:\n  retry: {{max_attempts: {attempts}, backoff: {{initial: 1s}},"
            " retry_on: {errors: [connection, timeout]}}\n"
            f"steps:\n  - id: send\n    sftp: {step}\n")


PUT_PO = flow("{connection: supplier, put: {path: '/in/PO_{{ po }}.edi', content: edi}}")


def test_put_writes_atomically_under_the_rendered_name_and_keeps_the_body(
        box: SftpSandbox, tmp_path: Path) -> None:
    body = {"po": "4500012345", "edi": "ISA*00*...~" * 20_000}
    state = run(PUT_PO, box, tmp_path, body)
    assert state.status == "succeeded", state.error
    target = box.root / "in" / "PO_4500012345.edi"
    assert target.read_text(encoding="utf-8") == body["edi"]
    assert state.envelope["body"] == body  # put sends; the message goes on unchanged
    assert len(box.writes) > 1
    for written, names in box.writes:  # never visible under the final name while written
        assert written.startswith(".PO_4500012345.edi.") and written.endswith(".part")
        assert "PO_4500012345.edi" not in names
    assert sorted(p.name for p in (box.root / "in").iterdir()) == ["PO_4500012345.edi"]


def test_put_writes_json_for_data_and_makes_folders(box: SftpSandbox, tmp_path: Path) -> None:
    step = "{connection: supplier, put: {path: '/in/{{ id }}/order.json', make_dirs: true}}"
    state = run(flow(step), box, tmp_path, {"id": "A-1", "qty": 2, "name": "Köln"})
    assert state.status == "succeeded", state.error
    written = (box.root / "in" / "A-1" / "order.json").read_text(encoding="utf-8")
    assert written == '{"id": "A-1", "qty": 2, "name": "Köln"}'


def test_get_reads_the_file_into_the_body(box: SftpSandbox, tmp_path: Path) -> None:
    (box.root / "out" / "prices.csv").write_text("sku;price\nA;1,50\n", encoding="latin-1")
    step = "{connection: supplier, get: {path: /out/prices.csv, encoding: latin-1}}"
    state = run(flow(step), box, tmp_path, {"ignored": True})
    assert state.status == "succeeded", state.error
    assert state.envelope["body"] == "sku;price\nA;1,50\n"


def test_a_pinned_host_key_is_accepted_and_a_wrong_pin_is_final(box: SftpSandbox,
                                                                 tmp_path: Path) -> None:
    state = run(PUT_PO, box, tmp_path, {"po": "1", "edi": "x"},
                check=f"host_key: '{box.fingerprint}'")
    assert state.status == "succeeded", state.error
    other, _ = new_key()
    from connectors.sftp_client import fingerprint

    state = run(PUT_PO, box, tmp_path, {"po": "2", "edi": "x"},
                check=f"host_key: '{fingerprint(other)}'")
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "host_key"
    assert len(state.attempts) <= 1  # never retried: a changed key needs a person
    assert state.error["message"].startswith(f"step 'send' (t.yaml:5): connection "
                                             f"'supplier': host key of "
                                             f"[127.0.0.1]:{box.port} does not match")
    assert box.fingerprint in state.error["message"]
    assert not (box.root / "in" / "PO_2.edi").exists()


def test_a_wrong_password_is_final_and_never_shown(box: SftpSandbox, tmp_path: Path) -> None:
    wrong = "not-the-password-0815"
    state = run(PUT_PO, box, tmp_path, {"po": "3", "edi": "x"}, password=wrong)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "auth"
    assert len(state.attempts) <= 1
    assert state.error["message"] == (f"step 'send' (t.yaml:5): connection 'supplier': "
                                      f"127.0.0.1:{box.port}: "
                                      f"authentication as '{box.username}' failed")
    assert wrong not in str(state.to_dict())


def test_a_refused_connection_is_retried_then_dead_lettered(box: SftpSandbox,
                                                            tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    state = run(PUT_PO, box, tmp_path, {"po": "4", "edi": "x"}, port=closed)
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "connection"
    assert f"connection 'supplier': 127.0.0.1:{closed}" in state.error["message"]
    assert state.attempt == 3  # the policy's three attempts were made


def test_a_server_that_never_answers_is_a_retryable_timeout(box: SftpSandbox,
                                                            tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never says a word
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    try:
        state = run(flow("{connection: supplier, get: {path: /out/x}}", attempts=1), box,
                    tmp_path, port=silent.getsockname()[1])
    finally:
        silent.close()
        for sock in held:
            sock.close()
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "timeout"
    assert "no SSH answer within 2 s" in state.error["message"]


def test_a_missing_remote_file_is_final(box: SftpSandbox, tmp_path: Path) -> None:
    state = run(flow("{connection: supplier, get: {path: '/out/{{ name }}'}}"), box, tmp_path,
                {"name": "nope.csv"})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "not_found"
    assert state.attempt == 1
    assert "get /out/nope.csv: no such file" in state.error["message"]


def test_a_value_climbing_out_of_the_folder_is_refused(box: SftpSandbox,
                                                       tmp_path: Path) -> None:
    state = run(PUT_PO, box, tmp_path, {"po": "../../etc/x", "edi": "x"})
    assert state.status == "dead_lettered"
    assert state.error is not None and state.error["kind"] == "invalid_input"
    assert state.error["message"] == ("step 'send' (t.yaml:5): sftp.put.path: "
                                      "'/in/PO_../../etc/x.edi' leaves its folder ('..'); "
                                      "refused")


@pytest.mark.parametrize(("step", "expected"), [
    ("{connection: suplier, put: {path: /in/x}}",
     "6:24 no connection 'suplier' in {folder}; did you mean 'supplier'?"),
    ("{connection: erp, put: {path: /in/x}}",
     "6:24 connection 'erp' is an http connection; this needs sftp"),
    ("{connection: supplier, put: {path: /in/x}, get: {path: /out/x}}",
     "6:11 give exactly one of 'put:' or 'get:'"),
    ("{connection: supplier, put: {path: /in/x, conent: body}}",
     "6:53 unknown key 'conent'; did you mean 'content'?"),
])
def test_load_errors_name_line_and_column(box: SftpSandbox, tmp_path: Path, step: str,
                                          expected: str) -> None:
    folder = connection_file(tmp_path / "connections", box)
    loaded, _, problems = load(flow(step), folder, "x")
    assert loaded is None
    assert problems == [expected.format(folder=folder)]
