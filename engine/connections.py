"""Named connections: one YAML file per partner system in ``connections/``, used by name.

A flow says ``call: {http: {connection: erp_eu, method: POST, path: /sales-orders}}`` (or
``sftp: {connection: supplier_a, ...}``, ``as2: {connection: acme_as2}``, or
``trigger.poll.http.connection``) and the base URL,
default headers, timeouts, TLS options and credentials come from ``connections/erp_eu.yaml``::

    connection: erp_eu
    description: ERP, EU instance
    http:
      base_url: ${env:ERP_EU_URL}
      headers: {X-Tenant: eu}
      auth:
        oauth2: {token_url: "${env:ERP_EU_URL}/oauth/token", client_id: flowrunner,
                 client_secret: "${secret:ERP_EU_CLIENT_SECRET}"}

The files are read and validated like flows (every problem at once, with line and column, "did
you mean" for unknown keys and names). Secrets only through ``${secret:NAME}``: a credential
written out in the file (or taken from ``${env:...}``, which logs do not mask) is a load error,
since these files live in version control. Certificate files named relative are read from the
connections folder, so a worker finds them whatever its working directory.

This lives in the engine, not in a connector: it is configuration on disk the loader checks
flows against, shared by several connectors and by poll triggers, and it imports no protocol
library. The runtime side (one pooled session and one token cache per connection) is kept here
per name through `Connections.runtime`, built by the connector that needs it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator

from engine.dsl.base import Duration, Model
from engine.lint import validation_problems
from engine.problems import Path, Problem, did_you_mean
from engine.refs import REF
from engine.types import BuildContext
from engine.yamlsrc import Source, read_source

SUFFIXES = (".yaml", ".yml")
NAME = re.compile(r"[A-Za-z0-9_-]+")
T = TypeVar("T")


def _secret_ref(value: str) -> str:
    kinds = {m["kind"] for m in REF.finditer(value)}
    if "secret" in kinds:
        return value
    if "env" in kinds:
        # environment values are not masked in logs and run records; secrets are
        raise ValueError("a credential must come from the secrets store, not the environment; "
                         "write '${secret:NAME}' here (secret values are masked in logs and "
                         "run records, environment values are not)")
    raise ValueError("a credential is written out in the file; put it in the secrets "
                     "store and write '${secret:NAME}' here (connection files live in "
                     "version control)")


#: header names whose value is a credential, whatever auth: says
CREDENTIAL_HEADER = re.compile(r"authorization|api-?key|token|secret|password", re.IGNORECASE)


def _secret_text(value: Any) -> Any:
    # before pydantic's own type check, whose message would echo the value
    if not isinstance(value, str):
        raise ValueError("expected '${secret:NAME}' here, naming a value in the secrets store")
    return value


Secret = Annotated[str, BeforeValidator(_secret_text), AfterValidator(_secret_ref)]


def _one_of(model: Any, names: tuple[str, ...], what: str) -> None:
    chosen = [n for n in names if getattr(model, n) is not None]
    if len(chosen) != 1:
        raise ValueError(f"{what} needs exactly one of {', '.join(names)}"
                         + (f"; found {' and '.join(chosen)}" if chosen else ""))


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"'{value}' cannot be a connection name; use letters, digits, '_' "
                         "and '-' only, e.g. erp_eu")
    return value


class Timeouts(Model):
    connect: Duration = Field(5.0, description="Longest wait for the connection.")
    read: Duration = Field(30.0, description="Longest wait for the response.")


class Basic(Model):
    username: str = Field(description="User name; may use ${secret:...}.")
    password: Secret = Field(description="Password: '${secret:NAME}'.")


class ApiKey(Model):
    header: str | None = Field(None, description="Header carrying the key, e.g. X-Api-Key.")
    query: str | None = Field(None, description="Query parameter carrying the key.")
    value: Secret = Field(description="The key: '${secret:NAME}'.")

    @model_validator(mode="after")
    def _where(self) -> ApiKey:
        _one_of(self, ("header", "query"), "api_key")
        return self


class OAuth2(Model):
    """OAuth2 client credentials: a token fetched once and shared until shortly before expiry."""

    token_url: str = Field(description="Token endpoint, e.g. '${env:ERP_URL}/oauth/token'.")
    client_id: str = Field(description="Client id; may use ${secret:...}.")
    client_secret: Secret = Field(description="Client secret: '${secret:NAME}'.")
    scope: str | None = Field(None, description="Space-separated scopes to ask for.")
    audience: str | None = Field(None, description="Audience parameter some providers need.")
    client_auth: Literal["basic", "body"] = Field(
        "basic", description="Send the client credentials as HTTP basic (default) or in the "
                             "form body.")
    refresh_before: Duration = Field(60.0, description="Fetch a new token this long before "
                                                       "the old one expires.")


class Auth(Model):
    basic: Basic | None = Field(None, description="HTTP basic authentication.")
    bearer: Secret | None = Field(None, description="A fixed bearer token: '${secret:NAME}'.")
    api_key: ApiKey | None = Field(None, description="An API key in a header or the query.")
    oauth2: OAuth2 | None = Field(None, description="OAuth2 client credentials.")

    @model_validator(mode="after")
    def _one(self) -> Auth:
        _one_of(self, ("basic", "bearer", "api_key", "oauth2"), "auth")
        return self


class Tls(Model):
    verify: bool = Field(True, description="Check the server certificate (leave on).")
    ca_bundle: str | None = Field(None, description="PEM file of the CAs to trust instead of "
                                                    "the system's.")
    client_cert: str | None = Field(None, description="PEM client certificate for mTLS.")
    client_key: str | None = Field(None, description="PEM key of the client certificate.")

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self


class HttpConnection(Model):
    base_url: str = Field(description="Base URL a call's path: is joined to.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent on every request; a credential header "
                                          "(Authorization, X-Api-Key, ...) must use "
                                          "${secret:...}.")
    timeout: Timeouts = Field(default_factory=Timeouts, description="Default timeouts.")
    tls: Tls = Field(default_factory=Tls, description="Certificates: CA bundle, mTLS.")
    auth: Auth | None = Field(None, description="Credentials: basic, bearer, api_key or oauth2.")


def _port(value: object) -> int | str:
    if isinstance(value, str) and (ref := REF.fullmatch(value.strip())) and ref["kind"] == "env":
        return value.strip()  # resolved where the connection is used, like the host
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    # a port is no secret: a ${secret:...} here would be echoed in a wrong-port message
    raise ValueError("a port is a number from 1 to 65535, or '${env:NAME}'")


Port = Annotated[int | str, BeforeValidator(_port)]


def port_number(value: int | str, resolve: Callable[[str], str]) -> int:
    """The port of a connection, its '${env:...}' resolved by *resolve* (the interpolator)."""
    if isinstance(value, int):
        return value
    text = resolve(value)
    try:
        return int(_port(text))
    except ValueError:
        raise ValueError(f"port {value} is '{text}', not a number from 1 to 65535") from None


class SftpConnection(Model):
    host: str = Field(description="Host name of the SFTP server.")
    port: Port = Field(22, description="TCP port, or '${env:NAME}'.")
    username: str = Field(description="User name.")
    password: Secret | None = Field(None, description="Password: '${secret:NAME}'.")
    private_key: Secret | None = Field(None, description="Private key text (OpenSSH or PEM): "
                                                         "'${secret:NAME}'.")
    passphrase: Secret | None = Field(None, description="Passphrase of the private key.")
    host_key: str | None = Field(None, description="Pinned server key fingerprint, "
                                                   "'SHA256:...' as ssh-keygen -lf prints it.")
    known_hosts: str | None = Field(None, description="OpenSSH known_hosts file to check the "
                                                      "server key against.")
    timeout: Duration = Field(10.0, description="Connect and operation timeout.")

    @model_validator(mode="after")
    def _checks(self) -> SftpConnection:
        if self.host_key is None and self.known_hosts is None:
            raise ValueError("give host_key (the server's SHA256 fingerprint) or known_hosts; "
                             "an unknown server key is never accepted")
        _one_of(self, ("password", "private_key"), "an sftp connection")
        return self


AS2_DIGESTS = Literal["sha1", "sha256", "sha384", "sha512"]
AS2_CIPHERS = Literal["tripledes_192_cbc", "aes_128_cbc", "aes_192_cbc", "aes_256_cbc"]


class As2Local(Model):
    """Our side of an AS2 relationship: the id partners address us by, and our key pair."""

    as2_id: str = Field(min_length=1, max_length=128,
                        description="Our AS2 id: AS2-To on what the partner sends us, AS2-From "
                                    "on what we send.")
    certificate: str = Field(description="PEM file of our certificate (the partner has a copy: "
                                         "it verifies our signatures and encrypts to us).")
    private_key: Secret | None = Field(
        None, description="Our private key's PEM text: '${secret:NAME}' (a one-line secret "
                          "may write the line breaks as \\n).")
    private_key_file: str | None = Field(
        None, description="Or a PEM file holding our private key, readable by its owner only.")
    key_password: Secret | None = Field(None, description="Password of an encrypted private "
                                                          "key: '${secret:NAME}'.")
    mdn_url: str | None = Field(
        None, description="URL of our AS2 endpoint (a flow with `webhook: {as2: ...}`) where "
                          "the partner posts asynchronous MDNs; needed for mdn: async.")

    @model_validator(mode="after")
    def _one_key(self) -> As2Local:
        _one_of(self, ("private_key", "private_key_file"), "local")
        return self


class As2Connection(Model):
    """A trading partner over AS2 (RFC 4130): who they are, their certificate, our key pair,
    and how messages to them are protected and acknowledged."""

    as2_id: str = Field(min_length=1, max_length=128,
                        description="The partner's AS2 id: AS2-From on what they send us.")
    url: str | None = Field(None, description="The partner's AS2 URL, where the `as2` step "
                                              "posts; may use ${env:...}.")
    certificate: str = Field(description="PEM file of the partner's certificate: verifies "
                                         "their signatures and MDNs, encrypts what we send.")
    local: As2Local = Field(description="Our AS2 id and key pair for this partner.")
    sign: AS2_DIGESTS | None = Field("sha256", description="Sign what we send with this "
                                                           "digest; null sends unsigned.")
    encrypt: AS2_CIPHERS | None = Field("aes_256_cbc", description="Encrypt what we send with "
                                                                   "this cipher; null: plain.")
    compress: bool = Field(False, description="Compress what we send (before signing).")
    mdn: Literal["sync", "async", "none"] = Field(
        "sync", description="The receipt we ask for: in the HTTP response (sync), posted later "
                            "to local.mdn_url (async), or none.")
    mdn_sign: AS2_DIGESTS | None = Field("sha256", description="Ask for a signed MDN with this "
                                                               "digest; null: unsigned.")
    require_signed: bool = Field(True, description="Refuse unsigned messages from the partner.")
    require_encrypted: bool = Field(True, description="Refuse unencrypted messages from the "
                                                      "partner.")
    timeout: Timeouts = Field(default_factory=Timeouts, description="Sending timeouts.")
    tls: Tls = Field(default_factory=Tls, description="Certificates of an https url: CA bundle, "
                                                      "mTLS.")

    @model_validator(mode="after")
    def _async_needs_url(self) -> As2Connection:
        if self.mdn == "async" and self.local.mdn_url is None:
            raise ValueError("mdn: async needs local.mdn_url, the URL the partner posts the "
                             "MDN to")
        return self


class ConnectionFile(Model):
    """One partner system: exactly one of http:, sftp: or as2:."""

    connection: Annotated[str, AfterValidator(_name)] = Field(
        description="Name flows use: letters, digits, '_' and '-'.")
    description: str | None = Field(None, description="What the system is.")
    http: HttpConnection | None = Field(None, description="An HTTP API.")
    sftp: SftpConnection | None = Field(None, description="An SFTP server.")
    as2: As2Connection | None = Field(None, description="An AS2 trading partner.")

    @model_validator(mode="after")
    def _one(self) -> ConnectionFile:
        _one_of(self, KINDS, "a connection")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in KINDS if getattr(self, name) is not None)


KINDS = ("http", "sftp", "as2")


class Connections:
    """The connections of one folder, with the problems of their files."""

    def __init__(self, folder: FsPath | None, found: dict[str, ConnectionFile],
                 files: dict[str, str], broken: set[str], problems: list[Problem]):
        self.folder, self.found, self.files = folder, found, files
        self.broken, self.problems = broken, problems
        self._runtime: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        #: the names flows looked up: `problems_for_use` reports the warnings of these only
        self.used: set[str] = set()

    def problems_for_use(self) -> list[Problem]:
        """Every error of the folder's files (a broken file is worth fixing whoever uses it),
        and the warnings (an unset ${env:...}) of the connections some flow uses — not of a
        partner's file that the flows being checked never name."""
        used_files = {self.files[name] for name in self.used if name in self.files}
        return [p for p in self.problems if p.severity == "error" or p.file in used_files]

    def lookup(self, name: str, kind: str, ctx: BuildContext, path: Path) -> Any:
        """The ``http``, ``sftp`` or ``as2`` part of connection *name*, or None after a
        problem."""
        self.used.add(name)
        if name in self.broken:
            ctx.problem(path, f"connection '{name}' has errors (see {self.files[name]})")
            return None
        found = self.found.get(name)
        if found is None:
            where = f" in {self.folder}" if self.folder else " (no connections/ folder found)"
            ctx.problem(path, f"no connection '{name}'{where}"
                        + (did_you_mean(name, list(self.found) + list(self.broken))
                           or (f"; known: {', '.join(sorted(self.found))}" if self.found
                               else "")))
            return None
        if found.kind != kind:
            ctx.problem(path, f"connection '{name}' is an {found.kind} connection; this "
                        f"needs {kind}")
            return None
        return getattr(found, kind)

    def runtime(self, name: str, kind: str, make: Callable[[], T]) -> T:
        """The one runtime object (session, token cache) of *name*, made on first use."""
        with self._lock:
            key = (name, kind)
            if key not in self._runtime:
                self._runtime[key] = make()
            return self._runtime[key]


