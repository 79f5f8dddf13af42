"""The operations console: HTML pages under ``/console`` and a JSON API under ``/api``.

`console_routes` is called once by `engine.server.create_app`; it resolves the credentials,
loads the templates and returns the two mounts. With no credentials configured the console is
closed — every path says how to open it — rather than open to anyone who can reach the port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.console import api, pages
from engine.console.base import HERE, SECURITY_HEADERS, Console

if TYPE_CHECKING:
    from engine.app import App
    from engine.metrics import Metrics

CLOSED = ("The console is closed: no credentials are configured. Set FLOWRUN_CONSOLE_USERS (a "
          "users file: flowrun users add NAME --role R), FLOWRUN_CONSOLE_TOKEN, or "
          "FLOWRUN_CONSOLE_USER and FLOWRUN_CONSOLE_PASSWORD, and restart flowrun serve.")


def console_routes(app: App, metrics: Metrics | None = None) -> list[BaseRoute]:
    console = Console(app, metrics)
    if not console.auth.enabled:
        async def closed_page(request: Request) -> Response:
            return HTMLResponse(f"<!doctype html><title>Console closed</title><p>{CLOSED}</p>",
                                status_code=404, headers=SECURITY_HEADERS)

        async def closed_api(request: Request) -> Response:
            return JSONResponse({"error": CLOSED}, status_code=404)

        return [Mount("/console", routes=[Route("/{path:path}", closed_page)]),
                Mount("/api", routes=[Route("/{path:path}", closed_api, methods=["GET", "POST"])])]
    static = StaticFiles(directory=HERE / "static")
    return [Mount("/console", routes=[Mount("/static", static), *pages.routes(console)]),
            Mount("/api", routes=api.routes(console))]
