"""Shared plumbing of the benchmarks: the figures each one reports, where results go, probes.

Every benchmark writes one JSON file holding its own details plus a ``figures`` list — each a
measured value next to its goal and which way is better — so that `scripts/bench` can print,
summarise and chart all of them without knowing each benchmark's layout. A benchmark script
starts with::

    ROOT = Path(__file__).resolve().parent.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

because bench/jsonata.py, first on the path of any script run from bench/, would shadow the
``jsonata`` package; this module is then imported as ``bench.common``.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

Better = Literal["lower", "higher"]


def figure(name: str, value: float | None, unit: str, goal: float | None = None,
           better: Better = "lower", note: str = "") -> dict[str, Any]:
    """One reported figure. ``met`` is None when there is no goal (the figure is context) or
    nothing was measured; otherwise whether *value* is on the right side of *goal*."""
    met: bool | None = None
    if goal is not None and value is not None:
        met = value <= goal if better == "lower" else value >= goal
    return {"name": name, "value": value, "unit": unit, "goal": goal, "better": better,
            "met": met, "note": note}


def environment() -> dict[str, Any]:
    """What a reader needs to compare two runs: when, which Python, how many CPUs, how busy."""
    return {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            # other work on the machine shares its CPUs with what is measured
            "load_average_1m": round(os.getloadavg()[0], 2)}


def output_path(value: str | None, name: str) -> Path:
    """The ``--output`` a benchmark was given, else bench/results/<name>.json."""
    return Path(value) if value else RESULTS / f"{name}.json"


def write_result(path: Path, name: str, details: dict[str, Any],
                 figures: list[dict[str, Any]]) -> Path:
    """Write the result file of one benchmark: its name, the environment, details, figures."""
    report = {"benchmark": name, **environment(), **details, "figures": figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {_shown(path)}")
    return path


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def interleaved_medians(timers: dict[str, Callable[[], float]], rounds: int = 3
                        ) -> dict[str, float]:
    """Median seconds of each timer over *rounds*, taken in turn so that all of them see the
    same machine load — a ratio of two figures measured minutes apart on a shared machine says
    more about the neighbours than about the code."""
    seen: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            seen[name].append(timer())
    return {name: statistics.median(times) for name, times in seen.items()}


# -- loopback servers and probes of other processes (Linux /proc) ------------------------------
def send_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200) -> None:
    """Answer a request of a loopback stub with *body* as JSON (keep-alive safe: sized)."""
    raw = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of the process now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"process {pid} reports no VmRSS")
