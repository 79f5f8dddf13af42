"""The JSONata reference suite, run in place, must pass at the recorded rate
and fail exactly on the cases listed in engine/jsonata/CONFORMANCE.md."""

from __future__ import annotations

import re
from pathlib import Path

from engine.jsonata.suite_runner import run_suite, suite_dir

THRESHOLD = 0.995
REPORT = Path(__file__).resolve().parents[2] / "engine" / "jsonata" / "CONFORMANCE.md"


def test_reference_suite() -> None:
    assert (suite_dir() / "groups").is_dir(), f"JSONata suite not found at {suite_dir()}"
    outcomes = run_suite()
    passed = sum(o.passed for o in outcomes)
    rate = passed / len(outcomes)
    print(f"\nJSONata reference suite: {passed}/{len(outcomes)} = {100 * rate:.2f} %")
    failing = {o.case_id for o in outcomes if not o.passed}
    listed = set(re.findall(r"^- `([^`]+)`:", REPORT.read_text(encoding="utf-8"), re.M))
    assert len(outcomes) == 1686
    assert failing == listed, (
        "CONFORMANCE.md is stale; run scripts/jsonata_conformance.py. "
        f"newly failing: {sorted(failing - listed)}, now passing: {sorted(listed - failing)}")
    assert rate >= THRESHOLD
