"""The console's HTML pages under ``/console``: server-rendered Jinja2, a little vanilla JS.

Flows with their health, run search, a run's step timeline, the dead-letter queue with inspect,
edit-and-replay, discard, bulk replay with a progress page, and the audit trail. Templates
autoescape, so a payload holding ``<script>`` is shown as text; the Content-Security-Policy
allows only this console's own script file as a second line of defence.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine import dlq_patch
from engine.console import activity as charts
from engine.console import graph_pages, views
from engine.console.auth import CSRF_FIELD, Principal, Throttled
from engine.console.jobs import NotResumable
from engine.console.oidc import COOKIE as OIDC_COOKIE
from engine.console.oidc import COOKIE_TTL as OIDC_TTL
from engine.console.oidc import OidcError, Pending
from engine.console.users import Role
from engine.dlq import ReplayRefused
from engine.store.base import StoreError

if TYPE_CHECKING:
    from engine.console.base import Console

Page = Callable[[Request, Principal], Awaitable[Response]]
Form = dict[str, str]
MAX_FORM = 4 * 1024 * 1024  # an edited body in the form; larger ones go through the CLI
MAX_FIELDS = 1000  # a page of up to 200 ticked entries and the form's own fields


class FormTooLarge(Exception):
    pass


async def form_of(request: Request) -> Form:
    """The urlencoded form of a POST, read once (every console form is urlencoded, so the
    standard library's parser suffices; no multipart dependency)."""
    cached: Form | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            raise FormTooLarge
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True,
                      max_num_fields=MAX_FIELDS)
    form = dict(pairs)
    request.state.form = form
    # a field given many times (the dead-letter list's ticked entries) is read from here
    request.state.form_lists = {}
    for name, value in pairs:
        request.state.form_lists.setdefault(name, []).append(value)
    return form


def form_list(request: Request, name: str) -> list[str]:
    """Every value of a repeated field of the form `form_of` read."""
    return list(getattr(request.state, "form_lists", {}).get(name, []))


