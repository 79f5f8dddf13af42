"""Prometheus metrics of a flowrunner process: runs, steps, retries, dead letters, webhooks.

Every App has one `Metrics`, an observer of its execution core (engine/processing): step
durations and retries after each advance, runs by flow and status and dead letters when a run
ends, so nothing inside the runner or the steps knows about metrics. The
webhook server counts intake outcomes, responses by status and latency itself.

Gauges that describe the state rather than events — dead-letter depth by flow, runs queued,
running or waiting for a retry by lane, poll lag (now − cursor) — are read from the store when
Prometheus scrapes (`StoreCollector`), so every process reports the same truth and none has to
keep a count in step.

Each registry also holds prometheus-client's process, platform and GC collectors and
``flowrun_build_info``. Celery's prefork pool runs tasks in child processes: with
``PROMETHEUS_MULTIPROC_DIR`` set (before the worker starts; prometheus-client decides at its
first metric), each process writes its values to files there and `scrape_registry` adds them
up (`serve_worker_metrics`); the process, platform and GC figures are then those of the process
that answers the scrape.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine import __version__
from engine.observe import Observer
from engine.poll import cursor as cursors
from engine.records import ACTIVE
from engine.retry import reason_kind

if TYPE_CHECKING:
    from engine.compiled import CompiledFlow
    from engine.observe import Retry
    from engine.records import RunState
    from engine.store.base import Store
    from engine.versions import FlowVersions

log = logging.getLogger("flowrunner.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
INTAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
#: received to finished: milliseconds for a transform, hours for a run that waited out retries
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600,
               86400)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics(Observer):
    """The metric objects of one App, on a registry of their own (tests build many Apps)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter("flowrun_runs", "Runs that finished, by flow and final status.",
                            ["flow", "status"], registry=r)
        self.run_seconds = Histogram("flowrun_run_duration_seconds", "Time from a run's "
                                     "message received to the run finished (retries and "
                                     "waits included), by flow and final status.",
                                     ["flow", "status"], buckets=RUN_BUCKETS, registry=r)
        self.step_seconds = Histogram("flowrun_step_duration_seconds",
                                      "Duration of step executions (the last attempt).",
                                      ["flow", "step", "status"], buckets=STEP_BUCKETS,
                                      registry=r)
        self.retries = Counter("flowrun_step_retries", "Retries scheduled after a failed "
                               "attempt, by the failure's class (reason).",
                               ["flow", "step", "reason"], registry=r)
        self.dead_letters = Counter("flowrun_dead_lettered", "Messages that went to the "
                                     "dead-letter queue, by the failure's class (reason; a "
                                     "replay that fails again goes back to its entry: not "
                                     "counted again).", ["flow", "step", "reason"], registry=r)
        self.webhook_requests = Counter("flowrun_webhook_requests", "Webhook requests by "
                                        "outcome (accepted, duplicate, signature_rejected, ...).",
                                        ["flow", "outcome"], registry=r)
        self.events = Counter("flowrun_events", "Business events published, by type and "
                              "outcome: delivered (one per subscriber run started), duplicate "
                              "(a subscriber had the event id already), no_subscriber, "
                              "subscription_error (dead-lettered).", ["type", "outcome"],
                              registry=r)
        self.webhook_responses = Counter("flowrun_webhook_responses", "Webhook responses by "
                                         "HTTP status.", ["flow", "status"], registry=r)
        self.webhook_seconds = Histogram("flowrun_webhook_request_duration_seconds",
                                         "Time from request to response at webhook intake.",
                                         ["flow"], buckets=INTAKE_BUCKETS, registry=r)
        self.sla_breaches = Counter("flowrun_sla_breaches", "Runs that were not successful "
                                    "by their flow's SLA deadline, each counted once (by the "
                                    "process that claimed the breach).", ["flow"], registry=r)
        self._extra: list[Collector] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.add_collector(BuildInfo())
        if not multiprocess_mode():
            process_collectors(r)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: labels() checks and locks on every call,
        and the webhook and run metrics are counted several times per request."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- events --------------------------------------------------------------------------------
    def event(self, event_type: str, outcome: str, count: int = 1) -> None:
        self.events.labels(event_type, outcome).inc(count)

    def sla_breach(self, flow: str) -> None:
        self.sla_breaches.labels(flow).inc()

    def webhook(self, flow: str, outcome: str) -> None:
        self._child(self.webhook_requests, flow, outcome).inc()

    def response(self, flow: str, status: int, seconds: float) -> None:
        self._child(self.webhook_responses, flow, str(status)).inc()
        self._child(self.webhook_seconds, flow).observe(seconds)

    def advanced(self, flow: CompiledFlow, state: RunState, before: int) -> None:
        """Step durations of the steps just run."""
        for record in state.steps[before:]:
            self._child(self.step_seconds, state.flow_id, record["id"], record["status"]
                        ).observe(record["duration_ms"] / 1000)

    def retry_scheduled(self, flow: CompiledFlow, state: RunState, retry: Retry) -> None:
        self.retries.labels(state.flow_id, retry.step, retry.kind).inc()

    def dead_lettered(self, state: RunState) -> None:
        if state.envelope.get("meta", {}).get("replay_of"):
            return
        error = state.error or {}
        self.dead_letters.labels(state.flow_id, error.get("step") or "",
                                  reason_kind(error.get("kind"), error.get("status"))).inc()

    def finished(self, state: RunState) -> None:
        self._child(self.runs, state.flow_id, state.status).inc()
        self._child(self.run_seconds, state.flow_id, state.status).observe(
            max(0.0, state.updated_at - state.created_at))

    def total(self, outcome: str) -> int:
        """Webhook requests with this outcome, over every flow (for tests and the console)."""
        return int(sum(s.value for m in self.webhook_requests.collect() for s in m.samples
                       if s.name.endswith("_total") and s.labels.get("outcome") == outcome))

    # -- exposition ----------------------------------------------------------------------------
    def add_collector(self, collector: Collector) -> None:
        """Add a scrape-time collector; one of each kind (create_app may run twice on an App)."""
        if any(type(c) is type(collector) for c in self._extra):
            return
        self._extra.append(collector)
        self.registry.register(collector)

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: this registry, or every process's files in multiprocess mode."""
        if not multiprocess_mode():
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        # the process, platform and GC figures of the process that answers the scrape (the
        # pool processes' own are not summed: a sum of their memory or GC counts means little)
        process_collectors(registry)
        for collector in self._extra:
            registry.register(collector)
        return registry

    def exposition(self) -> bytes:
        return generate_latest(self.scrape_registry())


