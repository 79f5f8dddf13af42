"""What the message-bus connections share: where the broker listens, who we are to it, and
the TLS to it.

The ``amqp:``, ``mqtt:``, ``redis:`` and ``nats:`` parts of a connection file extend `Broker`
(each in its connector's module, registered as that connector's connection kind, with `check`
as its load-time check). Their ``tls:`` block is read here into one `ssl.SSLContext`
(`tls_context`) that each connector hands to its client library, and a failed handshake is put
in words an operator can act on here (`failure`), for the four of them alike.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any, TypeVar

import orjson
import requests
from cryptography.hazmat.primitives import serialization
from pydantic import Discriminator, Field, Tag

from engine.plugin import (
    REF,
    BuildContext,
    ConnectionContext,
    Duration,
    Envelope,
    Model,
    Port,
    Resources,
    Secret,
    StepError,
    UnresolvedReference,
    add_trace_context,
    compile_value,
    interpolate,
    port_number,
    resolve_file,
)

_FINAL = {401: "auth", 403: "permission", 404: "not_found"}
_FILES = ("ca_file", "cert_file", "key_file")
log = logging.getLogger("flowrunner.bus")
_warned: set[str] = set()
_warned_lock = threading.Lock()


class BrokerTls(Model):
    """TLS to the broker. ``tls: true`` is all defaults: the system's CAs, host name checked."""

    ca_file: str | None = Field(None, description="PEM file of the CAs to trust instead of "
                                "the system's; a relative name is read from the connections "
                                "folder.")
    cert_file: str | None = Field(None, description="PEM client certificate, for a broker that "
                                  "requires one (mutual TLS).")
    key_file: str | None = Field(None, description="PEM key of the client certificate, "
                                 "readable by its owner only (left out: the key is in "
                                 "cert_file).")
    key_password: Secret | None = Field(None, description="Password of an encrypted key: "
                                        "'${secret:NAME}'.")
    verify: bool = Field(True, description="Check the broker's certificate and host name. "
                         "false (a test broker only) is logged as a warning.")
    server_name: str | None = Field(None, description="The name the broker's certificate must "
                                    "carry when it is not host (an IP address, a tunnel).")


def _tls_form(value: Any) -> str:
    return "flag" if isinstance(value, bool) else "block"


#: ``tls: true``/``false``, or the block; tagged, so a mistake in the block is told once, at its
#: key, not beside "input should be a valid boolean"
TlsSetting = Annotated[Annotated[bool, Tag("flag")] | Annotated[BrokerTls, Tag("block")],
                       Discriminator(_tls_form)]


class Broker(Model):
    host: str = Field("127.0.0.1", description="Host name of the broker; may use ${env:...}.")
    port: Port = Field(description="TCP port, or '${env:NAME}'.")
    username: str | None = Field(None, description="User name; may use ${env:...}.")
    password: Secret | None = Field(None, description="Password: '${secret:NAME}'.")
    timeout: Duration = Field(10.0, description="Connect and publish-confirm timeout.")
    tls: TlsSetting = Field(False, description="TLS to the broker: true (the system's CAs), or "
                            "ca_file, cert_file and key_file for mutual TLS, verify, "
                            "server_name.")

    @property
    def tls_options(self) -> BrokerTls | None:
        """The ``tls:`` block, None for a connection in the clear."""
        return BrokerTls() if self.tls is True else (self.tls or None)

    def address(self, secrets: Callable[[str], str]) -> tuple[str, int, str | None, str | None]:
        """Host, port, user name and password, their references resolved (raises
        UnresolvedReference or ValueError)."""
        def value(text: str | None) -> str | None:
            return None if text is None else interpolate(text, secrets)

        port = port_number(self.port, lambda text: interpolate(text, secrets))
        return str(value(self.host)), port, value(self.username), value(self.password)


T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """One publish step's message for one run: where it goes, what it carries."""

    #: the routing key, topic, subject or stream, rendered for the run
    destination: str
    data: bytes
    content_type: str
    headers: dict[str, str]
    #: the step's ``message_id:``, else the run id and step id (the same on every retry)
    message_id: str


