"""Where the JSONata reference suite comes from in the tests: the project's copy
(``../shared/jsonata-test-suite`` or ``FLOWRUN_JSONATA_SUITE``) or, in a plain clone that has
none, the copy that the ``jsonata-python`` source distribution carries, fetched from the package
index once and kept in a cache — an older revision of the same suite, so fewer cases."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from engine.jsonata.suite_runner import suite_dir

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




def reference_suite() -> tuple[Path, bool]:
    """The suite's folder, and whether it is the project's own copy."""
    if (suite_dir() / "groups").is_dir():
        return suite_dir(), True
    return package_suite(), False