def load(folder: FsPath | None,
         check_refs: Callable[[Source, list[Problem]], None] | None = None) -> Connections:
    """Read every connection file in *folder*; never raises for a bad file."""
    paths = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()) \
        if folder is not None and folder.is_dir() else []
    found = Connections(folder, {}, {}, set(), [])
    for path in paths:
        _read(path, found, check_refs)
    return found


def _read(path: FsPath, into: Connections,
          check_refs: Callable[[Source, list[Problem]], None] | None) -> None:
    """One connection file into *into*: the connection, or its name among the broken ones
    (so a flow using it hears "has errors", not "no such connection") and its problems."""
    problems = into.problems
    shown = _shown(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(shown, 1, 1, "", f"cannot read file: {exc.strerror}"))
        return
    source, found_problems = read_source(shown, raw)
    problems.extend(found_problems)
    data = source.data if not found_problems else None
    name = data.get("connection") if isinstance(data, dict) else None
    name = name if isinstance(name, str) else path.stem
    if name in into.files:
        problems.append(source.problem(("connection",), f"connection '{name}' is already "
                                       f"declared in {into.files[name]}"))
        return
    into.files[name] = shown
    if found_problems:
        into.broken.add(name)
        return
    if check_refs is not None:
        check_refs(source, problems)
    if not isinstance(data, dict):
        problems.append(source.problem((), "a connection file is a mapping starting with "
                                           "'connection: <name>' and 'http:', 'sftp:' or "
                                           "'as2:'"))
        into.broken.add(name)
        return
    try:
        model = ConnectionFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(source, exc, _SCHEMA))
        into.broken.add(name)
        return
    if name != path.stem:
        problems.append(source.problem(("connection",), f"connection '{name}' differs from "
                                       f"the file name; name the file {name}.yaml",
                                       severity="warning"))
    more = _check_headers(source, model) + _check_tls_files(source, model, into.folder)
    problems.extend(more)
    if any(p.severity == "error" for p in more):
        into.broken.add(name)
    else:
        into.found[name] = model


