"""The JSON API's request and response models, and the OpenAPI document made from them.

The models are the single source: requests are validated with them, responses are passed
through them before they leave, and ``/api/openapi.json`` is generated from their JSON Schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Model):
    error: str = Field(description="What went wrong, for a person.")
    detail: Any = Field(None, description="Machine-readable detail, e.g. validation errors.")
    violations: list[Violation] = Field(default_factory=list,
                                        description="Schema violations of an edited body.")


class Violation(_Model):
    path: str = Field(description="JSON path of the offending value.")
    message: str = Field(description="What is wrong with it.")


class Snapshot(_Model):
    json_: str = Field(alias="json", description="The payload as indented JSON, secrets "
                                                 "redacted, cut at a bound.")
    truncated: bool = Field(description="True when `json` is only the beginning.")
    size: int = Field(description="Length of the whole JSON text in characters.")


class Answer(_Model):
    """What the partner answered to the call that failed: the reason to fix the data."""

    status: int = Field(description="HTTP status of the answer.")
    reason: str | None = Field(description="Its reason phrase.")
    headers: dict[str, str] = Field(description="Selected headers (Content-Type, Retry-After, "
                                                "request and correlation ids); never cookies "
                                                "or credentials.")
    body: str = Field(description="The body, secrets redacted, cut at 4 KiB.")
    truncated: bool = Field(description="True when `body` is only the beginning.")
    size: int | None = Field(description="Length of the whole body in bytes.")


class RunSummary(_Model):
    run_id: str
    flow: str
    version: str
    status: str = Field(description="queued, running, retrying, succeeded, filtered, dropped, "
                                    "dead_lettered, failed, handed_off or split.")
    key: str | None = Field(description="Business key (order number, PO number, ...).")
    correlation_id: str
    trigger: str
    created_at: float = Field(description="Unix time.")
    updated_at: float
    error: str | None = Field(description="Failed step and its last error, if any.")


class LateRun(_Model):
    """A run that breached its flow's SLA (engine/sla)."""

    run_id: str
    flow: str
    key: str | None = Field(description="Business key (order number, PO number, ...).")
    deadline: float = Field(description="Unix time by which it should have succeeded.")
    detected_at: float = Field(description="When the breach was claimed.")
    late_by_s: float = Field(description="Seconds past the deadline: up to its success, or up "
                                         "to now while it is still open.")
    status_then: str = Field(description="Its status when the breach was detected.")
    status: str = Field(description="Its status now ('removed' once retention removed it).")
    open: bool = Field(description="True while it has not succeeded: still late, and counting.")
    alert_run_id: str | None = Field(description="The run of the alert flow that was told.")


class StepSnapshot(_Model):
    """The message at one side of a step, as the run recorded it (FLOWRUN_STEP_SNAPSHOTS)."""

    json_: str = Field(alias="json", description="The value's JSON, secrets masked, cut at the "
                                                 "recorded bound (4 KiB by default).")
    size: int = Field(description="Length of the whole JSON in bytes.")
    truncated: bool = Field(description="True when `json` is only the beginning.")
    to: str = Field(description="Where the step put it: `body`, or `vars.NAME` for a step "
                                "whose `output:` is a variable.")


class Step(_Model):
    index: int
    id: str
    kind: str | None
    status: str
    attempts: int
    duration_ms: float
    share: float = Field(description="Duration as a percentage of the run's longest step.")
    error: str | None
    input: StepSnapshot | None = Field(None, description="The body the step was given (the "
                                       "previous step's output; the original for the first); "
                                       "null when not recorded (snapshots off, compacted run).")
    output: StepSnapshot | None = Field(None, description="What the step left: the body, or "
                                        "the variable it set; null for a failed step or when "
                                        "not recorded.")
    unchanged: bool = Field(False, description="True when the step left the body as it was.")


class RunDetail(RunSummary):
    steps: list[Step] = Field(description="The step timeline, in execution order.")
    error_detail: dict[str, Any] | None
    attempts: list[dict[str, Any]] = Field(description="Attempts of the failing step.")
    violations: list[Violation]
    answer: Answer | None = Field(description="The partner's answer to the failed call, if "
                                              "the run failed on one.")
    due_at: float | None = Field(description="When a retrying run's next attempt is due.")
    done: bool
    parent_run_id: str | None
    children: list[str]
    replay_of: str | None = Field(description="Dead-letter entry this run replays.")
    input: Snapshot = Field(description="The original trigger message (body and headers).")
    output: Snapshot = Field(description="The envelope as the run left it.")
    deadline: float | None = Field(None, description="When its flow's SLA wants it to have "
                                                     "succeeded (Unix time), if it has one.")
    late: LateRun | None = Field(None, description="Its SLA breach, if it was late.")