class Outbound:
    """What the four publish steps (``amqp``, ``mqtt``, ``redis``, ``nats``) compile alike: the
    destination (*destination* names its key: ``routing_key``, ``topic``, ...), the body, the
    headers, the message id, and the named connection of *kind* with its runtime objects."""

    def __init__(self, config: Any, kind: str, destination: str, ctx: BuildContext):
        self.name: str = config.connection
        self._destination = compile_value(getattr(config, destination), ctx, (destination,))
        self._body = ctx.expr(config.body, ("body",)) if config.body is not None else None
        self._headers = {k: compile_value(v, ctx, ("headers", k))
                         for k, v in config.headers.items()}
        given = getattr(config, "message_id", None)
        self._id = compile_value(given, ctx, ("message_id",)) if given is not None else None
        self._step = ctx.step_id
        self.connections: Any = ctx.service("connections")
        self.found: Any = self.connections.lookup(self.name, kind, ctx, ("connection",)) \
            if self.connections is not None else None

    def message(self, envelope: Envelope, resources: Resources) -> Message:
        value = self._body.evaluate(envelope) if self._body is not None else envelope.body
        data, content_type = encode(value)
        message_id = str(self._id(envelope, resources.secrets)) if self._id is not None \
            else f"{envelope.meta.get('run_id')}:{self._step}"
        return Message(str(self._destination(envelope, resources.secrets)), data, content_type,
                       message_headers(self._headers, envelope, resources.secrets), message_id)

    def runtime(self, what: str, make: Callable[[], T]) -> T:
        """The connection's one runtime object *what* (a pool, a client), made on first use."""
        made: T = self.connections.runtime(self.name, what, make)
        return made


def message_headers(headers_of: dict[str, Any], envelope: Envelope,
                    secrets: Callable[[str], str]) -> dict[str, str]:
    """A publish step's headers rendered for *envelope*, with the run's trace context when
    tracing is on (a consumer continues the trace: engine/tracing)."""
    headers = {k: str(render(envelope, secrets)) for k, render in headers_of.items()}
    add_trace_context(headers)
    return headers


