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

The step opens its session through the SFTP transport it is handed (``resources.transport(
SFTP)``), or through `connectors.sftp_client` when none is: ``flowrun test`` hands in the
in-memory twin of `engine.testing.twins`, which answers ``PUT``/``GET
sftp://<connection><path>`` from the case's mocks.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pydantic import Field, model_validator

from connectors.file_step import Reading, Writing, decoded, encodable, safe_path
from connectors.sftp_client import SftpError, open_named
from engine.plugin import (
    SFTP,
    BuildContext,
    Continue,
    Envelope,
    Model,
    Outcome,
    Path,
    Resources,
    SftpOpener,
    SftpSession,
    StepError,
    StepFn,
    StepKind,
    Value,
    compile_value,
    result,
)


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


def build(config: SftpStep, ctx: BuildContext) -> StepFn:
    action = config.put or config.get
    assert action is not None
    verb = "put" if config.put is not None else "get"
    path_of = compile_value(action.path, ctx, (verb, "path"))
    content = ctx.expr(config.put.content, ("put", "content")) \
        if config.put is not None and config.put.content is not None else None
    connection = _connection(ctx, config.connection, ("connection",))
    where = f"sftp.{verb}"  # the runner names the step and its line

    def sftp(envelope: Envelope, resources: Resources) -> Outcome:
        path = safe_path(str(path_of(envelope, resources.secrets)), f"{where}.path")
        url = f"sftp://{config.connection}{'' if path.startswith('/') else '/'}{path}"
        opener = resources.transport(SFTP) or open_named
        if config.put is not None:
            value = content.evaluate(envelope) if content is not None else envelope.body
            data = encodable(value, config.put.encoding, f"{where}.content")
            with _open(opener, connection, resources) as client:
                _put(client, path, data, config.put.make_dirs)
            resources.log.info("sftp put %s (%d bytes)", url, len(data))
            return Continue()
        assert config.get is not None
        with _open(opener, connection, resources) as client:
            raw = _get(client, path, config.get.max_bytes)
        return result(decoded(raw, config.get.encoding, f"{where} {url}"))

    return sftp


def _connection(ctx: BuildContext, name: str, path: Path) -> Any:
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(path, f"no connection '{name}': named connections are not loaded here")
        return None
    return (name, connections.lookup(name, "sftp", ctx, path))


def _open(opener: SftpOpener, connection: Any, resources: Resources) -> SftpSession:
    name, config = connection
    try:
        return opener(name, config, resources.secrets)
    except SftpError as exc:
        raise _step_error(exc) from None


def _put(client: SftpSession, path: str, data: bytes, make_dirs: bool) -> None:
    try:
        if make_dirs:
            client.ensure_folder(posixpath.dirname(path))
        client.put(path, data)
    except SftpError as exc:
        raise _step_error(exc) from None


def _get(client: SftpSession, path: str, max_bytes: int) -> bytes:
    try:
        return client.get(path, max_bytes)
    except SftpError as exc:
        raise _step_error(exc) from None


STEP = StepKind(name="sftp", config=SftpStep, build=build,
                description="Put a file on an SFTP server atomically (temp name, then rename) or "
                            "get one into the body, through a named connection whose host key "
                            "is always checked.",
                side_effect=True)
