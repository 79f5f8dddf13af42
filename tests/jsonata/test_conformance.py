"""The JSONata reference suite, run in place, must pass at the recorded rate
and fail exactly on the cases listed in engine/jsonata/CONFORMANCE.md.

The suite is the project's copy (``../shared/jsonata-test-suite`` or ``FLOWRUN_JSONATA_SUITE``).
A plain clone has no such copy: it then takes the copy of the suite that the ``jsonata-python``
source distribution carries, from the package index (downloaded once into a cache), and holds
it to that copy's own baseline — an older revision of the same suite, so fewer cases."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

from engine.jsonata.suite_runner import run_suite, suite_dir

THRESHOLD = 0.995
REPORT = Path(__file__).resolve().parents[2] / "engine" / "jsonata" / "CONFORMANCE.md"

#: the package index's copy: jsonata-python's sdist, its cases and the ones flowrunner fails
PACKAGE, VERSION = "jsonata-python", "0.7.0"
PACKAGE_CASES = 1655
PACKAGE_FAILING = {"function-string/case019"}  # the deliberate 1/0 case of CONFORMANCE.md
CACHE = Path.home() / ".cache" / "flowrunner" / f"jsonata-suite-{VERSION}"


def package_suite() -> Path:
    """The suite from jsonata-python's sdist, fetched with pip once and kept in CACHE."""
    root = CACHE / f"jsonata_python-{VERSION}" / "jsonata" / "test" / "test-suite"
    if (root / "groups").is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"{PACKAGE}=={VERSION}", "-d", str(CACHE)], capture_output=True, text=True, timeout=300)
    archives = sorted(CACHE.glob("jsonata_python-*.tar.gz"))
    assert fetched.returncode == 0 and archives, (
        "no JSONata reference suite: put it at ../shared/jsonata-test-suite or name it with "
        f"FLOWRUN_JSONATA_SUITE, or let pip download {PACKAGE}=={VERSION} "
        f"(pip said: {fetched.stderr.strip()[-500:]})")
    with tarfile.open(archives[-1]) as archive:
        members = [m for m in archive.getmembers() if "/test/test-suite/" in m.name]
        # the "data" filter refuses links and paths out of CACHE (where Python has it)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(CACHE, members=members, **safe)
    return root


def test_reference_suite() -> None:
    project_copy = (suite_dir() / "groups").is_dir()
    root = suite_dir() if project_copy else package_suite()
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
