"""Roles over real HTTP: a viewer reads but every write is refused with 403 and a message naming
the role (pages and API, by session or by header); an operator replays and the audit trail
names them; a user removed from the file loses their session at the next request."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import requests
from click.testing import CliRunner
from starlette.routing import Mount, Route

from engine.cli import main
from engine.console import console_routes
from tests.conftest import wait_until
from tests.engine.console.support import (
    PASSWORD,
    USER,
    console_app,
    csrf_of,
    dead_letter,
    logged_in,
    login,
    order,
    password_of,
    users_file,
)
from tests.engine.server_support import serving


def basic(user: str) -> dict[str, str]:
    pair = f"{user}:{password_of(user)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def test_a_viewer_reads_but_cannot_replay_discard_or_bulk_replay(tmp_path: Path) -> None:
    users = users_file(tmp_path, vera="viewer")
    with serving(console_app(tmp_path, users=users)) as server:
        entry = dead_letter(server, 8101)
        http = logged_in(server, "vera")
        page = http.get(server.url + f"/console/dlq/{entry.id}")
        assert page.status_code == 200 and "8101" in page.text
        assert "vera · viewer" in page.text
        assert 'id="replay"' not in page.text and 'id="discard"' not in page.text
        listing = http.get(server.url + "/console/dlq")
        assert entry.id in listing.text and 'id="replay-all"' not in listing.text
        csrf = csrf_of(page.text)
        for path in (f"/console/dlq/{entry.id}/replay", f"/console/dlq/{entry.id}/discard",
                     "/console/dlq/replay-all"):
            refused = http.post(server.url + path, data={"csrf_token": csrf},
                                allow_redirects=False)
            assert refused.status_code == 403, path
            assert "vera, a viewer" in refused.text and "operator role" in refused.text
        api = http.post(server.url + f"/api/dead-letters/{entry.id}/replay", json={},
                        headers={"X-CSRF-Token": csrf})
        assert api.status_code == 403
        assert api.json() == {"error": "vera is a viewer; this needs the operator role (an "
                                       "admin can change it with `flowrun users`)",
                              "user": "vera", "role": "viewer", "needed": "operator"}
        by_header = server.http.post(server.url + f"/api/dead-letters/{entry.id}/discard",
                                     json={"reason": "x"}, headers=basic("vera"))
        assert by_header.status_code == 403
        assert server.http.get(server.url + "/api/dead-letters",
                               headers=basic("vera")).status_code == 200
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.status == "open" and kept.audit == []


def test_an_operator_replays_and_the_audit_trail_names_them(tmp_path: Path) -> None:
    users = users_file(tmp_path, alice="operator", bob="operator")
    with serving(console_app(tmp_path, users=users)) as server:
        first, second = dead_letter(server, 8201), dead_letter(server, 8202)
        http = logged_in(server, "alice")
        page = http.get(server.url + f"/console/dlq/{first.id}")
        assert "alice · operator" in page.text and 'id="replay"' in page.text
        response = http.post(server.url + f"/console/dlq/{first.id}/replay", data={
            "csrf_token": csrf_of(page.text), "body": json.dumps(order(8201, qty=2)),
            "edit_body": "on", "start_from": "failed-step", "version": "original"},
            allow_redirects=False)
        assert response.status_code == 303
        kept = wait_until(lambda: (e := server.app.store.get_dead_letter(first.id)) and
                          e.status == "replayed" and e)
        assert kept.audit[-1]["who"] == "console:alice"
        assert "console:alice" in http.get(server.url + f"/console/dlq/{first.id}").text
        api = server.http.post(server.url + f"/api/dead-letters/{second.id}/discard",
                               json={"reason": "duplicate"}, headers=basic("bob"))
        assert api.status_code == 200
        gone = server.app.store.get_dead_letter(second.id)
        assert gone is not None and gone.audit[-1]["who"] == "api:bob"


def test_a_removed_or_demoted_user_loses_access_at_the_next_request(tmp_path: Path) -> None:
    users = users_file(tmp_path, alice="operator", dave="operator")
    with serving(console_app(tmp_path, users=users)) as server:
        entry = dead_letter(server, 8301)
        alice, dave = logged_in(server, "alice"), logged_in(server, "dave")
        assert alice.get(server.url + "/console/dlq").status_code == 200
        run = CliRunner().invoke
        assert run(main, ["users", "remove", "alice", "--file", str(users)]).exit_code == 0
        assert run(main, ["users", "role", "dave", "viewer", "--file", str(users)]).exit_code == 0
        gone = alice.get(server.url + "/console/dlq", allow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")
        page = dave.get(server.url + f"/console/dlq/{entry.id}")
        assert "dave · viewer" in page.text
        refused = dave.post(server.url + f"/console/dlq/{entry.id}/discard",
                            data={"csrf_token": csrf_of(page.text)}, allow_redirects=False)
        assert refused.status_code == 403


def test_the_token_and_the_settings_user_are_admins(tmp_path: Path) -> None:
    users = users_file(tmp_path, vera="viewer")
    with serving(console_app(tmp_path, users=users)) as server:
        page = logged_in(server).get(server.url + "/console/dlq")
        assert "token · admin" in page.text


def test_discarding_in_bulk_needs_an_admin_replaying_in_bulk_an_operator(
        tmp_path: Path) -> None:
    users = users_file(tmp_path, olga="operator", ada="admin")
    with serving(console_app(tmp_path, users=users)) as server:
        entries = [dead_letter(server, n) for n in (8401, 8402)]
        ids = [e.id for e in entries]
        olga = logged_in(server, "olga")
        listing = olga.get(server.url + "/console/dlq").text
        assert 'id="bulk-replay"' in listing and 'id="bulk-discard"' not in listing
        csrf = csrf_of(listing)
        for path in ("/console/dlq/bulk", "/console/dlq/bulk/start"):
            refused = olga.post(server.url + path, data={
                "csrf_token": csrf, "entry": ids, "ids": " ".join(ids), "action": "discard"},
                allow_redirects=False)
            assert refused.status_code == 403 and "needs the admin role" in refused.text, path
        api = server.http.post(server.url + "/api/replay-jobs", headers=basic("olga"),
                               json={"entries": ids, "action": "discard", "reason": "x"})
        assert api.status_code == 403 and api.json()["needed"] == "admin"
        confirm = olga.post(server.url + "/console/dlq/bulk", data={
            "csrf_token": csrf, "entry": ids, "action": "replay"})
        assert confirm.status_code == 200  # replaying many is an operator's work
        assert all(server.app.store.get_dead_letter(i).status == "open"  # type: ignore[union-attr]
                   for i in ids)
        ada = logged_in(server, "ada")
        listing = ada.get(server.url + "/console/dlq").text
        assert 'id="bulk-discard"' in listing
        done = server.http.post(server.url + "/api/replay-jobs", headers=basic("ada"),
                                json={"entries": ids, "action": "discard",
                                      "reason": "sent twice"})
        assert done.status_code == 202, done.text
        wait_until(lambda: all(server.app.store.get_dead_letter(i).status  # type: ignore[union-attr]
                               == "discarded" for i in ids))
        kept = server.app.store.get_dead_letter(ids[0])
        assert kept is not None and kept.audit[-1]["who"] == "api:ada"
        resume = f"{server.url}/api/replay-jobs/{done.json()['id']}/resume"
        refused = server.http.post(resume, headers=basic("olga"))  # a discard job's, too
        assert refused.status_code == 403 and refused.json()["needed"] == "admin"
        assert server.http.post(resume, headers=basic("ada")).status_code == 409  # all done


def test_every_state_changing_route_refuses_a_viewer(tmp_path: Path) -> None:
    """Walks the console's routes, so a write endpoint added later is held to this too."""
    users = users_file(tmp_path, vera="viewer")
    app = console_app(tmp_path, users=users)
    posts = [(mount.path + route.path) for mount in console_routes(app)
             if isinstance(mount, Mount) for route in mount.routes
             if isinstance(route, Route) and "POST" in (route.methods or ())
             and route.path not in ("/login", "/logout")]
    assert len(posts) >= 9, posts
    with serving(app) as server:
        entry = dead_letter(server, 8501)
        http = logged_in(server, "vera")
        csrf = csrf_of(http.get(server.url + "/console/dlq").text)
        for path in posts:
            url = server.url + path.replace("{id}", entry.id)
            refused = http.post(url, data={"csrf_token": csrf, "entry": entry.id},
                                headers={"X-CSRF-Token": csrf}, allow_redirects=False)
            assert refused.status_code == 403, path
            assert "vera" in refused.text and "viewer" in refused.text, path
        kept = server.app.store.get_dead_letter(entry.id)
        assert kept is not None and kept.status == "open" and kept.audit == []


