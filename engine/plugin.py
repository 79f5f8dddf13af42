"""The plugin surface: everything a plugin imports from the engine, and nothing else.

A plugin — a third-party distribution, or flowrunner's own ``connectors/`` package — registers
its parts through entry points and imports only this module::

    [project.entry-points."flowrunner.steps"]          # a step kind: `StepKind`
    [project.entry-points."flowrunner.connectors"]     # a ``call:`` connector: `StepKind`
    [project.entry-points."flowrunner.connections"]    # a connection file's kind: `ConnectionKind`
    [project.entry-points."flowrunner.poll_sources"]   # a ``trigger.poll`` source: `PollSourceKind`
    [project.entry-points."flowrunner.signatures"]     # a webhook signature scheme: `Scheme`
    [project.entry-points."flowrunner.consumers"]      # a ``consume:`` bus: `ConsumerKind`

A step's ``build(config, ctx)`` runs when the flow is loaded and returns the function called
once per message with the `Envelope` and the `Resources`; it returns an `Outcome` (`Continue`,
`result(value)`, ...) or raises `StepError`. docs/connector-authors.md walks through a whole
connector. What is not named here is internal and may change without notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.bodies import record_headers
from engine.connections import (
    Connections,
    Port,
    Secret,
    one_of,
    port_number,
    resolve_file,
    secret_ref,
)
from engine.consume import DRAIN, BusMessage, ConsumerKind, Gate, header_value
from engine.dsl.base import Duration, Encoding, Expr, ExprSpec, Model
from engine.dsl.retry import HttpStatus, status_matches
from engine.dsl.triggers import PollTrigger
from engine.envelope import Envelope
from engine.expressions import Compiled, ExpressionError
from engine.home import private_file
from engine.logs import bind
from engine.poll import cursor as cursors
from engine.poll.files import DropFile, Unreadable, Vanished, refusal
from engine.poll.schedule import slot_text
from engine.poll.source import PollOutcome, PollRun, Source
from engine.problems import Path
from engine.records import DeadLetter, RecordError
from engine.refs import REF, UnresolvedReference, interpolate, redact_known, redact_logs
from engine.signatures import Scheme, SignatureError
from engine.templates import Value, compile_url, compile_value, interpolate_url
from engine.tracing import inject as add_trace_context
from engine.transports import (
    DELIVER,
    HTTP,
    SFTP,
    Deliver,
    HttpAdapter,
    HttpTransport,
    SftpOpener,
    SftpSession,
    Transport,
)
from engine.types import (
    BuildContext,
    ConnectionContext,
    ConnectionKind,
    Continue,
    Fork,
    Goto,
    HandOff,
    Outcome,
    PollSourceKind,
    Resources,
    StepError,
    StepFn,
    StepKind,
    Stop,
    ToDeadLetter,
    result,
)
from engine.webhooks import (
    CLIENT_CLOSED,
    RETRY_AFTER_UNAVAILABLE,
    Answer,
    HookEndpoint,
    correlation_id,
)

if TYPE_CHECKING:  # for annotations: an endpoint of one's own is given the app and its flow
    from engine.app import App as App
    from engine.compiled import CompiledFlow as CompiledFlow

__all__ = [
    "CLIENT_CLOSED",
    # message-bus consumers (flowrunner.consumers)
    "DELIVER",
    "DRAIN",
    "HTTP",
    # references, secrets and files
    "REF",
    "RETRY_AFTER_UNAVAILABLE",
    "SFTP",
    "Answer",
    # load time: the context a build reports problems through, compiled values and templates
    "BuildContext",
    "BusMessage",
    "Compiled",
    "ConnectionContext",
    # registration
    "ConnectionKind",
    "Connections",
    "ConsumerKind",
    # run time: the message, the resources, outcomes and errors
    "Continue",
    "DeadLetter",
    "Deliver",
    # poll sources
    "DropFile",
    # config models: the base (unknown keys forbidden) and the shared field types
    "Duration",
    "Encoding",
    "Envelope",
    "Expr",
    "ExprSpec",
    "ExpressionError",
    "Fork",
    "Gate",
    "Goto",
    "HandOff",
    "HookEndpoint",
    "HttpAdapter",
    "HttpStatus",
    "HttpTransport",
    "Model",
    "Outcome",
    "Path",
    "PollOutcome",
    "PollRun",
    "PollSourceKind",
    "PollTrigger",
    "Port",
    "RecordError",
    "Resources",
    "Scheme",
    "Secret",
    "SftpOpener",
    "SftpSession",
    # webhook signatures
    "SignatureError",
    "Source",
    "StepError",
    "StepFn",
    "StepKind",
    "Stop",
    "ToDeadLetter",
    "Transport",
    "Unreadable",
    "UnresolvedReference",
    "Value",
    "Vanished",
    # tracing: the current trace context on a message a connector sends
    "add_trace_context",
    "bind",
    "compile_url",
    "compile_value",
    "correlation_id",
    "cursors",
    "header_value",
    "interpolate",
    "interpolate_url",
    "one_of",
    "port_number",
    "private_file",
    "record_headers",
    "redact_known",
    "redact_logs",
    "refusal",
    "resolve_file",
    "result",
    "secret_ref",
    "slot_text",
    "status_matches",
]