def encode(value: Any) -> tuple[bytes, str]:
    """A publish step's body as bytes, with its media type: text as UTF-8, bytes as they are,
    anything else as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain"
    if isinstance(value, bytes):
        return value, "application/octet-stream"
    return orjson.dumps(value), "application/json"


def confirmed(response: requests.Response, url: str) -> Any:
    """A broker's answer to a delivery handed to a twin (`engine.transports.DELIVER`), read as
    the broker's own: 2xx confirmed (its JSON body, or text, is what the broker returned: an
    entry id, a JetStream acknowledgement), 404 a destination it does not have, 401/403 a
    refused login, anything else a refused message (nack), retried."""
    status = response.status_code
    if status in _FINAL:
        raise StepError(f"{url}: the broker answered {status}", kind=_FINAL[status],
                        status=status)
    if not 200 <= status < 300:
        raise StepError(f"{url}: the broker refused the message ({status})", kind="rejected",
                        retryable=True, status=status)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


# -- TLS -----------------------------------------------------------------------------------------
def check(config: Broker, ctx: ConnectionContext) -> None:
    """At load: TLS file names that are secrets, files that do not exist and a key file open to
    other users — warnings for the last two, since the files may be deployed only where the
    consumers and workers run (the connection then fails by name)."""
    tls = config.tls_options
    if tls is None:
        return
    if tls.cert_file is None:  # here, not in the model: the problem then points at the key
        for key in ("key_file", "key_password"):
            if getattr(tls, key) is not None:
                ctx.problem(("tls", key), f"{key} needs cert_file, the client certificate "
                                          "the key belongs to")
    for key in _FILES:
        value = getattr(tls, key)
        if value is None:
            continue
        where = ("tls", key)
        if any(m["kind"] == "secret" for m in REF.finditer(value)):
            ctx.problem(where, "a certificate file name is not a secret; write the path, or "
                               "use ${env:NAME}")
        elif not REF.search(value):
            path = resolve_file(value, ctx.folder)
            if not path.is_file():
                ctx.problem(where, f"no such file {path}; a relative name is read from the "
                                   "connections folder", severity="warning")
            elif key in _private(tls) and _open_to_others(path):
                ctx.problem(where, f"{path} is open to other users; a private key must be "
                                   f"readable by its owner only: chmod 600 {path}",
                            severity="warning")


class _Context(ssl.SSLContext):
    """An SSLContext that checks the broker's certificate against ``server_name`` when one is
    set, whatever host name the client library hands it (not every client takes one)."""

    server_name: str | None = None

    def wrap_socket(self, sock: Any, server_side: bool = False,
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: Any = None, session: Any = None) -> Any:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect,
                                   suppress_ragged_eofs, self.server_name or server_hostname,
                                   session)

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False,
                 server_hostname: Any = None, session: Any = None) -> Any:
        return super().wrap_bio(incoming, outgoing, server_side,
                                self.server_name or server_hostname, session)


def tls_context(name: str, config: Broker, folder: FsPath | None,
                secrets: Callable[[str], str]) -> ssl.SSLContext | None:
    """The connection's TLS as one SSLContext (None in the clear); a file that is missing,
    unreadable or open to others, or a key its password does not open, is a StepError naming
    the connection and the key (never the password)."""
    tls = config.tls_options
    if tls is None:
        return None
    files = {key: _file(name, key, getattr(tls, key), folder, key in _private(tls))
             for key in _FILES}
    context = _Context(ssl.PROTOCOL_TLS_CLIENT)  # host name checked, certificate required
    context.server_name = tls.server_name
    try:
        if files["ca_file"] is not None:
            context.load_verify_locations(cafile=str(files["ca_file"]))
        else:
            context.load_default_certs()
    except ssl.SSLError:
        raise StepError(f"connection '{name}': tls.ca_file: {files['ca_file']} holds no PEM "
                        "certificate", kind="config") from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with _warned_lock:
            first = name not in _warned
            _warned.add(name)
        if first:
            log.warning("connection '%s': tls verify is false: the broker's certificate is not "
                        "checked, so anyone on the way can pose as the broker and read the "
                        "messages", name)
    if files["cert_file"] is not None:
        _client_certificate(name, context, files["cert_file"], files["key_file"], tls,
                            secrets)
    return context


def _private(tls: BrokerTls) -> tuple[str, ...]:
    """The key of the file holding the private key: key_file, else cert_file holds both."""
    return ("key_file",) if tls.key_file is not None else ("cert_file",)


def _file(name: str, key: str, value: str | None, folder: FsPath | None,
          private: bool) -> FsPath | None:
    if value is None:
        return None
    try:
        path = resolve_file(interpolate(value, _no_secret), folder)
    except UnresolvedReference as exc:
        raise StepError(f"connection '{name}': tls.{key}: {exc}", kind="config") from None
    if not path.is_file():
        raise StepError(f"connection '{name}': tls.{key}: no such file {path}", kind="config")
    if private and _open_to_others(path):
        raise StepError(f"connection '{name}': tls.{key}: {path} is open to other users; "
                        f"a private key must be readable by its owner only: chmod 600 {path}",
                        kind="config")
    return path


def _client_certificate(name: str, context: ssl.SSLContext, cert: FsPath, key: FsPath | None,
                        tls: BrokerTls, secrets: Callable[[str], str]) -> None:
    where = f"connection '{name}': tls"
    try:
        password = interpolate(tls.key_password, secrets) if tls.key_password else None
    except UnresolvedReference as exc:
        raise StepError(f"{where}.key_password: {exc}", kind="config") from None
    try:
        pem = (key or cert).read_bytes()
    except OSError as exc:
        raise StepError(f"{where}.{'key_file' if key else 'cert_file'}: cannot read "
                        f"{key or cert} ({exc.strerror})", kind="config") from None
    # read here first: OpenSSL would ask for a missing password on the terminal, and says only
    # "PEM lib" for a wrong one
    try:
        serialization.load_pem_private_key(pem, password.encode() if password else None)
    except TypeError:
        raise StepError(f"{where}: the key is encrypted; give its password as "
                        "tls.key_password" if password is None else
                        f"{where}.key_password: the key is not encrypted; leave key_password "
                        "out", kind="config") from None
    except ValueError:
        if password is not None and b"ENCRYPTED" in pem:
            raise StepError(f"{where}.key_password: the key cannot be opened with this "
                            "password", kind="config") from None
        raise StepError(f"{where}.{'key_file' if key else 'cert_file'}: {key or cert} holds "
                        "no PEM private key", kind="config") from None
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password=password or "")
    except ssl.SSLError as exc:
        why = "the key does not belong to the certificate" if \
            exc.reason == "KEY_VALUES_MISMATCH" else f"{cert} holds no PEM certificate"
        raise StepError(f"{where}.cert_file: {why}", kind="config") from None


def _open_to_others(path: FsPath) -> bool:
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)
    except OSError:
        return False


def _no_secret(name: str) -> str:
    raise UnresolvedReference("secret", name)  # file names are not secrets (checked at load)


#: the alerts a broker sends when it will not take our client certificate (or none)
_REFUSED = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE", "UNKNOWN_CA",
            "CERTIFICATE_UNKNOWN", "ACCESS_DENIED", "DECRYPT_ERROR")


def failure(exc: BaseException, config: Broker | None = None) -> tuple[str, str]:
    """The kind (``tls`` or ``connection``) and the words of a failed connection to a broker:
    a TLS reason an operator can act on when there is one anywhere in the exception's chain
    (client libraries wrap it), else the exception's own text (see `closed`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            message = str(seen.verify_message or seen.reason or seen)
            if seen.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, IP_ADDRESS_...
                return "tls", (f"TLS: the broker's certificate is not for this host "
                               f"({message.rstrip('.')}); connect by a name it carries, or "
                               "set tls.server_name")
            return "tls", (f"TLS: the broker's certificate does not verify ({message}); trust "
                           "the CA that signed it with tls.ca_file")
        if isinstance(seen, ssl.SSLError):
            return "tls", _handshake(str(seen.reason or ("EOF" if isinstance(
                seen, ssl.SSLEOFError) else "")), str(seen))
        seen = seen.__cause__ or seen.__context__
    return closed(str(exc) or type(exc).__name__, config)