class FlowHealth(_Model):
    flow: str
    version: str
    trigger: str
    description: str
    runs: int
    finished: int
    failed: int = Field(description="Finished runs that were dead-lettered or failed.")
    success_rate: float | None = Field(description="Percent of finished runs not failed.")
    active: int = Field(description="Runs queued, running or waiting for a retry.")
    last_run: RunSummary | None
    dlq_depth: int = Field(description="Open dead-letter entries.")
    lane: str = Field(description="The worker lane (queue:) of the flow's runs.")
    poll_lag: float | None = Field(description="Polling flows: seconds between now and the "
                                               "cursor (how far behind the partner's data).")
    last_poll_at: float | None = Field(description="Polling flows: the last successful poll.")
    poll_error: str | None = Field(description="Polling flows: why the last poll failed.")


class ActivityBucket(_Model):
    start: float = Field(description="Unix seconds: the bucket is [start, start + bucket).")
    finished: int = Field(description="Runs that finished in the bucket (dry runs left out).")
    failed: int = Field(description="Of them, runs dead-lettered or failed.")
    error_rate: float | None = Field(description="failed / finished, in percent; null when "
                                                 "no run finished.")
    p95_seconds: float | None = Field(description="95th percentile of received → finished, "
                                                  "as the upper edge of its latency bucket.")
    dead_letters: int = Field(description="Dead-letter entries filed in the bucket.")


class ActivityWindow(_Model):
    window: str
    label: str


class Activity(_Model):
    window: Literal["1h", "24h", "7d"]
    label: str
    flow: str | None = Field(description="The flow, or null for all flows.")
    bucket_seconds: int
    since: float
    until: float = Field(description="The end of the bucket under way now.")
    buckets: list[ActivityBucket] = Field(description="Oldest first, empty buckets included.")
    total: ActivityBucket = Field(description="The whole window as one bucket.")
    windows: list[ActivityWindow] = Field(description="The windows there are.")


class DeadLetterSummary(_Model):
    id: str
    run_id: str
    flow: str
    version: str
    step: str | None
    status: str = Field(description="open, replaying, replayed or discarded.")
    key: str | None
    correlation_id: str
    created_at: float
    error: str


class DeadLetterDetail(DeadLetterSummary):
    message: str
    kind: str | None
    http_status: int | None
    gave_up: str | None
    attempts: list[dict[str, Any]]
    violations: list[Violation]
    answer: Answer | None = Field(description="The partner's answer to the failed call of the "
                                              "entry's latest failure, if it was one.")
    original: Snapshot = Field(description="The original trigger message.")
    envelope: Snapshot = Field(description="The envelope at the failed step.")
    editable_body: str | None = Field(description="The body at the failed step as JSON text, "
                                                  "or null when too large to edit here.")
    audit: list[dict[str, Any]] = Field(description="Every replay and discard: who, when, how, "
                                                    "result.")


class ReplayRequest(_Model):
    start_from: Literal["failed-step", "start"] = "failed-step"
    version: Literal["original", "current"] = Field("original", description="Flow version.")
    body: Any = Field(None, description="An edited body; leave the key out to replay the "
                                        "message as it was.")
    dry_run: bool = Field(False, description="Run only the steps without side effects.")


class ReplayResult(_Model):
    entry: str
    run_id: str
    status: str


class DiscardRequest(_Model):
    reason: str = Field("", max_length=2000, description="Why, for the audit trail.")


class BulkReplayRequest(_Model):
    flow: str | None = None
    step: str | None = None
    error: str | None = Field(None, description="Text the entry's error contains.")
    kind: str | None = Field(None, description="How the entry failed: http, timeout, ...")
    http_status: str | None = Field(None, description="The partner's HTTP status, e.g. 422.")
    since: str | None = Field(None, description="2026-11-20, 2026-11-20T10:00, or 2h (ago).")
    until: str | None = None
    status: Literal["open", "replaying", "replayed", "discarded", "all"] = "open"
    start_from: Literal["failed-step", "start"] = "failed-step"
    version: Literal["original", "current"] = "original"
    entries: list[str] | None = Field(None, max_length=10_000, description=(
        "These entry ids instead of the filter."))
    action: Literal["replay", "discard"] = "replay"
    patch: str | None = Field(None, max_length=20_000, description=(
        "A JSONata expression that rewrites each entry's body before its replay: `$` is the "
        "body the replay starts with, `$entry` the entry's facts (id, flow, step, key, error…)."))
    reason: str = Field("", max_length=2000, description="Why, for a discard's audit trail.")


