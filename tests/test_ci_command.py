"""`.ci/run` runs exactly the README's test command (the second of its two opening commands)."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_ci_runs_the_readme_test_command_and_installs_what_tests_need() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    assert commands[:2] == ["pip install -e . && flowrun demo",
                            "pip install -e '.[dev]' && python -m pytest -n 2 --dist loadfile"]
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line for line in script.splitlines() if line and not line.startswith("#")]
    # the test command, then only the dependency audit, which never fails CI
    assert lines[-2:] == [commands[1], "bash scripts/audit_dependencies.sh"]
    audit = (ROOT / "scripts" / "audit_dependencies.sh").read_text(encoding="utf-8")
    assert audit.rstrip().endswith("exit 0") and "pip_audit" in audit
    # the Debian packages the tests start or drive, installed when missing
    assert "command -v redis-server" in script and "need_apt+=(redis-server)" in script
    assert '[ -x "${FLOWRUN_CHROMIUM:-/usr/bin/chromium}" ]' in script \
        and "need_apt+=(chromium)" in script
    # PostgreSQL: a server answering on 5432, or initdb for the tests' private cluster
    assert "/dev/tcp/127.0.0.1/5432" in script and "need_apt+=(postgresql)" in script
