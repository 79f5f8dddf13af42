"""The console's shared parts, built once per server and handed to the pages and the API: the
app, the credentials (`engine.console.auth`), the background jobs, the templates, and how a page
is rendered with the security headers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.console import views
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
        self.templates.globals.update(ts=views.ts, span=views.span, query=views.query_string)

    def render(self, request: Request, name: str, who: Principal | None, *, status: int = 200,
               **context: Any) -> Response:
        html = self.templates.get_template(name).render(
            request=request, who=who, csrf=who.csrf if who else "", path=request.url.path,
            status=status, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
