"""`flowrun serve`: refuses to start on a bad trigger; serves, runs and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from click.testing import CliRunner

from connectors.signatures.shopify import SCHEME as SHOPIFY
from engine.cli import main
from tests.conftest import flow_text
from tests.engine.server_support import SHOP_FLOW

ROOT = Path(__file__).resolve().parents[2]


def write_flow(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "shop-orders.yaml").write_text(flow_text(text), encoding="utf-8")
    return folder


def test_bad_trigger_stops_the_start_with_file_line_and_key(tmp_path: Path) -> None:
    folder = write_flow(tmp_path, SHOP_FLOW.replace("scheme: shopify", "scheme: shopifi"))
    env = {"FLOWRUN_HOME": str(tmp_path / "home"), "FLOWRUN_SECRET_SHOP": "s3cret-value"}
    result = CliRunner().invoke(main, ["serve", "--flows", str(folder), "--port", "0"], env=env)
    assert result.exit_code == 1
    assert ("shop-orders.yaml:5:25 trigger.webhook.signature.scheme: unknown signature scheme "
            "'shopifi'; did you mean 'shopify'?") in result.output
    # the scheme is checked when the flow is loaded, as `flowrun validate` does
    assert "the flows have errors" in result.output
    assert "Traceback" not in result.output


def test_unset_secret_stops_the_start(tmp_path: Path) -> None:
    folder = write_flow(tmp_path, SHOP_FLOW)
    result = CliRunner().invoke(main, ["serve", "--flows", str(folder)],
                                env={"FLOWRUN_HOME": str(tmp_path / "home"),
                                     "FLOWRUN_SECRET_SHOP": None})
    assert result.exit_code == 1
    assert "${secret:SHOP} is not set; set FLOWRUN_SECRET_SHOP" in result.output


def test_consume_in_several_server_processes_is_refused(tmp_path: Path) -> None:
    folder = write_flow(tmp_path, SHOP_FLOW)
    env = {"FLOWRUN_HOME": str(tmp_path / "home"), "FLOWRUN_SECRET_SHOP": "s3cret-value"}
    by_option = CliRunner().invoke(main, ["serve", "--flows", str(folder), "--consume",
                                          "--workers", "2"], env=env)
    by_setting = CliRunner().invoke(main, ["serve", "--flows", str(folder), "--workers", "2"],
                                    env={**env, "FLOWRUN_SERVE_CONSUME": "true"})
    for result in (by_option, by_setting):
        assert result.exit_code == 1
        assert "--consume runs the consumers in one server process, not in 2" in result.output
        assert "`flowrun consume`" in result.output
    # --no-consume overrides the setting: the usual Redis requirement of --workers speaks
    overridden = CliRunner().invoke(main, ["serve", "--flows", str(folder), "--no-consume",
                                           "--workers", "2"],
                                    env={**env, "FLOWRUN_SERVE_CONSUME": "true"})
    assert overridden.exit_code == 1 and "needs FLOWRUN_REDIS_URL" in overridden.output


def test_serve_takes_a_webhook_in_runs_it_and_stops_on_sigterm(tmp_path: Path) -> None:
    folder = write_flow(tmp_path, SHOP_FLOW)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FLOWRUN_HOME": str(tmp_path / "home"),
           "FLOWRUN_SECRET_SHOP": "s3cret-value"}
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port),
                               "--flows", str(folder)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    http = requests.Session()
    http.trust_env = False
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if http.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        body = b'{"id": 7}'
        headers = SHOPIFY.sign(SHOPIFY.config(), body, "s3cret-value", 0)
        headers.update({"Content-Type": "application/json", "X-Shopify-Webhook-Id": "w-1"})
        response = http.post(url + "/hooks/shop", data=body, headers=headers, timeout=30)
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        status = ""
        for _ in range(600):  # the embedded executor runs it in the server process
            status = subprocess.run(
                [sys.executable, "-m", "engine.cli", "runs", "show", run_id], cwd=ROOT,
                env=env, capture_output=True, text=True).stdout
            if "succeeded" in status:
                break
            time.sleep(0.1)
        assert "succeeded" in status
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
        http.close()
    # uvicorn shuts down gracefully, then re-raises the signal as the process's exit status
    assert server.returncode in (0, -signal.SIGTERM)
    assert "1 webhook route(s)" in output
    assert "/hooks/shop  → shop-orders (shopify, async)" in output
    assert "executor stopped; unfinished runs resume on the next start" in output
    assert "s3cret-value" not in output


def test_a_bad_console_users_file_stops_the_start_named(tmp_path: Path) -> None:
    folder = write_flow(tmp_path, SHOP_FLOW)
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  alice: {role: boss, password: 'scrypt$x'}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--flows", str(folder), "--port", "0"],
                                env={"FLOWRUN_HOME": str(tmp_path / "home"),
                                     "FLOWRUN_SECRET_SHOP": "s3cret-value",
                                     "FLOWRUN_CONSOLE_USERS": str(users)})
    assert result.exit_code == 1
    assert f"{users}: users.alice.role: Input should be 'viewer', 'operator' or 'admin'" \
        in result.output
    assert "Traceback" not in result.output