class BulkPreviewRequest(BulkReplayRequest):
    count: int = Field(3, ge=1, le=20, description="How many of the entries to preview.")


class DryRunPath(_Model):
    status: str = Field(description="How the dry run ended; `dry_run` when it stopped before "
                                    "a step with side effects.")
    steps: list[dict[str, Any]] = Field(description="The steps it ran: id, kind, status.")
    hand_off: list[str] = Field(description="Flows it would hand the message to.")
    message: str = Field(description="Where and why it stopped, or its error.")


class PatchPreview(_Model):
    entry: str
    flow: str | None = None
    resume_at: str | None = Field(None, description="The step the replay starts at.")
    before: str | None = Field(None, description="The body before the patch, as JSON.")
    after: str | None = Field(None, description="The body the replay would start with.")
    diff: str = ""
    error: str | None = Field(None, description="The patch's error on this entry (the entry "
                                                "would be left open), or why it is refused.")
    dry_run: DryRunPath | None = None


class BulkPreview(_Model):
    total: int = Field(description="Entries the job would act on.")
    flows: dict[str, int] = Field(description="Those entries per flow.")
    missing: int = 0
    previews: list[PatchPreview]


class JobProgress(_Model):
    id: str
    state: Literal["running", "done", "failed", "interrupted"] = Field(description=(
        "interrupted: no progress for console_job_stale seconds (its server process stopped), "
        "or resumed as another job."))
    who: str
    total: int
    processed: int = Field(description="Entries handled so far (replayed or refused).")
    started: int
    refused: list[dict[str, str]]
    action: Literal["replay", "discard"] = "replay"
    patch: str | None = Field(None, description="The patch expression of the replays.")
    discarded: int = 0
    patch_failed: list[dict[str, str]] = Field(default_factory=list, description=(
        "Entries the patch failed on, left open, with its error."))
    runs: dict[str, int] = Field(description="Replayed runs by their current status.")
    error: str | None = Field(None, description=(
        "Why a failed job stopped early (secrets masked); the entries it had not handled are "
        "left as they were."))
    untouched: int = Field(0, description="Entries the job has not handled (yet).")
    start_from: str
    version: str
    created_at: float
    updated_at: float = Field(0.0, description="When the job last recorded progress.")
    finished_at: float | None
    owner: str = Field("", description="The server process running it (host:pid).")
    uncertain: str | None = Field(None, description=(
        "Of a stopped job, the entry it may have been in the middle of: check it before "
        "replaying it; a resume leaves it out."))
    resumable: bool = Field(False, description=(
        "Whether POST .../resume would start a job over the entries left."))
    resumed_from: str | None = None
    resumed_as: str | None = Field(None, description="The job that took over what was left.")
    percent: float


Error.model_rebuild()

_RUN_QUERY = [("flow", "Flow id."), ("status", "Run status."),
              ("key", "Business key, e.g. an order number."), ("correlation_id", "Correlation id."),
              ("since", "From (2026-11-20, 2026-11-20T10:00 UTC, or 2h ago)."),
              ("until", "Before."), ("limit", "At most this many (1-200, default 50)."),
              ("payload", "A field of the original body equal to a value: "
                          "`customer.email=a@example.com`. Without a payload index (SQLite, "
                          "Redis) the latest 10,000 runs matching the other filters are "
                          "searched; the X-Flowrun-Searched header then says so.")]
_DLQ_QUERY = [("flow", "Flow id."), ("step", "Failed step."),
              ("error", "Text the error contains."),
              ("kind", "How it failed: http, timeout, connection, validation, ..."),
              ("http_status", "The partner's HTTP status (kind http), e.g. 422."),
              ("status", "open (default), replaying, replayed, discarded or all."),
              ("since", "From."), ("until", "Before."), ("limit", "1-200, default 50.")]
