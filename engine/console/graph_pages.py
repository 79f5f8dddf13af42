"""The console's pictures: a flow's diagram, and one run's path drawn over it.

``/console/flows/{id}`` draws today's version of a flow (inline SVG from `engine.graph_svg`,
the drawing `flowrun graph` writes) with its latest runs; ``/console/flows/{id}/graph.svg``
and ``graph.mmd`` are the same drawing as a file. ``/console/runs/{id}/path`` draws the version
a run used, with the steps it passed, the step that failed, the branch it took and the end it
reached. Every text went through the App's redactor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine import graph_mermaid, graph_svg
from engine.app import App
from engine.compiled import CompiledFlow
from engine.console import views
from engine.console.auth import Principal
from engine.graph import Graph, build
from engine.graph_path import RunPath, path_of_run
from engine.problems import did_you_mean
from engine.records import RunState
from engine.store.base import RunFilter

if TYPE_CHECKING:
    from engine.console.base import Console

Endpoint = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Callable[[Request, Principal], Awaitable[Response]]], Endpoint]
LATEST = 10  # runs listed under a flow's diagram
STATES = {"passed": "passed", "failed": "failed", "waiting": "waiting for a retry",
          "reached": "reached"}


def flow_link(flow_id: str) -> str:
    return f"/console/flows/{quote(flow_id, safe='')}"


def graph_of(app: App, flow: CompiledFlow) -> Graph:
    return build(flow, app.flows.flows).redacted(app.secrets.redactor.text)


def flow_view(app: App, flow: CompiledFlow) -> dict[str, Any]:
    drawn = graph_of(app, flow)
    latest = app.store.list_runs(RunFilter(flow=flow.id, limit=LATEST))
    return {"flow": flow.id, "version": flow.version, "trigger": flow.trigger_kind,
            "description": drawn.description, "steps": len(drawn.steps()),
            "svg": Markup(graph_svg.render(drawn, link=flow_link)),
            "runs": [views.run_summary(s) for s in latest]}


def path_view(app: App, state: RunState) -> dict[str, Any] | None:
    """The run's path over the version of its flow it ran on; None when that version is gone."""
    flow = app.versions.get(state.flow_id, state.flow_version)
    if flow is None:
        return None
    drawn = graph_of(app, flow)
    path = path_of_run(drawn, flow, state, app.store)
    current = app.flows.flows.get(state.flow_id)
    return {**views.run_summary(state), "done": state.done,
            "svg": Markup(graph_svg.render(drawn, path, link=flow_link)),
            "current": current is not None and current.version == flow.version,
            "steps": [{"id": r["id"], "kind": r.get("kind"), "status": r["status"]}
                      for r in state.steps],
            "branches": _branches(drawn, path),
            "waiting_at": next((drawn.node(n).title for n, s in path.nodes.items()
                                if s == "waiting"), None)}


def _branches(drawn: Graph, path: RunPath) -> list[dict[str, str]]:
    """The route rules the run took: the route step, the rule's condition, where it went."""
    out = []
    for i in sorted(path.edges):
        edge = drawn.edges[i]
        if edge.kind == "branch":
            out.append({"step": drawn.node(edge.source).title, "when": edge.hint or edge.label,
                        "to": drawn.node(edge.target).title})
    return out


def routes(console: Console, guarded: Guard,
           problem: Callable[..., Response]) -> list[BaseRoute]:
    app, render = console.app, console.render

    def missing(request: Request, who: Principal, flow_id: str) -> Response:
        hint = did_you_mean(flow_id, app.flows.flows)
        return problem(request, 404, "No such flow", f"There is no flow '{flow_id}' loaded"
                       + (hint or "; the Flows page lists those there are."), who)

    async def flow_page(request: Request, who: Principal) -> Response:
        flow = app.flows.flows.get(request.path_params["id"])
        if flow is None:
            return missing(request, who, request.path_params["id"])
        view = await run_in_threadpool(flow_view, app, flow)
        return render(request, "flow.html", who, flow=view)

    async def flow_file(request: Request, who: Principal) -> Response:
        flow = app.flows.flows.get(request.path_params["id"])
        if flow is None:
            return missing(request, who, request.path_params["id"])
        if request.path_params["format"] not in ("svg", "mmd"):
            return problem(request, 404, "Not found", "A flow's drawing is graph.svg (SVG) or "
                           "graph.mmd (Mermaid).", who)
        drawn = graph_of(app, flow)
        svg = request.path_params["format"] == "svg"
        text = graph_svg.render(drawn) if svg else graph_mermaid.render(drawn)
        kind = "image/svg+xml" if svg else "text/plain; charset=utf-8"
        name = f"{flow.id}.{'svg' if svg else 'mmd'}"
        return Response(text, media_type=kind, headers={
            "Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            # a drawing opened on its own runs nothing, whatever a label holds
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def path_page(request: Request, who: Principal) -> Response:
        run_id = request.path_params["id"]
        state = await run_in_threadpool(views.find_run, app, run_id)
        if state is None:
            return problem(request, 404, "No such run", f"There is no run '{run_id}'.", who)
        view = await run_in_threadpool(path_view, app, state)
        if view is None:
            return problem(request, 404, "Flow version gone", f"Run '{run_id}' ran on version "
                           f"{state.flow_version[:10]} of flow '{state.flow_id}', which this "
                           "server cannot find any more.", who)
        return render(request, "run_path.html", who, run=view)

    return [Route("/flows/{id}", guarded(flow_page)),
            Route("/flows/{id}/graph.{format}", guarded(flow_file)),
            Route("/runs/{id}/path", guarded(path_page))]