def routes(console: Console) -> list[BaseRoute]:
    app, auth, render = console.app, console.auth, console.render

    def problem(request: Request, status: int, title: str, message: str,
                who: Principal | None = None, **extra: Any) -> Response:
        return render(request, "problem.html", who, status=status, title=title,
                      message=message, **extra)

    def throttled(request: Request, exc: Throttled) -> Response:
        response = problem(request, 429, "Too many failed attempts", "Too many wrong "
                           f"credentials from here; try again in {exc.retry_after} seconds.")
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    def not_allowed(request: Request, who: Principal, role: Role) -> Response:
        return problem(request, 403, "Not allowed for your role", f"You are signed in as "
                       f"{who.user}, a {who.role}; this needs the {role} role. An admin can "
                       "change your role with `flowrun users`.", who)

    def guarded(handler: Page, write: bool = False, role: Role = "viewer",
                ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who = auth.principal(request)
            except Throttled as exc:
                return throttled(request, exc)
            if who is None:
                if "authorization" in request.headers or request.method != "GET":
                    return problem(request, 401, "Not signed in", "Wrong or missing "
                                   "credentials. Log in at /console/login.")
                target = quote(request.url.path + (f"?{request.url.query}"
                                                   if request.url.query else ""))
                return RedirectResponse(f"/console/login?next={target}", status_code=303)
            if not who.may(role):
                return not_allowed(request, who, role)
            if write:
                try:
                    form = await form_of(request)
                except (FormTooLarge, ValueError):
                    return problem(request, 413, "Form too large", "Send large bodies with "
                                   "`flowrun dlq replay --body FILE`.", who)
                if not auth.csrf_ok(who, form.get(CSRF_FIELD, "")):
                    return problem(request, 403, "Request refused", "The form's CSRF token is "
                                   "missing or stale. Reload the page and try again.", who)
            try:
                return await handler(request, who)
            except views.BadQuery as exc:
                return problem(request, 400, "Bad search", str(exc), who)
            except StoreError as exc:
                return problem(request, 503, "State store unavailable", str(exc), who)
        return endpoint

    def operates(handler: Any) -> Callable[[Request], Awaitable[Response]]:
        """A state change made by an operator (or an admin): CSRF-checked, role-checked."""
        return guarded(handler, write=True, role="operator")

    # -- login ---------------------------------------------------------------------------------
    def _next(value: str | None) -> str:
        # only a path of this console: never an open redirect to another site
        if value and value.startswith("/console") and not value.startswith("//"):
            return value
        return "/console/"

    async def login_form(request: Request, status: int = 200, error: str = "") -> Response:
        token = auth.login_token(request)
        response = render(request, "login.html", None, status=status, login_csrf=token,
                          next=_next(request.query_params.get("next")), error=error,
                          with_token=bool(auth.token),
                          with_password=bool(auth.user) or auth.users is not None,
                          with_oidc=auth.oidc is not None)
        auth.set_login_token(request, response, token)
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return await login_form(request)
        try:
            form = await form_of(request)
        except (FormTooLarge, ValueError):
            return problem(request, 413, "Form too large", "The login form is small.")
        if not auth.login_token_ok(request, form.get(CSRF_FIELD, "")):
            return problem(request, 403, "Request refused", "The login form expired; reload "
                           "the login page and try again.")
        try:
            who = auth.attempt(request, token=str(form.get("token", "")),
                               user=str(form.get("user", "")),
                               password=str(form.get("password", "")))
        except Throttled as exc:
            return throttled(request, exc)
        if who is None:
            return await login_form(request, 401, "Wrong token or user name and password.")
        response = RedirectResponse(_next(str(form.get("next", ""))), status_code=303)
        auth.login(response, who, secure=request.url.scheme == "https")
        return response

    # -- single sign-on (engine.console.oidc) --------------------------------------------------
    def callback_url(request: Request) -> str:
        assert auth.oidc is not None
        return auth.oidc.redirect_url or (f"{request.url.scheme}://{request.url.netloc}"
                                          "/console/oidc/callback")

    async def oidc_login(request: Request) -> Response:
        if auth.oidc is None:
            return problem(request, 404, "Not found", "Single sign-on is not configured.")
        provider = auth.oidc
        try:
            url, pending = await run_in_threadpool(
                provider.start, callback_url(request), _next(request.query_params.get("next")))
        except OidcError as exc:
            return problem(request, 502, "Single sign-on unavailable", str(exc))
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(OIDC_COOKIE, pending.cookie(), max_age=OIDC_TTL,
                            path="/console/oidc", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
        return response

    async def oidc_callback(request: Request) -> Response:
        if auth.oidc is None:
            return problem(request, 404, "Not found", "Single sign-on is not configured.")
        provider = auth.oidc
        pending = Pending.from_cookie(request.cookies.get(OIDC_COOKIE, ""))
        try:
            user, role = await run_in_threadpool(
                provider.finish, dict(request.query_params), pending, callback_url(request))
        except OidcError as exc:
            response = problem(request, 403, "Single sign-on failed", str(exc))
        else:
            assert pending is not None
            response = RedirectResponse(_next(pending.next), status_code=303)
            auth.login(response, Principal(user, role, "oidc"),
                       secure=request.url.scheme == "https")
        response.delete_cookie(OIDC_COOKIE, path="/console/oidc")
        return response

    async def logout(request: Request, who: Principal) -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        auth.logout(request, response)
        return response

    # -- flows and runs ------------------------------------------------------------------------
    async def flows(request: Request, who: Principal) -> Response:
        health = await run_in_threadpool(views.flow_health, app)
        chart = await run_in_threadpool(charts.activity, app, dict(request.query_params))
        return render(request, "flows.html", who, flows=health, activity=chart,
                      flow_ids=sorted(app.flows.flows))

    async def runs(request: Request, who: Principal) -> Response:
        params = dict(request.query_params)
        query = views.run_filter(params)
        found = await run_in_threadpool(app.store.list_runs, query)
        return render(request, "runs.html", who, runs=[views.run_summary(s) for s in found],
                      params=params, statuses=views.RUN_STATUSES, flow_ids=sorted(app.flows.flows),
                      searched=views.searched(app, query))

    async def run(request: Request, who: Principal) -> Response:
        run_id = request.path_params["id"]
        state = await run_in_threadpool(views.find_run, app, run_id)
        if state is None:
            return problem(request, 404, "No such run", f"There is no run '{run_id}' (a "
                           f"shortened id is looked up among the latest {views.PREFIX_SCAN:,} "
                           "runs). Search for it by order number or correlation id on the Runs "
                           "page.", who)
        entry = await run_in_threadpool(views.entry_for_run, app, state)
        return render(request, "run.html", who, run=views.run_detail(app, state), entry=entry)

    async def late(request: Request, who: Principal) -> Response:
        from engine.sla import late_runs

        flow, limit = views.late_filter(request.query_params)
        found = await run_in_threadpool(lambda: late_runs(app.store, flow=flow, limit=limit))
        return render(request, "late.html", who, late=found, flow=flow,
                      flow_ids=sorted(app.flows.flows))

    # -- dead letters --------------------------------------------------------------------------
    async def dlq(request: Request, who: Principal) -> Response:
        params = dict(request.query_params)
        query = views.dead_letter_filter(params)
        found = await run_in_threadpool(app.store.list_dead_letters, query)
        bulk = {k: v for k, v in params.items() if k in ("flow", "step", "error", "since",
                                                         "until", "status", "kind",
                                                         "http_status") and v}
        matching = len(found)
        if found and matching >= query.limit:  # more than this page: count them all
            matching = await run_in_threadpool(console.jobs.count_matching,
                                               views.dead_letter_filter(params, limit=1))
        return render(request, "dlq.html", who, entries=[views.entry_summary(e) for e in found],
                      params=params, statuses=views.DLQ_STATUSES, bulk=bulk,
                      flow_ids=sorted(app.flows.flows), matching=matching,
                      error_kinds=views.ERROR_KINDS)

    async def entry_page(request: Request, who: Principal, status: int = 200,
                         **extra: Any) -> Response:
        entry_id = request.path_params["id"]
        found = await run_in_threadpool(app.store.get_dead_letter, entry_id)
        if found is None:
            return problem(request, 404, "No such entry", f"There is no dead-letter entry "
                           f"'{entry_id}'.", who)
        detail = views.entry_detail(app, found)
        return render(request, "entry.html", who, status=status, entry=detail, **extra)

    async def entry(request: Request, who: Principal) -> Response:
        return await entry_page(request, who)

    async def replay(request: Request, who: Principal) -> Response:
        form = await form_of(request)
        edited, body, bad = _edited_body(form)
        # a refused replay shows the form again as the operator left it
        chosen = {"start_from": _choice(form, "start_from", "failed-step"),
                  "version": _choice(form, "version", "original")}
        if bad:
            return await entry_page(request, who, 422, refused=bad, draft=form.get("body"),
                                    chosen=chosen)
        try:
            state = await run_in_threadpool(
                lambda: app.replay(request.path_params["id"], start_from=chosen["start_from"],
                                   version=chosen["version"], body=body, edited=edited,
                                   who=f"console:{who.user}"))
        except ReplayRefused as exc:
            return await entry_page(request, who, 422, refused=str(exc),
                                    violations=views.violations(exc.detail),
                                    draft=form.get("body") if edited else None, chosen=chosen)
        return RedirectResponse(f"/console/runs/{state.run_id}", status_code=303)

    async def discard(request: Request, who: Principal) -> Response:
        form = await form_of(request)
        entry_id = request.path_params["id"]
        try:
            await run_in_threadpool(lambda: app.discard(entry_id, who=f"console:{who.user}",
                                                        reason=str(form.get("reason", ""))[:2000]))
        except ReplayRefused as exc:
            return problem(request, 404, "No such entry", str(exc), who)
        return RedirectResponse(f"/console/dlq/{entry_id}", status_code=303)

    async def replay_all(request: Request, who: Principal) -> Response:
        form = await form_of(request)
        query = views.dead_letter_filter(form, limit=1)
        job = await run_in_threadpool(lambda: console.jobs.start(
            query, who=f"console:{who.user}", start_from=_choice(form, "start_from",
                                                                 "failed-step"),
            version=_choice(form, "version", "original")))
        return RedirectResponse(f"/console/jobs/{job.id}", status_code=303)

    async def bulk_confirm(request: Request, who: Principal) -> Response:
        """What a bulk action would do, before it is done: how many entries of which flows,
        and with a patch, a preview of the first few (engine/dlq_patch)."""
        form = await form_of(request)
        action = "discard" if form.get("action") == "discard" else "replay"
        if action == "discard" and not who.may("admin"):  # many entries never replayed
            return not_allowed(request, who, "admin")
        if form.get("ids") is not None:  # the confirmation page itself, previewing
            ids = _ids(str(form["ids"]))
        elif form.get("scope") == "matching":
            ids = await run_in_threadpool(console.jobs.matching,
                                          views.dead_letter_filter(form, limit=1))
        else:
            ids = _ids(" ".join(form_list(request, "entry")))
        if not ids:
            return problem(request, 400, "Nothing selected", "Tick the entries to act on, or "
                           "“all matching the filter”, then choose Replay or Discard.", who)
        return await confirmation(request, who, action, ids, form,
                                  preview=form.get("step") == "preview")

    async def confirmation(request: Request, who: Principal, action: str, ids: list[str],
                           form: Form, *, preview: bool = False, status: int = 200,
                           error: str = "") -> Response:
        text = str(form.get("patch") or "")
        start_from = _choice(form, "start_from", "failed-step")
        version = _choice(form, "version", "original")
        previews = None
        if preview and not error:
            try:
                patch = dlq_patch.Patch(text) if text.strip() else None
            except dlq_patch.PatchError as exc:
                error, status = str(exc), 422
            else:
                previews = await run_in_threadpool(lambda: dlq_patch.preview(
                    app, ids, patch, start_from=start_from, version=version))
        chosen = await run_in_threadpool(dlq_patch.selection, app, ids)
        return render(request, "bulk.html", who, status=status, action=action,
                      ids=" ".join(ids), selection=chosen, patch=text, previews=previews,
                      start_from=start_from, version=version, error=error,
                      reason=str(form.get("reason", ""))[:2000])

    async def bulk_start(request: Request, who: Principal) -> Response:
        form = await form_of(request)
        action = "discard" if form.get("action") == "discard" else "replay"
        if action == "discard" and not who.may("admin"):
            return not_allowed(request, who, "admin")
        ids = _ids(str(form.get("ids", "")))
        if not ids:
            return problem(request, 400, "Nothing selected", "No entries were named; start "
                           "again from the dead-letter list.", who)
        text = str(form.get("patch") or "") if action == "replay" else ""
        try:
            patch = dlq_patch.Patch(text) if text.strip() else None
        except dlq_patch.PatchError as exc:
            return await confirmation(request, who, action, ids, form, status=422,
                                      error=str(exc))
        job = await run_in_threadpool(lambda: console.jobs.start(
            ids, who=f"console:{who.user}", start_from=_choice(form, "start_from",
                                                               "failed-step"),
            version=_choice(form, "version", "original"), action=action, patch=patch,
            reason=str(form.get("reason", ""))[:2000]))
        return RedirectResponse(f"/console/jobs/{job.id}", status_code=303)

    async def job(request: Request, who: Principal) -> Response:
        found = await run_in_threadpool(console.jobs.get, request.path_params["id"])
        if found is None:
            return problem(request, 404, "No such job", "There is no such replay job (the "
                           "latest 100 finished jobs are kept); the replayed runs are on the "
                           "Runs page.", who)
        progress = await run_in_threadpool(console.jobs.progress, found)
        return render(request, "job.html", who, job=progress)

    async def resume(request: Request, who: Principal) -> Response:
        found = await run_in_threadpool(console.jobs.get, request.path_params["id"])
        if found is None:
            return problem(request, 404, "No such job", "There is no such replay job.", who)
        if found.action == "discard" and not who.may("admin"):
            return not_allowed(request, who, "admin")
        try:
            job = await run_in_threadpool(lambda: console.jobs.resume(
                found.id, who=f"console:{who.user}"))
        except NotResumable as exc:
            return problem(request, 409, "Not resumed", f"{exc}.", who)
        return RedirectResponse(f"/console/jobs/{job.id}", status_code=303)

    async def not_found(request: Request) -> Response:
        try:
            who = auth.principal(request)
        except Throttled as exc:
            return throttled(request, exc)
        return problem(request, 404, "Not found", "There is no such console page.", who)

    return [Route("/", guarded(flows)),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/oidc/login", oidc_login),
            Route("/oidc/callback", oidc_callback),
            Route("/logout", guarded(logout, write=True), methods=["POST"]),
            Route("/runs", guarded(runs)),
            Route("/runs/{id}", guarded(run)),
            Route("/late", guarded(late)),
            Route("/dlq", guarded(dlq)),
            Route("/dlq/replay-all", operates(replay_all), methods=["POST"]),
            Route("/dlq/bulk", operates(bulk_confirm), methods=["POST"]),
            Route("/dlq/bulk/start", operates(bulk_start), methods=["POST"]),
            Route("/dlq/{id}", guarded(entry)),
            Route("/dlq/{id}/replay", operates(replay), methods=["POST"]),
            Route("/dlq/{id}/discard", operates(discard), methods=["POST"]),
            Route("/jobs/{id}", guarded(job)),
            Route("/jobs/{id}/resume", operates(resume), methods=["POST"]),
            *graph_pages.routes(console, guarded, problem),
            Route("/{path:path}", not_found)]


def _ids(text: str) -> list[str]:
    """Entry ids from a form, each once; anything that cannot be an id is left out."""
    return list(dict.fromkeys(t for t in text.split() if t.replace("-", "").isalnum()
                              and len(t) <= 64))


def _choice(form: Form, name: str, default: str) -> str:
    allowed = {"start_from": ("failed-step", "start"), "version": ("original", "current")}
    value = str(form.get(name, default))
    return value if value in allowed[name] else default


def _edited_body(form: Form) -> tuple[bool, Any, str]:
    """(edited, body, problem): the body field counts only when "replace the body" is ticked."""
    if form.get("edit_body") != "on":
        return False, None, ""
    text = str(form.get("body", ""))
    try:
        return True, json.loads(text), ""
    except json.JSONDecodeError as exc:
        return True, None, (f"The edited body is not valid JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}. Nothing was replayed.")
