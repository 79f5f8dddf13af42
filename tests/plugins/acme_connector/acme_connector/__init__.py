"""ACME queues: a connection kind, a ``call:`` connector and a poll source in one module.

A connection file says where the ACME API is and which token to send::

    connection: acme_eu
    acme: {base_url: "${env:ACME_URL}", token: "${secret:ACME_TOKEN}"}

``call: {acme: {connection: acme_eu, queue: processed}}`` posts the body to a queue;
``trigger: {poll: {every: 30s, acme: {connection: acme_eu, queue: inbound}}}`` takes every
message waiting in a queue, one run each.

The connector sends through the HTTP transport the step is handed, when it is handed one, so
``flowrun test`` answers its calls from a case's mocks like any ``http`` call.
"""

from __future__ import annotations

from typing import Any

import requests
from pydantic import Field

from engine.plugin import (
    HTTP,
    BuildContext,
    ConnectionKind,
    Envelope,
    Model,
    Outcome,
    Path,
    PollOutcome,
    PollRun,
    PollSourceKind,
    PollTrigger,
    Resources,
    Secret,
    StepError,
    StepFn,
    StepKind,
    interpolate,
    result,
)

TIMEOUT = (5.0, 30.0)
SESSION = requests.Session()  # pooled connections, shared by every step and poll


class AcmeConnection(Model):
    base_url: str = Field(description="Base URL of the ACME API; may use ${env:NAME}.")
    token: Secret = Field(description="API token: '${secret:NAME}'.")


class AcmePush(Model):
    connection: str = Field(description="Named ACME connection (connections/NAME.yaml).")
    queue: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Queue to post the body to.")


class AcmeInbox(Model):
    connection: str = Field(description="Named ACME connection (connections/NAME.yaml).")
    queue: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Queue to take messages from.")


def _connection(ctx: BuildContext, name: str, path: Path) -> AcmeConnection | None:
    """At load: the named connection, checked to be an ACME one (a problem at *path* if not)."""
    connections = ctx.service("connections")
    if connections is None:
        ctx.problem(path, f"no connection '{name}': named connections are not loaded here")
        return None
    found: AcmeConnection | None = connections.lookup(name, "acme", ctx, path)
    return found


def _send(session: requests.Session, method: str, config: AcmeConnection, path: str,
          secrets: Any, **kwargs: Any) -> requests.Response:
    url = interpolate(config.base_url, secrets).rstrip("/") + path
    headers = {"Authorization": "Bearer " + interpolate(config.token, secrets)}
    try:
        response = session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise StepError(f"{method} {url}: {type(exc).__name__}", kind="connection",
                        retryable=True) from None
    if not 200 <= response.status_code < 300:
        raise StepError(f"{method} {url} answered {response.status_code}", kind="http",
                        status=response.status_code, retryable=response.status_code >= 500)
    return response


def build_push(config: AcmePush, ctx: BuildContext) -> StepFn:
    connection = _connection(ctx, config.connection, ("connection",))

    def push(envelope: Envelope, resources: Resources) -> Outcome:
        assert connection is not None  # a flow whose connection did not resolve never loads
        session = resources.transport(HTTP) or SESSION
        response = _send(session, "POST", connection, f"/queues/{config.queue}",
                         resources.secrets, json=envelope.body)
        return result(response.json())

    return push


class InboxPoll:
    def __init__(self, config: AcmeInbox, connection: AcmeConnection | None):
        self.config, self.connection = config, connection

    def poll(self, run: PollRun) -> PollOutcome:
        assert self.connection is not None
        outcome = PollOutcome()
        response = _send(SESSION, "GET", self.connection,
                         f"/queues/{self.config.queue}/messages", run.secrets)
        for message in response.json():
            run.take(message, {"queue": self.config.queue})
            outcome.records += 1
        outcome.pages = 1
        return outcome


def build_inbox(trigger: PollTrigger, ctx: BuildContext, path: Path) -> InboxPoll:
    config: AcmeInbox = trigger.source_config
    return InboxPoll(config, _connection(ctx, config.connection, (*path, "acme", "connection")))


CONNECTION = ConnectionKind(name="acme", config=AcmeConnection,
                            description="An ACME queue API: base URL and token.")
CONNECTOR = StepKind(name="acme", config=AcmePush, build=build_push, side_effect=True,
                     description="Post the body to an ACME queue.")
SOURCE = PollSourceKind(name="acme", config=AcmeInbox, build=build_inbox,
                        description="Take the messages waiting in an ACME queue.")