def _handshake(reason: str, text: str) -> str:
    if any(alert in reason for alert in _REFUSED):
        return (f"TLS: the broker refused the connection ({reason.lower().replace('_', ' ')}); "
                "a broker that requires a client certificate does so without one it trusts "
                "(tls.cert_file and tls.key_file)")
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return "TLS: the broker did not answer in TLS; is this its TLS port?"
    if "EOF" in reason:
        return ("TLS: the broker ended the connection during the handshake; a broker that "
                "requires a client certificate does so without one it trusts (tls.cert_file "
                "and tls.key_file)")
    return f"TLS handshake failed ({reason.lower().replace('_', ' ') or text})"


_CLOSED = re.compile(r"closed|reset|EOF|broken pipe", re.IGNORECASE)
_SSL_TEXT = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def closed(text: str, config: Broker | None) -> tuple[str, str]:
    """The words for a connection lost as it opened, known only as text (some clients keep
    the exception to themselves): a TLS alert named in it, or — over TLS — what a broker that
    wants a client certificate does under TLS 1.3, where it checks ours after the handshake."""
    alert = _SSL_TEXT.search(text)
    if alert:
        return "tls", _handshake(alert[1], text)
    if config is not None and config.tls_options is not None and _CLOSED.search(text):
        return "tls", (f"{text}: the broker closed the connection as it opened; over TLS, a "
                       "broker that requires a client certificate does so without one it "
                       "trusts (tls.cert_file and tls.key_file)")
    return "connection", text
