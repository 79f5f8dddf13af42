"""The ``sftp`` step: put a file on a partner's SFTP server, or get one into the body.

::

    - id: send_850
      sftp:
        connection: supplier_acme            # connections/supplier_acme.yaml (sftp:)
        put: {path: "/in/PO_{{ po_number }}.edi", content: $vars.edi}

    - id: fetch_price_list
      sftp: {connection: supplier_acme, get: {path: /out/prices.csv}}

``put`` writes ``content`` (the body if omitted; text as is, anything else as JSON) atomically:
a temp name in the target folder, then a rename, so the partner never picks up half a file. The
message goes on unchanged. ``get`` reads the remote file into the body as text. The server's
key is always checked (known_hosts or a pinned fingerprint of the connection).

Failures are classified for the retry policy: a refused or timed-out connection (and a server
I/O failure) may be retried; a wrong password, a changed host key, a missing file or a denied
permission are not — they need a person. Messages name the connection and host, never a secret.

In ``flowrun test`` (``resources.services["http_session"]`` holds the case's mock transport) the
step makes no connection: it sends ``PUT``/``GET sftp://<connection><path>`` through the mocks,
so a case answers it like a call (``mocks: [{step: send_850, responses: [{status: 200}]}]``; an
``error: connection_refused`` or ``timeout`` answer fails it like a network would, a 401/403
like a refused login, a 404 like a missing file).
"""

from __future__ import annotations

import posixpath
from typing import Any

import requests
from pydantic import Field, model_validator

from connectors.file_step import Reading, Writing, decoded, encodable, safe_path
from connectors.sftp_client import SftpClient, SftpError, open_named
from engine.plugin import (
    BuildContext,
    Continue,
    Envelope,
    Model,
    Outcome,
    Path,
    Resources,
    StepError,
    StepFn,
    StepKind,
    Value,
    compile_value,
    result,
)

_MOCK_ERRORS = {401: "auth", 403: "permission", 404: "not_found"}


class SftpPut(Writing):
    path: Value = Field(description="Remote file path; may use {{ expression }}, e.g. "
                                    "'/in/PO_{{ po_number }}.edi'.")
    make_dirs: bool = Field(False, description="Create missing folders of the path first.")


class SftpGet(Reading):
    path: Value = Field(description="Remote file path; may use {{ expression }}.")


class SftpStep(Model):
    connection: str = Field(description="Named SFTP connection (connections/NAME.yaml).")
    put: SftpPut | None = Field(None, description="Write a file atomically (temp, rename).")
    get: SftpGet | None = Field(None, description="Read a file into the body.")

    @model_validator(mode="after")
    def _one(self) -> SftpStep:
        if (self.put is None) == (self.get is None):
            raise ValueError("give exactly one of 'put:' or 'get:'")
        return self


def _step_error(exc: SftpError) -> StepError:
    return StepError(exc.message, kind=exc.kind, retryable=exc.retryable)


def _mocked(session: requests.Session, method: str, url: str, data: bytes | None,
            timeout: float) -> requests.Response:
    """One operation through a flow test's mock transport; see the module docstring."""
    request = requests.Request(method, url, data=data).prepare()
    try:
        response = session.get_adapter("http://").send(request, timeout=(timeout, timeout))
    except requests.exceptions.SSLError:
        raise StepError(f"{url}: host key of the server does not match", kind="host_key") \
            from None
    except requests.exceptions.Timeout:
        raise StepError(f"{url}: connect timeout", kind="timeout", retryable=True) from None
    except requests.exceptions.ConnectionError as exc:
        raise StepError(f"{url}: {exc}", kind="connection", retryable=True) from None
    if not 200 <= response.status_code < 300:
        kind = _MOCK_ERRORS.get(response.status_code, "io")
        raise StepError(f"{method} {url}: the server answered {response.status_code}",
                        kind=kind, retryable=kind == "io", status=response.status_code)
    return response


def build(config: SftpStep, ctx: BuildContext) -> StepFn:
    action = config.put or config.get
    assert action is not None
    verb = "put" if config.put is not None else "get"
    path_of = compile_value(action.path, ctx, (verb, "path"))
    content = ctx.expr(config.put.content, ("put", "content")) \
        if config.put is not None and config.put.content is not None else None
    connection = _connection(ctx, config.connection, ("connection",))
    where = f"sftp.{verb}"  # the runner names the step and its line
    timeout = connection[1].timeout if connection and connection[1] else 10.0

    def sftp(envelope: Envelope, resources: Resources) -> Outcome:
        path = safe_path(str(path_of(envelope, resources.secrets)), f"{where}.path")
        url = f"sftp://{config.connection}{'' if path.startswith('/') else '/'}{path}"
        mock = resources.services.get("http_session")
        if config.put is not None:
            value = content.evaluate(envelope) if content is not None else envelope.body
            data = encodable(value, config.put.encoding, f"{where}.content")
            if mock is not None:
                _mocked(mock, "PUT", url, data, timeout)
            else:
                with _open(connection, resources) as client:
                    _put(client, path, data, config.put.make_dirs)
            resources.log.info("sftp put %s (%d bytes)", url, len(data))
            return Continue()
        assert config.get is not None
        if mock is not None:
            raw = _mocked(mock, "GET", url, None, timeout).content
        else:
            with _open(connection, resources) as client:
                raw = _get(client, path, config.get.max_bytes)
        return result(decoded(raw, config.get.encoding, f"{where} {url}"))

    return sftp


def _connection(ctx: BuildContext, name: str, path: Path) -> Any:
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(path, f"no connection '{name}': named connections are not loaded here")
        return None
    return (name, connections.lookup(name, "sftp", ctx, path))


def _open(connection: Any, resources: Resources) -> SftpClient:
    name, config = connection
    try:
        return open_named(name, config, resources.secrets)
    except SftpError as exc:
        raise _step_error(exc) from None


def _put(client: SftpClient, path: str, data: bytes, make_dirs: bool) -> None:
    try:
        if make_dirs:
            client.ensure_folder(posixpath.dirname(path))
        client.put(path, data)
    except SftpError as exc:
        raise _step_error(exc) from None


def _get(client: SftpClient, path: str, max_bytes: int) -> bytes:
    try:
        return client.get(path, max_bytes)
    except SftpError as exc:
        raise _step_error(exc) from None


STEP = StepKind(name="sftp", config=SftpStep, build=build,
                description="Put a file on an SFTP server atomically (temp name, then rename) or "
                            "get one into the body, through a named connection whose host key "
                            "is always checked.",
                side_effect=True)
