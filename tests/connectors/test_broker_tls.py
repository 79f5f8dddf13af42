"""The ``tls:`` block of the bus connections (connectors/broker.py), without a broker.

At load, through the real loader as `flowrun validate` runs it: each mistake → the problem at
its key. At run time, `tls_context` over files minted by trustme: what it builds, and each file
or key that cannot be used → a StepError naming the connection and the key, never the key's
password. The handshakes themselves are in test_bus_tls.py, against real brokers.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from connectors.broker import BrokerTls, failure, tls_context
from connectors.mqtt import MqttConnection
from engine.loader import Loader
from engine.plugin import StepError
from engine.problems import Problem
from engine.refs import Secrets

USES = "flow: t\nsteps:\n  - id: s\n    mqtt: {connection: bus, topic: t}\n"
PASSWORD = "k3y-pa55"


def problems_of(tmp_path: Path, tls: str) -> list[Problem]:
    (tmp_path / "connections").mkdir(exist_ok=True)
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "connections" / "bus.yaml").write_text(
        f"connection: bus\nmqtt:\n  host: broker.test\n  tls: {tls}\n", encoding="utf-8")
    (tmp_path / "flows" / "t.yaml").write_text(USES, encoding="utf-8")
    loader = Loader(secrets=Secrets(environ={"FLOWRUN_SECRET_KEY_PW": PASSWORD}))
    return list(loader.load_paths([tmp_path / "flows"]).problems)


@pytest.mark.parametrize(("tls", "severity", "path", "fragment"), [
    ("{key_file: c.key}", "error", "mqtt.tls.key_file", "key_file needs cert_file"),
    ('{cert_file: c.pem, key_password: "${secret:KEY_PW}"}', "warning", "mqtt.tls.cert_file",
     "no such file"),
    ("{key_password: plain-pw, cert_file: c.pem}", "error", "mqtt.tls.key_password",
     "a credential is written out in the file"),
    ("{ca_fil: ca.pem}", "error", "mqtt.tls.ca_fil", "did you mean 'ca_file'?"),
    ('{ca_file: "${secret:KEY_PW}"}', "error", "mqtt.tls.ca_file",
     "a certificate file name is not a secret"),
    ("{ca_file: certs/ca.pem}", "warning", "mqtt.tls.ca_file", "no such file"),
    ("maybe", "error", "mqtt.tls", ""),
], ids=["key-without-cert", "cert-missing", "password-written-out", "typo", "file-as-secret",
        "ca-missing", "not-a-block"])
def test_a_tls_mistake_is_a_problem_at_its_key(tmp_path: Path, tls: str, severity: str,
                                               path: str, fragment: str) -> None:
    found = [p for p in problems_of(tmp_path, tls)
             if p.file.endswith("bus.yaml") and p.severity == severity]
    assert [(p.severity, p.path) for p in found] == [(severity, path)], [str(p) for p in found]
    assert fragment in found[0].message
    assert found[0].line == 4
    assert "plain-pw" not in str(found[0])


def test_a_missing_file_names_the_path_it_was_looked_for(tmp_path: Path) -> None:
    found, = problems_of(tmp_path, "{ca_file: certs/ca.pem}")
    assert found.message == (f"no such file {tmp_path}/connections/certs/ca.pem; a relative "
                             "name is read from the connections folder")


def test_a_key_file_open_to_others_is_a_warning_at_load(tmp_path: Path) -> None:
    folder = tmp_path / "connections"
    folder.mkdir()
    for name in ("c.pem", "c.key"):
        (folder / name).write_text("x", encoding="utf-8")
    (folder / "c.key").chmod(0o644)
    found, = problems_of(tmp_path, "{cert_file: c.pem, key_file: c.key}")
    assert (found.severity, found.path) == ("warning", "mqtt.tls.key_file")
    assert found.message.endswith(f"readable by its owner only: chmod 600 {folder}/c.key")


def test_tls_true_is_every_default() -> None:
    config = MqttConnection.model_validate({"tls": True})
    assert config.tls_options == BrokerTls()
    assert MqttConnection.model_validate({}).tls_options is None
    assert MqttConnection.model_validate({"tls": False}).tls_options is None


# -- at run time ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def folder(tmp_path: Path, ca: trustme.CA) -> Path:
    leaf = ca.issue_cert("flowrunner-client")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    (tmp_path / "locked.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode())))
    ca.issue_cert("someone-else").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert-not-key.pem"))
    for name in ("client.key", "locked.key", "other.key", "cert-not-key.pem"):
        (tmp_path / name).chmod(0o600)
    return tmp_path


def secrets(name: str) -> str:
    return {"KEY_PW": PASSWORD, "WRONG_PW": "not-the-password"}[name]


def context_of(folder: Path, **tls: object) -> ssl.SSLContext | None:
    return tls_context("bus", MqttConnection.model_validate({"tls": tls or True}), folder,
                       secrets)


def test_the_context_checks_the_broker_against_the_ca_and_carries_the_client_certificate(
        folder: Path) -> None:
    context = context_of(folder, ca_file="ca.pem", cert_file="client.pem",
                         key_file="client.key", server_name="broker.internal")
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the CA file's, not the system's
    # the name checked is server_name, whatever host name the client library passes
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    wrapped = context.wrap_bio(incoming, outgoing, server_hostname="10.0.0.7")
    assert wrapped.server_hostname == "broker.internal"


def test_an_encrypted_key_opens_with_its_password(folder: Path) -> None:
    context = context_of(folder, cert_file="client.pem", key_file="locked.key",
                         key_password="${secret:KEY_PW}")
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(("tls", "message"), [
    ({"ca_file": "nowhere/ca.pem"}, "tls.ca_file: no such file {folder}/nowhere/ca.pem"),
    ({"ca_file": "client.key"}, "tls.ca_file: {folder}/client.key holds no PEM certificate"),
    ({"cert_file": "client.pem", "key_file": "locked.key", "key_password": "${secret:WRONG_PW}"},
     "tls.key_password: the key cannot be opened with this password"),
    ({"cert_file": "client.pem", "key_file": "locked.key"},
     "tls: the key is encrypted; give its password as tls.key_password"),
    ({"cert_file": "client.pem", "key_file": "other.key"},
     "tls.cert_file: the key does not belong to the certificate"),
    ({"cert_file": "client.pem", "key_file": "cert-not-key.pem"},
     "tls.key_file: {folder}/cert-not-key.pem holds no PEM private key"),
], ids=["missing", "not-a-certificate", "wrong-password", "no-password", "other-key",
        "not-a-key"])
def test_a_file_or_key_that_cannot_be_used_is_a_config_error_by_name(
        folder: Path, tls: dict[str, str], message: str) -> None:
    with pytest.raises(StepError) as caught:
        context_of(folder, **tls)
    assert caught.value.kind == "config" and not caught.value.retryable
    assert caught.value.message == f"connection 'bus': {message.format(folder=folder)}"
    assert PASSWORD not in caught.value.message and "not-the-password" not in \
        caught.value.message


def test_a_key_file_open_to_others_is_refused(folder: Path) -> None:
    (folder / "client.key").chmod(0o640)
    with pytest.raises(StepError) as caught:
        context_of(folder, cert_file="client.pem", key_file="client.key")
    assert caught.value.message == (
        f"connection 'bus': tls.key_file: {folder}/client.key is open to other users; a "
        f"private key must be readable by its owner only: chmod 600 {folder}/client.key")


def test_a_certificate_file_holding_its_key_must_be_private_too(folder: Path) -> None:
    both = folder / "both.pem"
    both.write_bytes((folder / "client.pem").read_bytes() + (folder / "client.key").read_bytes())
    both.chmod(0o600)
    assert context_of(folder, cert_file="both.pem") is not None
    both.chmod(0o644)
    with pytest.raises(StepError) as caught:
        context_of(folder, cert_file="both.pem")
    assert caught.value.message.startswith(
        f"connection 'bus': tls.cert_file: {both} is open to other users")


def test_verify_false_is_logged_once_as_a_warning(folder: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flowrunner.bus")
    config = MqttConnection.model_validate({"tls": {"verify": False}})
    for _ in range(3):
        context = tls_context("unchecked", config, folder, secrets)
        assert context is not None and context.verify_mode == ssl.CERT_NONE
        assert not context.check_hostname
    assert [r.getMessage() for r in caplog.records] == [
        "connection 'unchecked': tls verify is false: the broker's certificate is not checked, "
        "so anyone on the way can pose as the broker and read the messages"]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_plain_connection_has_no_context(folder: Path) -> None:
    assert tls_context("bus", MqttConnection.model_validate({}), folder, secrets) is None


def test_a_plain_port_answering_a_tls_client_is_named() -> None:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    error.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    assert failure(ConnectionError("refused")) == ("connection", "refused")
    try:
        raise ConnectionError("Error connecting") from error
    except ConnectionError as exc:
        assert failure(exc) == ("tls", "TLS: the broker did not answer in TLS; is this its "
                                       "TLS port?")


def test_a_connection_closed_as_it_opened_over_tls_points_at_the_client_certificate() -> None:
    tls = MqttConnection.model_validate({"tls": True})
    kind, words = failure(ConnectionError("Server unexpectedly closed connection"), tls)
    assert kind == "tls" and words.endswith(
        "a broker that requires a client certificate does so without one it trusts "
        "(tls.cert_file and tls.key_file)")
    plain = MqttConnection.model_validate({})
    assert failure(ConnectionError("Server unexpectedly closed connection"), plain) == \
        ("connection", "Server unexpectedly closed connection")