def process_collectors(registry: CollectorRegistry) -> None:
    """prometheus-client's standard ``process_*`` (CPU, memory, open files), ``python_info``
    and ``python_gc_*`` collectors, on *registry* (their default instances are on the global
    registry, which flowrunner does not serve)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class BuildInfo(Collector):
    """``flowrun_build_info{version, python} 1``: which flowrunner a process runs; and
    ``flowrun_gc_frozen_objects``: how many objects it froze after start-up (0: Python's
    garbage-collector defaults, see engine/gc_tuning)."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("flowrun_build_info", "The flowrunner version and Python "
                                 "version of this process (always 1).",
                                 labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        yield GaugeMetricFamily("flowrun_gc_frozen_objects", "Objects moved out of the garbage "
                                "collector's sight after start-up (FLOWRUN_GC_TUNING); 0 with "
                                "Python's defaults.", value=gc.get_freeze_count())


def poll_lag(store: Store, flow_id: str, now: float) -> float | None:
    """now − the poll cursor of *flow_id*, in seconds: how far behind the partner's data the
    flow reads. Computed at each look, so a stuck poll shows a growing lag; None before the
    first poll or when the cursor is not a timestamp (an id, a file name)."""
    status = cursors.read_status(store, flow_id)
    return cursors.lag_seconds(status.get("cursor"), now)


def lane_of(flow: CompiledFlow) -> str:
    return str(getattr(flow.model, "queue", None) or "default")


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: dead-letter depth, runs waiting or running by
    lane, poll lag."""

    def __init__(self, store: Store, versions: FlowVersions):
        self.store, self.versions = store, versions

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("flowrun_store_up", "1 when the state store answered the "
                                                   "scrape's queries.")
        try:
            gauges = self._gauges()
        except Exception as exc:  # a scrape must answer even when the store does not
            log.warning("metrics: the state store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _gauges(self) -> list[Metric]:
        depth = GaugeMetricFamily("flowrun_dlq_depth", "Open dead-letter entries by flow.",
                                  labels=["flow"])
        queued = GaugeMetricFamily("flowrun_queue_depth", "Runs queued, running or waiting "
                                   "for a retry, by lane (the flow's queue:), flow and status.",
                                   labels=["lane", "flow", "status"])
        lag = GaugeMetricFamily("flowrun_poll_lag_seconds", "now − the poll cursor, per "
                                "polling flow with a timestamp cursor.", labels=["flow"])
        flows = self.versions.flows.flows
        counts: dict[str, int] = dict.fromkeys(flows, 0)
        counts.update(self.store.count_dead_letters("open"))
        for flow_id, n in sorted(counts.items()):
            depth.add_metric([flow_id], n)
        now = time.time()
        for flow_id, flow in sorted(flows.items()):
            by_status = self.store.count_runs(flow_id)
            for status in ACTIVE:
                queued.add_metric([lane_of(flow), flow_id, status], by_status.get(status, 0))
            if flow.trigger_kind == "poll":
                behind = poll_lag(self.store, flow_id, now)
                if behind is not None:
                    lag.add_metric([flow_id], behind)
        return [depth, queued, lag]


def serve_worker_metrics(metrics: Metrics, port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` of a Celery worker (all its pool processes) on *port*."""
    start_http_server(port, addr, registry=metrics.scrape_registry())
    log.info("worker metrics on http://%s:%d/metrics", addr, port)


def process_exited(pid: int) -> None:
    """Forget a dead pool process's live gauges (its counters stay summed)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
