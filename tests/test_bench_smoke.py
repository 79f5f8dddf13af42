"""`scripts/bench --quick` end to end: every benchmark runs at its smallest size and leaves
well-formed results — the per-benchmark JSON, summary.json and the chart.

No figure is asserted against its goal here (speed is what bench/ reports, not what tests
check); what is checked is that the figures are there, shaped alike, and add up. The servers
the benchmarks start listen on 127.0.0.1 only; npm runs offline, so the JavaScript column of
the JSONata benchmark is filled from the local npm cache or left out, never downloaded.
Celery throughput is left out here (its workers take most of a minute to start and warm up even
at the smallest size), and so is the Node-RED comparison (it needs npm, wrk and minutes; its pure
parts are tested in test_bench_nodered.py); `--skip` is what keeps them out, and that is checked
too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chart import NO_MATPLOTLIB, score  # noqa: E402
from bench.common import figure  # noqa: E402

FIGURE_KEYS = {"benchmark", "name", "value", "unit", "goal", "better", "met", "note"}
RUN = {"engine_overhead", "jsonata", "webhook_ingest", "connections", "poll_100k",
       "validate_1000", "store_growth"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    results = tmp_path_factory.mktemp("bench-results")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench"), "--quick",
                           "--skip", "celery_throughput,nodered", "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "npm_config_offline": "true"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return results, done.stdout


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_summary_lists_every_benchmark_and_counts_goals(quick_run: tuple[Path, str]) -> None:
    results, _ = quick_run
    summary = _load(results / "summary.json")
    assert summary["quick"] is True
    assert {"when", "python", "cpus", "load_average_1m"} <= set(summary)
    assert set(summary["benchmarks"]) == RUN
    for name, outcome in summary["benchmarks"].items():
        assert outcome["status"] == "ok", (name, outcome)
        assert Path(outcome["result"]) == results / f"{name}.json"
    for row in summary["figures"]:
        assert set(row) == FIGURE_KEYS, row
        assert row["better"] in ("lower", "higher")
    graded = [r for r in summary["figures"] if r["met"] is not None]
    assert summary["goals_met"] + summary["goals_missed"] == len(graded) > 0
    assert {r["benchmark"] for r in summary["figures"]} == RUN


def test_each_result_file_has_its_details(quick_run: tuple[Path, str]) -> None:
    results, _ = quick_run
    engine = _load(results / "engine_overhead.json")
    assert engine["reference_flow"]["messages"] == 30
    assert engine["reference_flow"]["ratio_engine_time_to_hand_written"] > 0
    webhook = _load(results / "webhook_ingest.json")
    assert [level["concurrency"] for level in webhook["levels"]] == [1, 16, 64]
    assert all(level["accepted_202"] > 0 for level in webhook["levels"])
    poll = _load(results / "poll_100k.json")
    assert (poll["pages"], poll["records"], poll["duplicates"]) == (20, 2000, 0)
    assert poll["runs"] == {"succeeded": 2000}
    assert poll["final_cursor"] == "2026-01-01T00:33:19Z"  # record 1999, T0 + 1999 s
    assert set(poll["rss_mb"]) == {"first_page", "last_page", "peak_sampled"}
    assert 0 <= poll["cursor_commits_per_page"] <= 19
    validate = _load(results / "validate_1000.json")
    assert validate["flows"] == 50 and validate["cli_seconds"] > 0
    jsonata = _load(results / "jsonata.json")
    assert [row["case"] for row in jsonata["results"]] == ["mapping_3kb", "mapping_32kb",
                                                          "tiny_5_fields"]


def test_chart_is_drawn_or_says_why_not(quick_run: tuple[Path, str]) -> None:
    results, stdout = quick_run
    summary = _load(results / "summary.json")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert summary["chart"] == NO_MATPLOTLIB
    else:
        assert (results / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "goals met" in stdout and "measured" in stdout


@pytest.mark.parametrize(("value", "goal", "better", "met", "distance"), [
    (1.2, 1.5, "lower", True, 0.8),      # ratio under its ceiling
    (3.0, 1.5, "lower", False, 2.0),
    (3000, 1500, "higher", True, 0.5),   # req/s over its floor
    (375, 1500, "higher", False, 4.0),
])
def test_figure_grading_and_chart_distance(value: float, goal: float, better: str, met: bool,
                                           distance: float) -> None:
    row = figure("x", value, "u", goal, better)  # type: ignore[arg-type]
    assert row["met"] is met
    assert score(row) == pytest.approx(distance)


def test_a_figure_without_goal_is_context_not_graded() -> None:
    assert figure("engine msg/s", 441.0, "msg/s", better="higher")["met"] is None
