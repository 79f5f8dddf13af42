"""Starting the servers under test: Node-RED 4 (installed from npm on first use, outside the
checkout), flowrunner through its command line only (``python -m engine.cli serve`` / ``worker``,
configured by FLOWRUN_* variables, so the bench outlives changes to flowrunner's insides), and
private redis-servers without persistence. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import free_port
from bench.sidebyside.load import SECRET, wrk_missing
from bench.sidebyside.procs import Processes, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
FLOWS = ROOT / "bench" / "flows"
NODE_RED_FLOWS = FLOWS / "nodered"
NODE_RED_FILES = ("intake.json", "mapping.json", "reference.json")
FLOWRUNNER_FILES = ("webhook-intake.yaml", "webhook-reference.yaml")
STUB_PLACEHOLDER = "${BENCH_STUB_URL}"


@dataclass
class Server:
    """One side under test: where it listens and the processes whose CPU it costs."""

    name: str
    port: int
    pids: list[int] = field(default_factory=list)
    redis_url: str | None = None
    home: Path | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def prerequisites_missing() -> str | None:
    """Why bench/nodered.py cannot run here (wrk, Node.js or redis-server missing), or None."""
    for why in (wrk_missing(), node_missing(), redis_missing()):
        if why:
            return why
    return None


# -- Node-RED ----------------------------------------------------------------------------------
def node_red_folder() -> Path:
    """Where Node-RED is installed: BENCH_NODE_RED_DIR, else ~/.cache/flowrunner-bench/node-red."""
    configured = os.environ.get("BENCH_NODE_RED_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "flowrunner-bench" / \
        "node-red"


def node_missing() -> str | None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed (Node-RED needs Node.js 18 or later)" \
        if missing else None


def node_red_version(folder: Path) -> str | None:
    manifest = folder / "node_modules" / "node-red" / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def ensure_node_red(folder: Path) -> str:
    """Node-RED 4 in *folder* (``npm install --prefix``, once); its version."""
    version = node_red_version(folder)
    if version is None or not version.startswith("4."):
        print(f"installing Node-RED 4 from npm into {folder} (once; BENCH_NODE_RED_DIR moves it)",
              flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", str(folder), "node-red@4",
                               "--no-audit", "--no-fund", "--omit=dev"],
                              capture_output=True, text=True, timeout=900)
        version = node_red_version(folder)
        if done.returncode != 0 or version is None:
            raise RuntimeError(f"npm install node-red@4 failed:\n{done.stderr[-2000:]}")
    return version


def node_red_flows(stub_url: str) -> list[dict[str, object]]:
    """The three Node-RED flows as one flow file, the stub's address filled in."""
    nodes: list[dict[str, object]] = []
    for name in NODE_RED_FILES:
        text = (NODE_RED_FLOWS / name).read_text(encoding="utf-8")
        nodes += json.loads(text.replace(STUB_PLACEHOLDER, stub_url))
    return nodes


SETTINGS = """\
// written by bench/nodered.py: the runtime and its HTTP nodes only, no editor, no admin API
module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {port},
    httpAdminRoot: false,
    httpNodeRoot: "/",
    userDir: {user_dir},
    flowFile: "flows.json",
    credentialSecret: false,
    logging: {{ console: {{ level: "warn", metrics: false, audit: false }} }},
    externalModules: {{ autoInstall: false, palette: {{ allowInstall: false }} }},
    diagnostics: {{ enabled: false }},
    runtimeState: {{ enabled: false }},
    telemetry: {{ enabled: false }},
    editorTheme: {{ tours: false }}
}};
"""


