"""The JSONata reference suite, run in place, must pass at the recorded rate
and fail exactly on the cases listed in engine/jsonata/CONFORMANCE.md (the project's copy of the
suite) or on the recorded cases of the package index's copy (a plain clone; tests/jsonata/suite)."""

from __future__ import annotations

import re
from pathlib import Path

from engine.jsonata.suite_runner import run_suite
from tests.jsonata.suite import PACKAGE_CASES, PACKAGE_FAILING, reference_suite

THRESHOLD = 0.995
REPORT = Path(__file__).resolve().parents[2] / "engine" / "jsonata" / "CONFORMANCE.md"


def test_reference_suite() -> None:
    root, project_copy = reference_suite()
    outcomes = run_suite(root)
    passed = sum(o.passed for o in outcomes)
    rate = passed / len(outcomes)
    print(f"\nJSONata reference suite ({root}): {passed}/{len(outcomes)} = {100 * rate:.2f} %")
    failing = {o.case_id for o in outcomes if not o.passed}
    if project_copy:
        listed = set(re.findall(r"^- `([^`]+)`:", REPORT.read_text(encoding="utf-8"), re.M))
        assert len(outcomes) == 1686
    else:
        listed = PACKAGE_FAILING
        assert len(outcomes) == PACKAGE_CASES
    assert failing == listed, (
        "CONFORMANCE.md is stale; run scripts/jsonata_conformance.py. "
        f"newly failing: {sorted(failing - listed)}, now passing: {sorted(listed - failing)}")
    assert rate >= THRESHOLD