_SCHEMA = ConnectionFile.model_json_schema(by_alias=True)


def _shown(path: FsPath) -> str:
    """*path* as problems name it: relative to the working directory when inside it, like the
    flow files named on the command line (the folder itself was found resolved)."""
    try:
        return str(path.relative_to(FsPath.cwd()))
    except ValueError:
        return str(path)


def resolve_file(value: str, folder: FsPath | None) -> FsPath:
    """A file a connection names: a relative name is read beside the connection files, so a
    flow finds its certificates whatever directory the worker was started in."""
    path = FsPath(value).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


def _check_headers(source: Source, found: ConnectionFile) -> list[Problem]:
    """Default headers that carry a credential (Authorization, X-Api-Key, ...) written out.
    Checked here rather than in the model, so the problem points at the header itself."""
    problems = []
    for name, value in (found.http.headers if found.http else {}).items():
        if CREDENTIAL_HEADER.search(name):
            try:
                _secret_ref(value)
            except ValueError as exc:
                problems.append(source.problem(("http", "headers", name), str(exc)))
    return problems


def _check_tls_files(source: Source, found: ConnectionFile,
                     folder: FsPath | None) -> list[Problem]:
    """Certificate and key files that do not exist. Warnings, since the files may be deployed
    only where the workers run; a call fails by name if one is still missing then."""
    files: list[tuple[Path, str | None]] = []
    if found.http is not None or found.as2 is not None:
        kind = "http" if found.http is not None else "as2"
        tls = (found.http or found.as2).tls  # type: ignore[union-attr]
        files += [((kind, "tls", key), getattr(tls, key))
                  for key in ("ca_bundle", "client_cert", "client_key")]
    if found.as2 is not None:
        local = found.as2.local
        files += [(("as2", "certificate"), found.as2.certificate),
                  (("as2", "local", "certificate"), local.certificate),
                  (("as2", "local", "private_key_file"), local.private_key_file)]
    problems = []
    for where, value in files:
        if value is None:
            continue
        if any(m["kind"] == "secret" for m in REF.finditer(value)):
            problems.append(source.problem(where, "a certificate file name is not a secret; "
                                           "write the path, or use ${env:NAME}"))
        elif not REF.search(value) and not resolve_file(value, folder).is_file():
            problems.append(source.problem(where, f"no such file {resolve_file(value, folder)}"
                                           "; a relative name is read from the connections "
                                           "folder", severity="warning"))
    return problems


def nearest(start: FsPath) -> FsPath | None:
    """The nearest ``connections/`` folder at or above *start* (a flow file or folder)."""
    start = start.resolve()
    for folder in [start if start.is_dir() else start.parent, *start.parents]:
        if (folder / "connections").is_dir():
            return folder / "connections"
    return None