_ACTIVITY_QUERY = [("window", "1h (minutes), 24h (half hours, the default) or 7d (hours)."),
                   ("flow", "Flow id; leave it out for all flows.")]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(name: str | None, description: str, many: bool = False) -> dict[str, Any]:
    if name is None:
        return {"description": description}
    schema = {"type": "array", "items": _ref(name)} if many else _ref(name)
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: tuple[str, str | None, str], *, many: bool = False,
        query: list[tuple[str, str]] | None = None, path: str | None = None,
        body: str | None = None) -> dict[str, Any]:
    status, model, text = ok
    errors = {"401": _answer("Error", "No or wrong credentials; nothing else is said."),
              "400": _answer("Error", "A search parameter that cannot be used.")}
    if path:
        errors["404"] = _answer("Error", f"No such {path}.")
    if body:
        errors["403"] = _answer("Error", "Session-cookie request without its X-CSRF-Token.")
        errors["422"] = _answer("Error", "Invalid request, or the replay was refused (the "
                                         "entry is kept); `violations` lists schema errors.")
    op: dict[str, Any] = {"summary": summary, "responses": {status: _answer(model, text, many),
                                                            **errors}}
    params = [{"name": n, "in": "query", "required": False, "description": d,
               "schema": {"type": "string"}} for n, d in query or []]
    if path:
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": _ref(body)}}}
    return op


def openapi() -> dict[str, Any]:
    models: list[type[BaseModel]] = [Error, Violation, Snapshot, RunSummary, LateRun,
                                     StepSnapshot, Step,
                                     RunDetail,
                                     FlowHealth, DeadLetterSummary, DeadLetterDetail,
                                     ReplayRequest, ReplayResult, DiscardRequest,
                                     BulkReplayRequest, BulkPreviewRequest, DryRunPath,
                                     PatchPreview, BulkPreview, JobProgress,
                                     ActivityBucket, ActivityWindow, Activity]
    _, schemas = models_json_schema([(m, "serialization") for m in models],
                                    ref_template="#/components/schemas/{model}")
    paths = {
        "/api/flows": {"get": _op("Flows with their health", ("200", "FlowHealth", "Flows."),
                                  many=True)},
        "/api/activity": {"get": _op("Runs finished, error rate, p95 latency and dead-letter "
                                     "inflow per bucket of a window", ("200", "Activity",
                                                                       "The window."),
                                     query=_ACTIVITY_QUERY)},
        "/api/runs": {"get": _op("Search runs, newest first", ("200", "RunSummary", "Runs."),
                                 many=True, query=_RUN_QUERY)},
        "/api/runs/{id}": {"get": _op("A run's step timeline and payload snapshots",
                                      ("200", "RunDetail", "The run."), path="run")},
        "/api/late": {"get": _op("Runs that breached their flow's SLA, latest breach first",
                                 ("200", "LateRun", "Late runs."), many=True,
                                 query=[("flow", "Only this flow."),
                                        ("limit", "At most this many (default 100).")])},
        "/api/dead-letters": {"get": _op("Search the dead-letter queue", ("200",
                                         "DeadLetterSummary", "Entries."), many=True,
                                         query=_DLQ_QUERY)},
        "/api/dead-letters/{id}": {"get": _op("Everything kept for one entry", (
            "200", "DeadLetterDetail", "The entry."), path="entry")},
        "/api/dead-letters/{id}/replay": {"post": _op(
            "Replay an entry, optionally with an edited body", ("202", "ReplayResult",
                                                                "Replay started."),
            path="entry", body="ReplayRequest")},
        "/api/dead-letters/{id}/discard": {"post": _op(
            "Discard an entry (kept, never replayed)", ("200", "DeadLetterSummary", "Discarded."),
            path="entry", body="DiscardRequest")},
        "/api/replay-jobs": {"post": _op("Replay (or discard) every entry a filter or a "
                                         "list of ids selects, in the background",
                                         ("202", "JobProgress", "Job started."),
                                         body="BulkReplayRequest")},
        "/api/replay-jobs/preview": {"post": _op(
            "What a bulk replay with a patch would do to the first few entries (nothing is "
            "replayed)", ("200", "BulkPreview", "The preview."), body="BulkPreviewRequest")},
        "/api/replay-jobs/{id}": {"get": _op("Progress of a bulk replay", (
            "200", "JobProgress", "The job."), path="job")},
        "/api/replay-jobs/{id}/resume": {"post": _op(
            "Start a job over what an interrupted or failed job left (409 if it is running, "
            "done or resumed already)", ("202", "JobProgress", "The new job."), path="job")},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "flowrunner console API", "version": "1",
                     "description": "Runs, dead letters and replays. Authenticate with "
                     "`Authorization: Bearer <FLOWRUN_CONSOLE_TOKEN>` or Basic auth; a browser "
                     "session (cookie) must send `X-CSRF-Token` on every POST."},
            "components": {"schemas": schemas.get("$defs", {}), "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"}}},
            "security": [{"bearer": []}, {"basic": []}],
            "paths": paths}
