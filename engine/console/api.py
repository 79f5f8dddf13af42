"""The console's JSON API under ``/api``: what the pages show, for scripts and tools.

Every endpoint needs credentials (401 with no data otherwise); the ones that change state need
the operator role (403 for a viewer, saying so); every POST made with the browser's session
cookie needs its ``X-CSRF-Token`` (403). The audit trail names the caller as ``api:<user>``.
Responses pass through the pydantic models of `engine.console.models`, which also generate
``/api/openapi.json``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from engine import dlq_patch
from engine.console import activity as charts
from engine.console import models, views
from engine.console.auth import CSRF_HEADER, Principal, Throttled
from engine.console.jobs import NotResumable
from engine.console.users import Role
from engine.dlq import ReplayRefused
from engine.dlq_patch import Patch, PatchError
from engine.store.base import DeadLetterFilter, StoreError

if TYPE_CHECKING:
    from engine.console.base import Console

Handler = Callable[[Request, Principal], Awaitable[Response]]
NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY = 4 * 1024 * 1024  # as the pages' forms (an edited body); larger ones through the CLI


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=NO_STORE)


def _out(model: type[BaseModel], data: Any, status: int = 200) -> JSONResponse:
    if isinstance(data, list):
        body: Any = [model.model_validate(d).model_dump(mode="json", by_alias=True)
                     for d in data]
    else:
        body = model.model_validate(data).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def not_allowed(who: Principal, role: Role) -> JSONResponse:
    return _error(403, f"{who.user} is a {who.role}; this needs the {role} role (an admin can "
                       "change it with `flowrun users`)", user=who.user, role=who.role,
                  needed=role)


def routes(console: Console) -> list[BaseRoute]:
    app = console.app

    def guarded(handler: Handler, write: bool = False, role: Role = "viewer",
                ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                principal = console.auth.principal(request)
            except Throttled as exc:  # the credential was not even checked
                response = _error(429, str(exc))
                response.headers["Retry-After"] = str(exc.retry_after)
                return response
            if principal is None:
                return _error(401, "authentication required: send Authorization: Bearer "
                                   "<token> (or Basic), or log in at /console/login")
            if not principal.may(role):
                return not_allowed(principal, role)
            if write and not console.auth.csrf_ok(principal, request.headers.get(CSRF_HEADER,
                                                                                  "")):
                return _error(403, "CSRF token missing or wrong: send the X-CSRF-Token header "
                                   "of your console session")
            try:
                return await handler(request, principal)
            except views.BadQuery as exc:
                return _error(400, str(exc))
            except StoreError as exc:
                return _error(503, str(exc))
        return endpoint

    def operates(handler: Any) -> Callable[[Request], Awaitable[Response]]:
        """A state change made by an operator (or an admin): CSRF-checked, role-checked."""
        return guarded(handler, write=True, role="operator")

    async def body_of(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
        raw = bytearray()
        async for chunk in request.stream():  # read no further than the limit
            raw += chunk
            if len(raw) > MAX_BODY:
                return _error(413, f"the request body is larger than {MAX_BODY:,} bytes; send "
                                   "large bodies with `flowrun dlq replay --body FILE`")
        try:
            data = json.loads(bytes(raw) or b"{}")
            return model.model_validate(data)
        except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError alike
            detail = exc.errors(include_url=False) if isinstance(exc, ValidationError) else None
            return _error(422, f"invalid request: {exc}", detail=detail)

    async def flows(request: Request, who: Principal) -> Response:
        return _out(models.FlowHealth, await run_in_threadpool(views.flow_health, app))

    async def activity(request: Request, who: Principal) -> Response:
        params = dict(request.query_params)
        return _out(models.Activity, await run_in_threadpool(charts.activity, app, params))

    async def runs(request: Request, who: Principal) -> Response:
        query = views.run_filter(dict(request.query_params))
        found = await run_in_threadpool(app.store.list_runs, query)
        response = _out(models.RunSummary, [views.run_summary(s) for s in found])
        searched = views.searched(app, query)
        if searched:  # a list stays a list: how far a payload search went is a header
            response.headers["X-Flowrun-Searched"] = searched
        return response

    async def run(request: Request, who: Principal) -> Response:
        state = await run_in_threadpool(views.find_run, app, request.path_params["id"])
        if state is None:
            return _error(404, f"no run '{request.path_params['id']}'")
        detail = views.run_detail(app, state)
        detail["input"], detail["output"] = (detail["input"].as_dict(),
                                             detail["output"].as_dict())
        return _out(models.RunDetail, detail)

    async def late(request: Request, who: Principal) -> Response:
        from engine.sla import late_runs

        flow, limit = views.late_filter(request.query_params)
        found = await run_in_threadpool(lambda: late_runs(app.store, flow=flow, limit=limit))
        return _out(models.LateRun, found)

    async def entries(request: Request, who: Principal) -> Response:
        query = views.dead_letter_filter(dict(request.query_params))
        found = await run_in_threadpool(app.store.list_dead_letters, query)
        return _out(models.DeadLetterSummary, [views.entry_summary(e) for e in found])

    async def entry(request: Request, who: Principal) -> Response:
        found = await run_in_threadpool(app.store.get_dead_letter, request.path_params["id"])
        if found is None:
            return _error(404, f"no dead-letter entry '{request.path_params['id']}'")
        detail = views.entry_detail(app, found)
        detail["original"], detail["envelope"] = (detail["original"].as_dict(),
                                                  detail["envelope"].as_dict())
        return _out(models.DeadLetterDetail, detail)

    async def replay(request: Request, who: Principal) -> Response:
        asked = await body_of(request, models.ReplayRequest)
        if isinstance(asked, JSONResponse):
            return asked
        assert isinstance(asked, models.ReplayRequest)
        entry_id = request.path_params["id"]
        try:
            state = await run_in_threadpool(
                lambda: app.replay(entry_id, start_from=asked.start_from, version=asked.version,
                                   body=asked.body, edited="body" in asked.model_fields_set,
                                   dry_run=asked.dry_run, who=f"api:{who.user}"))
        except ReplayRefused as exc:
            status = 404 if str(exc).startswith("no dead-letter entry") else 422
            return _error(status, str(exc), detail=app.secrets.redactor.data(exc.detail),
                          violations=views.violations(exc.detail))
        return _out(models.ReplayResult, {"entry": entry_id, "run_id": state.run_id,
                                          "status": state.status}, 202)

    async def discard(request: Request, who: Principal) -> Response:
        asked = await body_of(request, models.DiscardRequest)
        if isinstance(asked, JSONResponse):
            return asked
        assert isinstance(asked, models.DiscardRequest)
        try:
            entry = await run_in_threadpool(
                lambda: app.discard(request.path_params["id"], who=f"api:{who.user}",
                                    reason=asked.reason))
        except ReplayRefused as exc:
            return _error(404, str(exc))
        return _out(models.DeadLetterSummary, views.entry_summary(entry))

    async def bulk(request: Request, who: Principal) -> Response:
        asked = await body_of(request, models.BulkReplayRequest)
        if isinstance(asked, JSONResponse):
            return asked
        assert isinstance(asked, models.BulkReplayRequest)
        if asked.action == "discard" and not who.may("admin"):  # many entries never replayed
            return not_allowed(who, "admin")
        try:
            patch = Patch(asked.patch) if asked.patch is not None else None
        except PatchError as exc:
            return _error(422, str(exc), detail={"position": exc.position})
        job = await run_in_threadpool(lambda: console.jobs.start(
            selected(asked), who=f"api:{who.user}", start_from=asked.start_from,
            version=asked.version, action=asked.action, patch=patch, reason=asked.reason))
        return _out(models.JobProgress, console.jobs.progress(job), 202)

    def selected(asked: models.BulkReplayRequest) -> DeadLetterFilter | list[str]:
        if asked.entries is not None:
            return asked.entries
        return views.dead_letter_filter({k: v for k, v in asked.model_dump().items()
                                         if isinstance(v, str)}, limit=1)

    async def preview(request: Request, who: Principal) -> Response:
        asked = await body_of(request, models.BulkPreviewRequest)
        if isinstance(asked, JSONResponse):
            return asked
        assert isinstance(asked, models.BulkPreviewRequest)
        try:
            patch = Patch(asked.patch) if asked.patch is not None else None
        except PatchError as exc:
            return _error(422, str(exc), detail={"position": exc.position})

        def look() -> dict[str, Any]:
            query = selected(asked)
            ids = query if isinstance(query, list) else console.jobs.matching(query)
            return {**dlq_patch.selection(app, ids), "previews": dlq_patch.preview(
                app, ids, patch, start_from=asked.start_from, version=asked.version,
                count=asked.count)}
        return _out(models.BulkPreview, await run_in_threadpool(look))

    async def job(request: Request, who: Principal) -> Response:
        found = await run_in_threadpool(console.jobs.get, request.path_params["id"])
        if found is None:
            return _error(404, f"no replay job '{request.path_params['id']}' (finished jobs "
                               "beyond the latest 100 are forgotten)")
        return _out(models.JobProgress, await run_in_threadpool(console.jobs.progress, found))

    async def resume(request: Request, who: Principal) -> Response:
        found = await run_in_threadpool(console.jobs.get, request.path_params["id"])
        if found is None:
            return _error(404, f"no replay job '{request.path_params['id']}'")
        if found.action == "discard" and not who.may("admin"):
            return not_allowed(who, "admin")
        try:
            job = await run_in_threadpool(lambda: console.jobs.resume(
                found.id, who=f"api:{who.user}"))
        except NotResumable as exc:
            return _error(409, str(exc))
        return _out(models.JobProgress, console.jobs.progress(job), 202)

    spec = models.openapi()

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    return [Route("/openapi.json", openapi),
            Route("/flows", guarded(flows)),
            Route("/activity", guarded(activity)),
            Route("/runs", guarded(runs)),
            Route("/runs/{id}", guarded(run)),
            Route("/late", guarded(late)),
            Route("/dead-letters", guarded(entries)),
            Route("/dead-letters/{id}", guarded(entry)),
            Route("/dead-letters/{id}/replay", operates(replay), methods=["POST"]),
            Route("/dead-letters/{id}/discard", operates(discard), methods=["POST"]),
            Route("/replay-jobs", operates(bulk), methods=["POST"]),
            Route("/replay-jobs/preview", operates(preview), methods=["POST"]),
            Route("/replay-jobs/{id}", guarded(job)),
            Route("/replay-jobs/{id}/resume", operates(resume), methods=["POST"])]
