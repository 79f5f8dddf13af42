"""The pure parts of bench/session_regression.py, without wrk or servers: which checkouts it
compares, and ratios taken round by round against the reference and the side before."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("session_regression",
                                                  ROOT / "bench" / "session_regression.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_this_checkout_is_compared_last_unless_named(tmp_path: Path) -> None:
    bench = load()
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "cli.py").write_text("")
    assert bench.parse_checkouts([f"old={tmp_path}"]) == {"old": tmp_path, "this": ROOT}
    assert list(bench.parse_checkouts([f"old={ROOT}"])) == ["old"]
    sides = bench.parse_checkouts([f"old={ROOT / 'bench' / '..'}"])
    assert list(sides) == ["old"]  # the same folder, spelt otherwise


@pytest.mark.parametrize("value", ["no-equals", "=x", "name=/nonexistent/flowrunner"])
def test_a_checkout_that_is_none_is_refused(value: str) -> None:
    with pytest.raises(SystemExit, match="--checkout"):
        load().parse_checkouts([value])


def test_ratios_are_medians_of_the_rounds_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    def rounds(*cpu: float) -> list[dict[str, float]]:
        return [{"cpu_ms_per_request": c, "req_per_s": 1000 / c} for c in cpu]

    seen = {"redis/default": {"before": rounds(0.30, 0.40, 0.50),
                              "main": rounds(0.36, 0.52, 0.55),
                              "this": rounds(0.30, 0.39, 0.55)}}
    summary, figures = load().summarise(seen, "before")
    main, this = summary["redis/default"]["main"], summary["redis/default"]["this"]
    # rounds: main/before 1.2, 1.3, 1.1 → 1.2; this/main 0.833, 0.75, 1.0 → 0.833
    assert main["vs_before"]["cpu_per_request_ratio"] == 1.2
    assert this["vs_main"]["cpu_per_request_ratio"] == 0.833
    assert this["vs_before"]["cpu_per_request_ratio"] == 1.0
    assert "vs_before" not in summary["redis/default"]["before"]
    assert [f["name"] for f in figures] == ["CPU/request redis/default main/before",
                                            "CPU/request redis/default this/before",
                                            "CPU/request redis/default this/main"]
    assert "this/main: ×0.833 CPU/req" in capsys.readouterr().out
