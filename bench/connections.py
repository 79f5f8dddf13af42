"""Named connections: what a call through one costs next to the same call with its URL and
credentials written in the step, and how many token requests an OAuth2 connection makes.

One loopback server answers a token endpoint and the API (201, small JSON). Three one-step flows
send the same POST in this process on the runner's loop: ad hoc (``url:`` and ``auth: bearer``),
through a connection with a bearer token, and through an OAuth2 connection. The three are timed
in alternating rounds, so all see the same machine load. Writes bench/results/connections.json.

    python bench/connections.py [--calls 300] [--output PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/jsonata.py would shadow the jsonata package the engine's parser comes from
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import figure, interleaved_medians, output_path, write_result  # noqa: E402
from engine.loader import (  # noqa: E402
    CompiledFlow,
    FlowSet,
    Loader,
)
from engine.local import resources_factory, run_to_completion  # noqa: E402
from engine.problems import Problems  # noqa: E402
from engine.refs import Secrets  # noqa: E402
from engine.runner import Runner  # noqa: E402

TOKEN_REQUESTS = [0]
#: rounds of interleaved timing (each times every flow once)
ROUNDS = 3


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API: the pool is what is measured
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/oauth/token":
            TOKEN_REQUESTS[0] += 1
            body = b'{"access_token": "bench-token-0123456789", "expires_in": 3600}'
        else:
            body = b'{"ok": true}'
        self.send_response(200 if self.path == "/oauth/token" else 201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def project(folder: Path, url: str) -> dict[str, str]:
    """Connection files and the three flows; returns flow id → flow file."""
    (folder / "connections").mkdir()
    (folder / "flows").mkdir()
    (folder / "connections" / "bearer.yaml").write_text(
        f"connection: bearer\nhttp:\n  base_url: {url}/api\n  auth: {{bearer: "
        "'${secret:TOKEN}'}\n")
    (folder / "connections" / "oauth.yaml").write_text(
        f"connection: oauth\nhttp:\n  base_url: {url}/api\n  auth:\n    oauth2: {{token_url: "
        f"'{url}/oauth/token', client_id: bench, client_secret: '${{secret:CLIENT}}'}}\n")
    https = {"ad_hoc": f"{{url: '{url}/api/orders', auth: {{bearer: '${{secret:TOKEN}}'}}}}",
             "connection_bearer": "{connection: bearer, path: /orders}",
             "connection_oauth2": "{connection: oauth, path: /orders}"}
    files = {}
    for flow_id, http in https.items():
        path = folder / "flows" / f"{flow_id}.yaml"
        path.write_text(f"flow: {flow_id}\nsteps:\n  - id: send\n    call:\n      http: {http}\n")
        files[flow_id] = str(path)
    return files


def timer(flow: CompiledFlow, flows: FlowSet, runner: Runner, calls: int) -> Any:
    def run() -> float:
        started = time.perf_counter()
        for i in range(calls):
            state, = run_to_completion(flows, flow, {"n": i}, runner=runner)
            assert state.status == "succeeded", state.error
        return time.perf_counter() - started
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--output")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        files = project(Path(tmp), url)
        secrets = Secrets(environ={"FLOWRUN_SECRET_TOKEN": "bench-static-token",
                                   "FLOWRUN_SECRET_CLIENT": "bench-client-secret"})
        loader = Loader(secrets=secrets)
        loaded = {}
        for flow_id, file in files.items():
            flow, problems = loader.load_file(file)
            assert flow is not None, [str(p) for p in problems]
            loaded[flow_id] = flow
        flows = FlowSet(loaded, Problems())
        runner = Runner(resources_factory(secrets), secrets.redactor)
        for flow in loaded.values():  # warm up: pools open, the token fetched
            timer(flow, flows, runner, 5)()
        medians = interleaved_medians({k: timer(f, flows, runner, args.calls)
                                       for k, f in loaded.items()}, rounds=ROUNDS)
    server.shutdown()
    per_call = {k: round(v / args.calls * 1000, 3) for k, v in medians.items()}
    ratio = round(per_call["connection_oauth2"] / per_call["ad_hoc"], 3)
    for name, ms in per_call.items():
        print(f"{name:>18}: {ms:.3f} ms per call")
    print(f"OAuth2 connection / ad hoc: {ratio}; token requests: {TOKEN_REQUESTS[0]}")
    figures = [
        figure("oauth2_connection_vs_ad_hoc", ratio, "ratio", goal=1.2,
               note="per-call time through an OAuth2 connection (cached token) over the same "
                    "call with url: and auth: in the step"),
        figure("token_requests", TOKEN_REQUESTS[0], "requests", goal=1,
               note=f"token requests for the {ROUNDS * args.calls + 5} calls through the "
                    "OAuth2 connection (warm-up included)"),
        *(figure(f"{name}_ms_per_call", ms, "ms") for name, ms in per_call.items()),
    ]
    write_result(output_path(args.output, "connections"), "connections",
                 {"calls": args.calls, "per_call_ms": per_call}, figures)


if __name__ == "__main__":
    main()
