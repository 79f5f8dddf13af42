"""The test-file language: ``flows/<flow>.test.yaml`` holds cases for one flow.

Closed pydantic models like the flow DSL (an unknown key is an error with a did-you-mean), and
the single source of ``schemas/flow-test.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AwareDatetime, Field, model_validator

from engine.dsl.base import Duration, Model

SCHEMA_ID = "https://flowrunner.dev/schemas/flow-test.schema.json"

Status = Literal["succeeded", "filtered", "dropped", "dead_lettered", "failed", "handed_off",
                 "split"]
MockError = Literal["timeout", "read_timeout", "connection_refused", "connection_reset", "dns",
                    "tls"]


class Input(Model):
    """The trigger message of a case: a sample file or an inline body, plus headers."""

    file: str | None = Field(None, description="File with the body, relative to the test "
                                               "file, e.g. samples/shopify-order.json; a file "
                                               "not ending in .json (EDI, CSV) is the body as "
                                               "text.")
    body: Any = Field(None, description="The body written inline (instead of file).")
    headers: dict[str, Any] = Field(default_factory=dict, description="Trigger headers, e.g. "
                                    "{x-shopify-webhook-id: t1}; names are lower-cased.")
    patch: dict[str, Any] = Field(
        default_factory=dict, description="Changes to the body before the run: dotted paths and "
        "their new values, e.g. {shipping_address.country_code: US, line_items.0.qty: 2}.")

    @model_validator(mode="after")
    def _one_source(self) -> Input:
        if (self.file is None) == ("body" not in self.model_fields_set):
            raise ValueError("give the message as either 'file:' or 'body:'")
        return self


class MockResponse(Model):
    """One answer of a mocked endpoint, or a failure to answer."""

    status: int = Field(200, ge=100, le=599, description="HTTP status.")
    body: Any = Field(None, description="Response body: a mapping or list is sent as JSON, "
                                        "text as text.")
    headers: dict[str, str] = Field(default_factory=dict, description="Response headers, e.g. "
                                    "{Retry-After: '30'}.")
    delay: Duration = Field(0.0, description="Time the answer takes on the virtual clock; at "
                                             "least the call's read timeout means a read timeout.")
    error: MockError | None = Field(
        None, description="Fail instead of answering: timeout (connect), read_timeout, "
                          "connection_refused, connection_reset, dns or tls.")

    @model_validator(mode="after")
    def _error_alone(self) -> MockResponse:
        extra = {"status", "body", "headers"} & self.model_fields_set
        if self.error and extra:
            raise ValueError(f"an 'error:' answer has no {', '.join(sorted(extra))}")
        return self


class RequestMatch(Model):
    """Which outbound requests a mock answers, by method and URL."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] | None = Field(
        None, description="HTTP method; any when omitted.")
    url: str = Field(description="URL pattern; '*' matches any text, e.g. "
                                 "'http://erp-eu.test/*'. The query string is ignored.")


class Mock(Model):
    """A stand-in for a downstream system: answers the calls of a step (or matching requests)."""

    step: str | None = Field(None, description="Answer the calls made by this step.")
    request: RequestMatch | None = Field(None, description="Answer requests matching this "
                                                           "method and URL pattern.")
    responses: list[MockResponse] = Field(
        min_length=1, description="Answers in order, one per call; the last one repeats.")

    @model_validator(mode="after")
    def _selects(self) -> Mock:
        if self.step is None and self.request is None:
            raise ValueError("a mock answers 'step: <id>' or 'request: {method, url}'")
        return self


class CallExpect(Model):
    """The outbound calls one step made."""

    step: str = Field(description="Step that made the calls.")
    count: int | None = Field(None, ge=0, description="Number of calls, retries included.")
    body: Any = Field(None, description="Exact JSON body of every call.")
    body_subset: Any = Field(None, description="Part of the JSON body of every call.")
    headers: dict[str, str] | None = Field(None, description="Headers every call carried "
                                                             "(others may be present).")
    url: str | None = Field(None, description="URL pattern every call matched ('*' wildcards).")