def start_node_red(procs: Processes, folder: Path, user_dir: Path, stub_url: str,
                   probe: tuple[bytes, dict[str, str]]) -> Server:
    """Node-RED with the bench's settings and flows; ready when (a) answers a probe order."""
    user_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (user_dir / "settings.js").write_text(
        SETTINGS.format(port=port, user_dir=json.dumps(str(user_dir))), encoding="utf-8")
    (user_dir / "flows.json").write_text(json.dumps(node_red_flows(stub_url), indent=1),
                                         encoding="utf-8")
    red = folder / "node_modules" / "node-red" / "red.js"
    env = {**os.environ, "NODE_ENV": "production", "BENCH_STUB_URL": stub_url}
    process = procs.start("node-red", ["node", str(red), "--settings",
                                       str(user_dir / "settings.js"), "--userDir", str(user_dir)],
                          env=env, cwd=user_dir)
    body, headers = probe
    wait_until(lambda: post(port, "/hooks/shopify/intake", body, headers)[0] == 202,
               "Node-RED", lambda: process.poll() is None, log=lambda: procs.log_tail("node-red"))
    return Server("Node-RED", port, [process.pid])


# -- redis -------------------------------------------------------------------------------------
def redis_missing() -> str | None:
    return "redis-server is not installed" if shutil.which("redis-server") is None else None


def start_redis(procs: Processes, name: str, folder: Path) -> tuple[int, str]:
    """A private redis-server on a free port, in memory only; its pid and URL."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = procs.start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(folder),
                                 "--protected-mode", "no"])
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(lambda: bool(client.ping()), name, lambda: process.poll() is None,
               limit=15, log=lambda: procs.log_tail(name))
    client.close()
    return process.pid, url


# -- flowrunner --------------------------------------------------------------------------------
def flowrunner_env(home: Path, stub_url: str, redis_url: str | None) -> dict[str, str]:
    """The environment of a flowrunner process: its own state folder, the bench flows (copied
    into it), the Shopify secret, the stub's address; Redis when *redis_url* is given."""
    flows = home / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    for name in FLOWRUNNER_FILES:
        shutil.copyfile(FLOWS / name, flows / name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOWRUN_") or k == "FLOWRUN_JSONATA"}
    env.update({"FLOWRUN_HOME": str(home / "state"), "FLOWRUN_FLOWS": str(flows),
                "FLOWRUN_SCHEMAS": str(ROOT / "schemas"), "FLOWRUN_SECRET_BENCH_SHOP": SECRET,
                "FLOWRUN_LOG_LEVEL": "WARNING", "BENCH_STUB_URL": stub_url,
                "PYTHONPATH": str(ROOT)})
    if redis_url:
        env["FLOWRUN_REDIS_URL"] = redis_url
    return env


def serve_options() -> str:
    """`flowrun serve --help` of this checkout (options differ between versions)."""
    done = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return done.stdout


def start_serve(procs: Processes, name: str, home: Path, stub_url: str,
                redis: tuple[int, str] | None = None, workers: int | None = None) -> Server:
    """`python -m engine.cli serve` on a free port; ready when /readyz answers 200."""
    port = free_port()
    env = flowrunner_env(home, stub_url, redis[1] if redis else None)
    args = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--no-access-log"]
    if workers:
        args += ["--workers", str(workers)]
    process = procs.start(name, args, env=env, cwd=ROOT)
    wait_until(lambda: get(port, "/readyz")[0] == 200, f"flowrun serve ({name})",
               lambda: process.poll() is None, log=lambda: procs.log_tail(name))
    pids = [process.pid] + ([redis[0]] if redis else [])
    return Server(name, port, pids, redis_url=redis[1] if redis else None, home=home)


def start_worker(procs: Processes, name: str, server: Server, stub_url: str,
                 concurrency: int) -> int:
    """`python -m engine.cli worker` (Celery, prefork) for *server*'s Redis; its pid. It is
    ready when it runs something: the caller warms it up through the server."""
    assert server.home is not None and server.redis_url is not None
    env = flowrunner_env(server.home, stub_url, server.redis_url)
    process = procs.start(name, [sys.executable, "-m", "engine.cli", "worker", "--pool",
                                 "prefork", "--concurrency", str(concurrency), "--loglevel",
                                 "WARNING"], env=env, cwd=ROOT)
    server.pids.append(process.pid)
    return process.pid
