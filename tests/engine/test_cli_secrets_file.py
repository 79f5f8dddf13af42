"""A secrets file others can read stops every command with one line naming the file and the
fix (``chmod 600 FILE``) and exit status 1 — never a traceback. Real ``python -m engine.cli``
subprocesses in the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.test_cli import SAMPLES, flowrun


@pytest.mark.parametrize("args", [
    ["validate", "flows"],
    ["runs"],
    ["runs", "show", "3f2a9c"],
    ["dlq", "list"],
    ["dlq", "show", "5d1c0e2a"],
    ["run", "flows/shopify-order-intake.yaml", "--input", str(SAMPLES / "shopify-order.json")],
    ["test", "flows"],
], ids=lambda args: " ".join(args[:2]))
def test_an_open_secrets_file_is_one_line_and_exit_1(tmp_path: Path, args: list[str]) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("ERP_EU_TOKEN=tok-5ec7e7-value\n", encoding="utf-8")
    secrets.chmod(0o644)
    result = flowrun(*args, env={"FLOWRUN_SECRETS_FILE": str(secrets),
                                 "FLOWRUN_HOME": str(tmp_path / "home"),
                                 "ERP_EU_URL": "http://127.0.0.1:9", "ERP_US_URL":
                                 "http://127.0.0.1:9"})
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        f"Error: the secrets file {secrets} is open to other users (mode 644), so flowrunner "
        f"does not read it; make it readable by its owner only: chmod 600 {secrets}"]
    assert "tok-5ec7e7-value" not in result.both
