"""The load both sides get: the same order body, signed as Shopify signs it, posted by wrk.

wrk (one thread, C, event-driven) is the load generator for flowrunner and Node-RED alike, so
neither side is measured through a slower client than the other; shopify.lua gives every request
a webhook id of its own.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "shopify.lua"
#: the Shopify app secret both sides are configured with (flowrunner checks it, Node-RED not)
SECRET = "bench-shop-secret-0123456789"
BODY_BYTES = 3400


def order_body(at_least: int = BODY_BYTES) -> bytes:
    """The shipped Shopify sample order with line items added until it is *at_least* bytes:
    the ~3.4 KB body of every request, the same bytes for both sides."""
    order = json.loads((ROOT / "flows" / "samples" / "shopify-order.json").read_text())
    template = order["line_items"][0]
    n = 0
    while len(raw := json.dumps(order).encode()) < at_least:
        item = copy.deepcopy(template)
        item["id"] += n + 10
        item["sku"] = f"SKU-{n:04d}"
        order["line_items"].append(item)
        n += 1
    return raw


def shopify_signature(body: bytes, secret: str = SECRET) -> str:
    """X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of the raw body, keyed with the secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def wrk_missing() -> str | None:
    if shutil.which("wrk") is None:
        return "wrk is not installed; on Debian or Ubuntu: apt-get install -y wrk"
    return None


def wrk_command(url: str, connections: int, seconds: int, body_file: Path, signature: str,
                id_prefix: str, limit: int = 0, timeout: int = 30) -> list[str]:
    """The wrk command line: one thread, *connections* keep-alive connections, for *seconds*
    (with *limit*, until *limit* orders are answered — *seconds* is then only a bound)."""
    return ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s",
            "--timeout", f"{timeout}s", "--latency", "-s", str(SCRIPT), url, "--",
            str(body_file), signature, id_prefix, str(limit)]


def parse_result(output: str) -> dict[str, Any]:
    """The figures shopify.lua's ``done`` printed, with latencies in ms and 202s counted."""
    for line in output.splitlines():
        if line.startswith("WRK_RESULT "):
            raw = json.loads(line.removeprefix("WRK_RESULT "))
            break
    else:
        raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")
    seconds = raw["duration_us"] / 1e6
    accepted = raw["statuses"].get("202", 0)
    return {"seconds": round(seconds, 3), "requests": raw["requests"], "accepted_202": accepted,
            "statuses": raw["statuses"],
            "errors": {k: v for k, v in raw["errors"].items() if v},
            "req_per_s": round(accepted / seconds, 1) if seconds else 0.0,
            **{f"{cut}_ms": round(raw["latency_us"][cut] / 1000, 2)
               for cut in ("p50", "p90", "p99", "max")}}


def run_wrk(url: str, connections: int, seconds: int, body_file: Path, signature: str,
            limit: int = 0) -> dict[str, Any]:
    """Run wrk once against *url*; fresh webhook ids (a random prefix) every time. With *limit*,
    wrk is stopped (SIGINT, its own way to end early) as soon as the script saw the last answer;
    *seconds* bounds the run either way."""
    command = wrk_command(url, connections, seconds, body_file, signature,
                          f"{uuid.uuid4().hex[:12]}-", limit)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    timer = threading.Timer(seconds + 60, process.kill)  # a wrk that hangs is ended
    timer.start()
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("WRK_LIMIT_REACHED"):
                process.send_signal(signal.SIGINT)
        stderr = process.stderr.read() if process.stderr else ""
        process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr[-2000:]}")
    return parse_result("".join(lines))
