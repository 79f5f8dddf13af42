"""The labelled series `Metrics` keeps looked up count as the prometheus client's own: each label
set its own series, every call counted, what a scrape shows unchanged."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from engine.metrics import Metrics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_each_label_set_counts_every_call() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for _ in range(3):
        metrics.webhook("orders", "accepted")
    metrics.webhook("orders", "duplicate")
    metrics.webhook("refunds", "accepted")
    metrics.response("orders", 202, 0.004)
    metrics.response("orders", 202, 0.006)
    metrics.response("orders", 401, 0.001)
    assert sample(registry, "flowrun_webhook_requests_total", flow="orders",
                  outcome="accepted") == 3
    assert sample(registry, "flowrun_webhook_requests_total", flow="orders",
                  outcome="duplicate") == 1
    assert sample(registry, "flowrun_webhook_requests_total", flow="refunds",
                  outcome="accepted") == 1
    assert sample(registry, "flowrun_webhook_responses_total", flow="orders",
                  status="202") == 2
    assert sample(registry, "flowrun_webhook_responses_total", flow="orders",
                  status="401") == 1
    assert sample(registry, "flowrun_webhook_request_duration_seconds_count",
                  flow="orders") == 3


def test_two_metrics_objects_keep_their_own_series() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).webhook("orders", "accepted")
    Metrics(second).webhook("orders", "accepted")
    assert sample(first, "flowrun_webhook_requests_total", flow="orders",
                  outcome="accepted") == 1
    assert b'flow="orders"' in generate_latest(second)