class RetryExpect(Model):
    """Attempts of one step and the back-off delays scheduled between them."""

    step: str = Field(description="Step that was retried.")
    attempts: int | None = Field(None, ge=1, description="Attempts made, the first included.")
    delays_at_least: list[Duration] | None = Field(
        None, description="Lower bound of each scheduled delay, in order (one per retry).")
    delays_at_most: list[Duration] | None = Field(
        None, description="Upper bound of each scheduled delay, in order (one per retry).")


class DeadLetterExpect(Model):
    """The dead-letter entry the run leaves."""

    step: str | None = Field(None, description="Step the message failed at.")
    reason_contains: str | None = Field(None, description="Text the reason (message or "
                                                          "violations) contains.")
    kind: str | None = Field(None, description="Error kind: validation, http, route, timeout, "
                                               "connection, expression, ...")


class EventExpect(Model):
    """One event the run published (a publish step)."""

    type: str = Field(description="Event type, e.g. shipment.shipped.")
    data: Any = Field(None, description="Exact data of the event.")
    data_subset: Any = Field(None, description="Part of the event's data (mappings may have "
                                               "more keys).")
    key: str | None = Field(None, description="Ordering key of the event.")


class Expect(Model):
    """What must hold after the run (the first run, when it spawned others)."""

    status: Status | None = Field(None, description="Final status of the run.")
    route: list[str] | None = Field(None, description="Step ids in the order they ran.")
    body: Any = Field(None, description="Exact final body.")
    body_subset: Any = Field(None, description="Part of the final body (mappings may have "
                                               "more keys).")
    assert_: str | list[str] | None = Field(
        None, alias="assert", description="JSONata over {body, headers, vars, meta} (also bound "
        "as $headers, $vars, $meta) that must be true; a list means all of them.")
    vars: dict[str, Any] | None = Field(None, description="Values of these vars (others may "
                                                          "exist).")
    calls: list[CallExpect] = Field(default_factory=list, description="Outbound calls per step.")
    retries: list[RetryExpect] = Field(default_factory=list,
                                       description="Attempts and back-off delays per step.")
    dead_letter: DeadLetterExpect | None = Field(None, description="The dead-letter entry "
                                                 "(implies status dead_lettered).")
    events: list[EventExpect] | None = Field(
        None, description="Every event published by the run and the runs it started (split "
                          "items, hand-offs), in order; the subscribers are not run in a flow "
                          "test.")
    subscribed: bool | None = Field(
        None, description="For a flow with an event trigger (the input is the event's data): "
        "whether its subscription takes the event (when:); false means no run starts and "
        "nothing else is checked.")


class Case(Model):
    """One message through the flow, with its mocks and expectations."""

    name: str = Field(min_length=1, description="Name shown in reports; unique in the file.")
    input: Input = Field(description="The trigger message.")
    clock: AwareDatetime | None = Field(
        None, description="Start of the virtual clock with its offset, e.g. "
        "'2026-11-20T10:00:00Z' (meta.received_at); retries advance it instead of sleeping.")
    fixed_ids: bool = Field(False, description="Name runs run-1, run-2, ... (run id, correlation "
                                               "id and Idempotency-Key become predictable).")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for ${env:X}, "
                                "over the file's env.")
    secrets: dict[str, str] = Field(default_factory=dict, description="Values of ${secret:X}, "
                                    "over the file's secrets.")
    mocks: list[Mock] = Field(default_factory=list, description="Answers to outbound calls; an "
                              "unmocked call fails the case.")
    expect: Expect = Field(description="What must hold after the run.")


class FlowTestFile(Model):
    """A flow test file: the flow under test and its cases."""

    flow: str = Field(description="Id of the flow under test (in the same folder).")
    description: str | None = Field(None, description="What these cases are about.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for every case.")
    secrets: dict[str, str] = Field(default_factory=dict, description="Secrets for every case.")
    cases: list[Case] = Field(min_length=1, description="The cases.")


def flow_test_schema() -> dict[str, Any]:
    schema = FlowTestFile.model_json_schema(by_alias=True)
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "flowrunner flow test",
            "description": "Cases for one flow: input, mocks and expectations."}


def flow_test_schema_text() -> str:
    return json.dumps(flow_test_schema(), indent=2, ensure_ascii=False) + "\n"
