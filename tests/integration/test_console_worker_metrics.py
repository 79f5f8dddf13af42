"""A Celery worker's /metrics with the prefork pool: every pool process's counts, added up.

A real ``celery -A worker worker --pool prefork -c 2`` on a real redis-server, with
``PROMETHEUS_MULTIPROC_DIR`` and ``FLOWRUN_METRICS_PORT`` set as an operator would. Runs are
executed in the pool's child processes, each writing its own metric files; the main process
serves /metrics and must report the sum, whichever child ran which run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.integration.conftest import Cluster, wait_until

pytestmark = pytest.mark.integration

FLOW = """\
flow: tally
key: $string(n)
steps:
  - id: triage
    route:
      - when: qty < 1
        dead_letter: no quantity
      - otherwise: keep
  - id: keep
    set: {q: qty}
"""


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        text = requests.get(url, timeout=5).text
    except requests.ConnectionError:
        return {}
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prefork_worker_metrics_add_up_every_pool_process(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    (cluster.flows / "tally.yaml").write_text(FLOW, encoding="utf-8")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    port = free_port()
    cluster.env.update(PROMETHEUS_MULTIPROC_DIR=str(folder), FLOWRUN_METRICS_PORT=str(port))
    worker = cluster.start_worker("metrics", pool="prefork", concurrency=2)
    worker.wait_ready()

    app = cluster.app()
    flow = app.flows.flows["tally"]
    accepted = [app.accept(flow, {"n": n, "qty": 0 if n % 4 == 0 else 1}, {},
                           trigger="manual") for n in range(1, 13)]
    states = [app.wait_for(a.run_id, timeout=40)[0] for a in accepted]
    assert sorted(s.status for s in states) == ["dead_lettered"] * 3 + ["succeeded"] * 9

    url = f"http://127.0.0.1:{port}/metrics"

    def counted(name: str, **labels: str) -> float | None:
        return scrape(url).get((name, frozenset(labels.items())))

    wait_until(lambda: counted("flowrun_runs_total", flow="tally", status="succeeded") == 9,
               30, "the worker's /metrics to count the 9 succeeded runs")
    assert counted("flowrun_runs_total", flow="tally", status="dead_lettered") == 3
    assert counted("flowrun_dead_lettered_total", flow="tally", step="triage",
                   reason="route") == 3
    assert counted("flowrun_step_duration_seconds_count", flow="tally", step="keep",
                   status="succeeded") == 9
    assert counted("flowrun_run_duration_seconds_count", flow="tally",
                   status="succeeded") == 9
    # the serving process's own figures, and which flowrunner it is
    figures = scrape(url)
    assert any(name == "process_cpu_seconds_total" for name, _ in figures)
    assert any(name == "python_gc_collections_total" for name, _ in figures)
    assert [v for (name, _), v in figures.items() if name == "flowrun_build_info"] == [1]
    # the counts live in the pool processes' files, not in the serving main process
    written = {p.name.rsplit("_", 1)[-1] for p in folder.glob("counter_*.db")}
    assert written and str(worker.pid) not in {w.removesuffix(".db") for w in written}
