"""The operations console: HTML pages under ``/console`` and a JSON API under ``/api``.

`console_routes` is called once by `engine.server.create_app`; it resolves the credentials,
loads the templates and returns the two mounts. With no credentials configured the console is
closed — every path says how to open it — rather than open to anyone who can reach the port.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.console import api, pages, views
from engine.console.auth import ConsoleAuth, Principal
from engine.console.jobs import Jobs

if TYPE_CHECKING:
    from engine.app import App
    from engine.metrics import Metrics

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # inline scripts and styles are refused: a payload that slipped past escaping cannot run
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CLOSED = ("The console is closed: no credentials are configured. Set FLOWRUN_CONSOLE_USERS (a "
          "users file: flowrun users add NAME --role R), FLOWRUN_CONSOLE_TOKEN, or "
          "FLOWRUN_CONSOLE_USER and FLOWRUN_CONSOLE_PASSWORD, and restart flowrun serve.")


class Console:
    def __init__(self, app: App, metrics: Metrics | None = None):
        self.app, self.metrics = app, metrics
        self.auth = ConsoleAuth(app.settings, app.store)
        if self.auth.token:
            app.secrets.redactor.add(self.auth.token)  # never in a log line either
        if self.auth.password:
            app.secrets.redactor.add(self.auth.password)
        if self.auth.oidc and self.auth.oidc.secret:
            app.secrets.redactor.add(self.auth.oidc.secret)
        self.jobs = Jobs(app)
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(default=True),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(ts=views.ts, span=views.span, query=pages.query_string)

    def render(self, request: Request, name: str, who: Principal | None, *, status: int = 200,
               **context: Any) -> Response:
        html = self.templates.get_template(name).render(
            request=request, who=who, csrf=who.csrf if who else "", path=request.url.path,
            status=status, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


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
