"""Named connections at load: each broken connection file or flow reference → the exact problem.

One table row per mistake in a connection file; each is loaded with a flow that uses it through
the real `Loader.load_paths`, as `flowrun validate` does. A row names the problem (line, column,
path, message fragment) and the flow must then hear that the connection has errors, never
"no such connection". Further down: the flow side (unknown names with "did you mean", wrong
kinds, url/auth beside a connection) and credentials that must not be echoed.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.loader import Loader
from engine.problems import Problem
from engine.refs import Secrets

USES_C = "flow: t\nsteps:\n  - id: s\n    call:\n      http: {connection: c, path: /x}\n"
SECRETS = {"FLOWRUN_SECRET_S": "s3cr3t-value", "FLOWRUN_SECRET_P": "pw-value"}


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    line: int
    column: int
    path: str
    fragment: str


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


CASES = [
    Case("password-written-out", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            basic: {username: u, password: hunter2-pw}
        """), 5, 36, "http.auth.basic.password", "a credential is written out in the file"),
    Case("bearer-from-env", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth: {bearer: "${env:ERP_TOKEN}"}
        """), 4, 18, "http.auth.bearer", "must come from the secrets store, not the environment"),
    Case("api-key-written-out", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            api_key: {header: X-Api-Key, value: ak-1234567}
        """), 5, 41, "http.auth.api_key.value", "write '${secret:NAME}' here"),
    Case("client-secret-a-number", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            oauth2: {token_url: http://t.test, client_id: a, client_secret: 987654321}
        """), 5, 69, "http.auth.oauth2.client_secret", "expected '${secret:NAME}' here"),
    Case("credential-header-written-out", y("""
        connection: c
        http:
          base_url: http://erp.test
          headers:
            X-Tenant: eu
            Authorization: Basic dXNlcjpwYXNz
        """), 6, 20, "http.headers.Authorization", "a credential is written out"),
    Case("unknown-auth-kind", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            kerberos: {realm: X}
        """), 5, 5, "http.auth.kerberos",
         "unknown key 'kerberos'; allowed here: api_key, basic, bearer, oauth2"),
    Case("misspelt-auth-kind", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            oauth: {token_url: http://t.test, client_id: a, client_secret: "${secret:S}"}
        """), 5, 5, "http.auth.oauth", "did you mean 'oauth2'?"),
    Case("two-auth-kinds", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            bearer: "${secret:S}"
            basic: {username: u, password: "${secret:P}"}
        """), 4, 3, "http.auth",
         "auth needs exactly one of basic, bearer, api_key, oauth2; found basic and bearer"),
    Case("no-auth-kind", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth: {}
        """), 4, 9, "http.auth", "auth needs exactly one of basic, bearer, api_key, oauth2"),
    Case("api-key-nowhere", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            api_key: {value: "${secret:S}"}
        """), 5, 14, "http.auth.api_key", "api_key needs exactly one of header, query"),
    Case("api-key-both-places", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            api_key: {header: X-Key, query: key, value: "${secret:S}"}
        """), 5, 14, "http.auth.api_key", "found header and query"),
    Case("client-auth-unknown", y("""
        connection: c
        http:
          base_url: http://erp.test
          auth:
            oauth2:
              token_url: http://t.test
              client_id: a
              client_secret: "${secret:S}"
              client_auth: header
        """), 9, 20, "http.auth.oauth2.client_auth",
         "'header' is not allowed; expected 'basic' or 'body'"),
    Case("client-key-without-cert", y("""
        connection: c
        http:
          base_url: https://erp.test
          tls: {client_key: client.key}
        """), 4, 8, "http.tls", "client_key needs client_cert"),
    Case("certificate-path-as-secret", y("""
        connection: c
        http:
          base_url: https://erp.test
          tls: {ca_bundle: "${secret:S}"}
        """), 4, 20, "http.tls.ca_bundle", "a certificate file name is not a secret"),
    Case("misspelt-timeout", y("""
        connection: c
        http:
          base_url: http://erp.test
          timeout: {conect: 3s}
        """), 4, 13, "http.timeout.conect", "did you mean 'connect'?"),
    Case("bad-duration", y("""
        connection: c
        http:
          base_url: http://erp.test
          timeout: {read: soon}
        """), 4, 19, "http.timeout.read", "'soon' is not a duration"),
    Case("misspelt-kind", "connection: c\nhtp:\n  base_url: http://erp.test\n",
         2, 1, "htp", "did you mean 'http'?"),
    Case("http-and-sftp", y("""
        connection: c
        http: {base_url: http://erp.test}
        sftp: {host: h, username: u, password: "${secret:P}", host_key: "SHA256:x"}
        """), 1, 1, "", "amqp, as2, http, mqtt, nats, redis, sftp; found http and sftp"),
    Case("neither-http-nor-sftp", "connection: c\ndescription: nothing yet\n",
         1, 1, "", "a connection needs exactly one of amqp, as2, http, mqtt, nats, redis, "
                       "sftp"),
    Case("sftp-without-host-key", y("""
        connection: c
        sftp: {host: h, username: u, password: "${secret:P}"}
        """), 2, 7, "sftp", "give host_key"),
    Case("not-a-mapping", "- connection\n- c\n", 1, 1, "",
         "a connection file is a mapping starting with 'connection: <name>'"),
    Case("yaml-indentation", "connection: c\nhttp:\n  base_url: http://erp.test\n   headers: {}\n",
         4, 4, "", "indentation: 'headers' is indented 3 spaces, but the keys above are at 2 "
         "(line 3)"),
    Case("sftp-port-not-numeric", y("""
        connection: c
        sftp:
          host: sftp.test
          port: twenty-two
          username: u
          password: ${secret:P}
          host_key: "SHA256:abc"
        """), 4, 9, "sftp.port", "a port is a number from 1 to 65535, or '${env:NAME}'"),
    # a port from a secret would be echoed by a wrong-port message: only ${env:...} is taken
    Case("sftp-port-from-a-secret", y("""
        connection: c
        sftp:
          host: sftp.test
          port: ${secret:P}
          username: u
          password: ${secret:P}
          host_key: "SHA256:abc"
        """), 4, 9, "sftp.port", "a port is a number from 1 to 65535, or '${env:NAME}'"),
]


def problems_of(tmp_path: Path, files: dict[str, str], flow: str = USES_C,
                environ: dict[str, str] | None = None) -> list[Problem]:
    (tmp_path / "connections").mkdir()
    (tmp_path / "flows").mkdir()
    for name, text in files.items():
        (tmp_path / "connections" / name).write_text(text, encoding="utf-8")
    (tmp_path / "flows" / "t.yaml").write_text(flow, encoding="utf-8")
    loader = Loader(secrets=Secrets(environ=SECRETS if environ is None else environ))
    return list(loader.load_paths([tmp_path / "flows"]).problems)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_connection_file_mistake(case: Case, tmp_path: Path) -> None:
    found = errors(problems_of(tmp_path, {"c.yaml": case.text}))
    in_file = [p for p in found if p.file.endswith("c.yaml")]
    assert len(in_file) == 1, [str(p) for p in found]
    problem = in_file[0]
    assert (problem.line, problem.column, problem.path) == (case.line, case.column, case.path), \
        str(problem)
    assert case.fragment in problem.message, str(problem)
    # the flow using it hears that the connection is broken, where its file is
    flow_side = [p for p in found if p.file.endswith("t.yaml")]
    assert [str(p) for p in flow_side] == [
        f"{tmp_path}/flows/t.yaml:5:26 steps[0].call.http.connection: connection 'c' has "
        f"errors (see {tmp_path}/connections/c.yaml)"]


@pytest.mark.parametrize("case", [c for c in CASES if "written-out" in c.id
                                  or "a-number" in c.id], ids=lambda c: c.id)
def test_a_credential_written_out_is_never_echoed(case: Case, tmp_path: Path) -> None:
    written = {"password-written-out": "hunter2-pw", "api-key-written-out": "ak-1234567",
               "client-secret-a-number": "987654321",
               "credential-header-written-out": "dXNlcjpwYXNz"}[case.id]
    assert written in case.text
    shown = "\n".join(str(p) for p in problems_of(tmp_path, {"c.yaml": case.text}))
    assert "written out" in shown or "secret:NAME" in shown
    assert written not in shown


def test_every_problem_of_every_file_in_one_pass(tmp_path: Path) -> None:
    files = {c.id + ".yaml": c.text.replace("connection: c", f"connection: {c.id}")
             for c in CASES if c.id not in ("not-a-mapping", "yaml-indentation")}
    found = errors(problems_of(tmp_path, files, flow="flow: t\nsteps:\n  - id: s\n"
                                                    "    set: {x: '1'}\n"))
    assert sorted({Path(p.file).stem for p in found}) == sorted(Path(f).stem for f in files)


def test_name_differing_from_file_warns_and_the_declared_name_is_used(tmp_path: Path) -> None:
    text = "connection: erp_eu\nhttp: {base_url: http://erp.test}\n"
    flow = USES_C.replace("connection: c", "connection: erp_eu")
    found = problems_of(tmp_path, {"erp.yaml": text}, flow=flow)
    assert [(p.severity, p.line, p.column, p.message) for p in found] == [
        ("warning", 1, 13, "connection 'erp_eu' differs from the file name; name the file "
                           "erp_eu.yaml")]


def test_a_name_declared_twice_is_an_error_at_the_second(tmp_path: Path) -> None:
    text = "connection: erp\nhttp: {base_url: http://erp.test}\n"
    found = errors(problems_of(tmp_path, {"erp.yaml": text, "erp2.yaml": text},
                               flow=USES_C.replace("connection: c", "connection: erp")))
    assert [(Path(p.file).name, p.line, p.column) for p in found] == [("erp2.yaml", 1, 13)]
    assert found[0].message == f"connection 'erp' is already declared in " \
                               f"{tmp_path}/connections/erp.yaml"


def test_a_bad_name_says_which_characters_are_allowed(tmp_path: Path) -> None:
    found = errors(problems_of(tmp_path, {"c.yaml": "connection: erp eu\nhttp: "
                                                    "{base_url: http://erp.test}\n"}))
    assert found[0].line == 1 and found[0].path == "connection"
    assert found[0].message == ("'erp eu' cannot be a connection name; use letters, digits, "
                                "'_' and '-' only, e.g. erp_eu")


def test_a_missing_certificate_file_is_a_warning_naming_the_resolved_path(
        tmp_path: Path) -> None:
    text = "connection: c\nhttp:\n  base_url: https://erp.test\n  tls: {ca_bundle: certs/ca.pem}\n"
    found = problems_of(tmp_path, {"c.yaml": text})
    assert [(p.severity, p.line, p.column, p.path) for p in found] == [
        ("warning", 4, 20, "http.tls.ca_bundle")]
    assert f"no such file {tmp_path}/connections/certs/ca.pem" in found[0].message


def test_an_unset_secret_is_a_warning_at_its_position(tmp_path: Path) -> None:
    text = "connection: c\nhttp:\n  base_url: http://erp.test\n  auth: {bearer: \"${secret:T}\"}\n"
    found = problems_of(tmp_path, {"c.yaml": text}, environ={})
    assert [(p.severity, p.line, p.column) for p in found] == [("warning", 4, 19)]
    assert "${secret:T} is not set here" in found[0].message


# -- the flow side -----------------------------------------------------------------------------
OK_CONNECTIONS = {
    "erp_eu.yaml": "connection: erp_eu\nhttp: {base_url: http://erp.test}\n",
    "wms.yaml": "connection: wms\nhttp: {base_url: http://wms.test}\n",
    "supplier_a.yaml": y("""
        connection: supplier_a
        sftp: {host: h, username: u, password: "${secret:P}", host_key: "SHA256:x"}
        """),
}

FLOW_CASES = [
    ("unknown-name", "{connection: erp_ue, path: /x}", 5, 26, "steps[0].call.http.connection",
     "no connection 'erp_ue' in {connections}; did you mean 'erp_eu'?"),
    ("unknown-name-far-off", "{connection: crm, path: /x}", 5, 26,
     "steps[0].call.http.connection",
     "no connection 'crm' in {connections}; known: erp_eu, supplier_a, wms"),
    ("sftp-for-http", "{connection: supplier_a, path: /x}", 5, 26,
     "steps[0].call.http.connection",
     "connection 'supplier_a' is an sftp connection; this needs http"),
    ("url-beside-connection", "{connection: erp_eu, url: 'http://other.test/x'}", 5, 13,
     "steps[0].call.http", "with connection: give path: (joined to the connection's base_url), "
                           "not url:"),
    ("auth-beside-connection", "{connection: erp_eu, path: /x, auth: {bearer: '${secret:S}'}}",
     5, 13, "steps[0].call.http", "the credentials come from connection 'erp_eu'; remove auth: "
                                  "here (or drop connection: and give url:)"),
    ("path-without-connection", "{path: /x}", 5, 13, "steps[0].call.http",
     "path: is joined to a connection's base URL; add connection: or give a full url:"),
]


@pytest.mark.parametrize("case", FLOW_CASES, ids=[c[0] for c in FLOW_CASES])
def test_flow_reference_mistake(case: tuple[str, str, int, int, str, str],
                                tmp_path: Path) -> None:
    _, http, line, column, path, message = case
    flow = f"flow: t\nsteps:\n  - id: s\n    call:\n      http: {http}\n"
    found = errors(problems_of(tmp_path, OK_CONNECTIONS, flow=flow))
    assert [(p.line, p.column, p.path, p.message) for p in found] == [
        (line, column, path, message.format(connections=tmp_path / "connections"))]


def test_no_connections_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "t.yaml").write_text(USES_C, encoding="utf-8")
    found = Loader(secrets=Secrets(environ={})).load_paths([tmp_path / "flows"]).problems
    assert [str(p) for p in found] == [
        f"{tmp_path}/flows/t.yaml:5:26 steps[0].call.http.connection: no connection 'c' "
        "(no connections/ folder found)"]


def test_poll_trigger_connection_is_checked_at_load(tmp_path: Path) -> None:
    flow = y("""
        flow: t
        trigger:
          poll:
            every: 5m
            http: {connection: wsm, url: /acks}
        steps:
          - id: s
            set: {x: '1'}
        """)
    found = errors(problems_of(tmp_path, OK_CONNECTIONS, flow=flow))
    assert [(p.line, p.column, p.path, p.message) for p in found] == [
        (5, 24, "trigger.poll.http.connection",
         f"no connection 'wsm' in {tmp_path / 'connections'}; did you mean 'wms'?")]


def test_a_good_project_loads_without_problems(tmp_path: Path) -> None:
    flow = y("""
        flow: t
        trigger:
          poll:
            every: 5m
            http: {connection: wms, url: /acks}
        steps:
          - id: s
            call:
              http: {connection: erp_eu, path: "/orders/{{ id }}"}
        """)
    assert problems_of(tmp_path, OK_CONNECTIONS, flow=flow) == []


def test_flowrun_validate_shows_connection_problems_and_fails(tmp_path: Path) -> None:
    (tmp_path / "connections").mkdir()
    (tmp_path / "flows").mkdir()
    (tmp_path / "connections" / "c.yaml").write_text(CASES[0].text, encoding="utf-8")
    (tmp_path / "flows" / "t.yaml").write_text(USES_C, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "flows")])
    assert result.exit_code == 1, result.output
    assert f"{tmp_path}/connections/c.yaml:5:36 http.auth.basic.password: a credential is " \
           "written out in the file" in result.output
    assert f"{tmp_path}/flows/t.yaml:5:26 steps[0].call.http.connection: connection 'c' has " \
           "errors" in result.output
    assert "hunter2-pw" not in result.output
    assert "0 flow(s) valid, 2 error(s)" in result.output


def test_closing_the_connections_closes_what_they_opened_even_past_one_that_fails(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from engine import connections as conn

    closed: list[str] = []

    class Client:
        def __init__(self, name: str, fails: bool = False):
            self.name, self.fails = name, fails

        def close(self) -> None:
            closed.append(self.name)
            if self.fails:
                raise OSError("broker gone")

    found = conn.load(tmp_path)
    first = found.runtime("rabbit", "amqp", lambda: Client("rabbit", fails=True))
    assert found.runtime("rabbit", "amqp", lambda: Client("other")) is first  # made once
    found.runtime("plant", "mqtt", lambda: Client("plant"))
    found.runtime("erp", "http", lambda: object())  # nothing to close
    found.close()
    assert closed == ["rabbit", "plant"]
    assert "connection 'rabbit' (amqp) did not close cleanly: broker gone" in caplog.text
    # closed means forgotten: a later use makes a new one
    again = found.runtime("plant", "mqtt", lambda: Client("plant-2"))
    assert again.name == "plant-2"