def test_a_changed_password_ends_the_sessions_made_with_the_old_one(tmp_path: Path) -> None:
    users = users_file(tmp_path, alice="operator", dave="operator")
    with serving(console_app(tmp_path, users=users)) as server:
        alice, dave = logged_in(server, "alice"), logged_in(server, "dave")
        changed = CliRunner().invoke(main, ["users", "passwd", "alice", "--password-stdin",
                                            "--file", str(users)],
                                     input="a new long passphrase\n")
        assert changed.exit_code == 0, changed.output
        gone = alice.get(server.url + "/console/dlq", allow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")
        assert dave.get(server.url + "/console/dlq").status_code == 200  # others keep theirs


def test_a_rotated_token_or_settings_password_ends_the_sessions_made_with_the_old_one(
        tmp_path: Path) -> None:
    with serving(console_app(tmp_path)) as server:  # one SQLite store for both servers
        by_token, by_user = logged_in(server), requests.Session()
        by_user.trust_env = False
        assert login(server, by_user, USER, PASSWORD).status_code == 303
        assert "ops · admin" in by_user.get(server.url + "/console/dlq").text
        assert by_token.get(server.url + "/console/dlq").status_code == 200
    with serving(console_app(tmp_path, token="a-new-console-token-0123456789",
                             password="a new settings password")) as server:
        for http in (by_token, by_user):
            gone = http.get(server.url + "/console/dlq", allow_redirects=False)
            assert gone.status_code == 303, gone.text
    with serving(console_app(tmp_path)) as server:  # the same credentials: sessions still good
        again = logged_in(server)
        assert again.get(server.url + "/console/dlq").status_code == 200
