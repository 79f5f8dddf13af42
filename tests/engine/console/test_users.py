"""The users file and `flowrun users`: scrypt hashes, a file written 0600 and atomically, clear
errors for a bad file or name, and a server-side view that follows the file as it changes."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import cli_users
from engine.cli import main
from engine.console import users
from engine.console.users import Users, UsersError, hash_password, read, verify_password
from tests.conftest import ROOT
from tests.engine.terminal import in_terminal


def test_a_hash_holds_its_parameters_and_a_fresh_salt() -> None:
    first, second = hash_password("a long passphrase"), hash_password("a long passphrase")
    assert first != second  # salted
    kind, log_n, r, p, salt, key = first.split("$")
    assert (kind, int(log_n), int(r), int(p)) == ("scrypt", users.LOG_N, users.R, users.P)
    assert (len(users._unb64(salt)), len(users._unb64(key))) == (16, 32)
    assert verify_password("a long passphrase", first)
    assert not verify_password("a long passphrasE", first)


@pytest.mark.parametrize("encoded", ["", "scrypt$15$8$3$bad", "bcrypt$15$8$3$AA$AA",
                                     "scrypt$40$8$3$AAAA$AAAA", "scrypt$x$8$3$AAAA$AAAA"])
def test_a_hash_that_cannot_be_read_never_matches(encoded: str) -> None:
    assert verify_password("anything at all", encoded) is False


@pytest.mark.parametrize(("text", "expected"), [
    ("users: [", "not valid YAML"),
    ("users: {alice: {role: boss, password: 'scrypt$1'}}", "users.alice.role"),
    ("users: {alice: {role: viewer, password: 'plain'}}", "users.alice.password"),
    ("users: {alice: {role: viewer, password: 'scrypt$1', pasword: x}}", "pasword"),
    ("user: {}", "user: Extra inputs are not permitted"),
    ("users: {'bad name': {role: viewer, password: 'scrypt$1'}}", "'bad name'"),
    ("users: {token: {role: viewer, password: 'scrypt$1'}}", "reserved"),
])
def test_a_bad_users_file_is_named_with_the_reason(tmp_path: Path, text: str,
                                                    expected: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsersError) as raised:
        read(path)
    assert str(path) in str(raised.value) and expected in str(raised.value)


def test_the_server_view_follows_the_file_and_keeps_the_last_good_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users.yaml"
    run = CliRunner().invoke
    assert run(main, ["users", "add", "alice", "--role", "viewer", "--password-stdin",
                      "--file", str(path)], input="alice's passphrase\n").exit_code == 0
    seen = Users(path)
    assert seen.check("alice", "alice's passphrase") == "viewer"
    assert seen.check("alice", "wrong passphrase") is None
    assert seen.check("nobody", "alice's passphrase") is None
    assert run(main, ["users", "role", "alice", "operator", "--file", str(path)]).exit_code == 0
    assert seen.role_of("alice") == "operator"
    path.write_text("users: [", encoding="utf-8")  # a broken edit by hand
    assert seen.role_of("alice") == "operator"
    assert "the last good one stays in use" in caplog.text and str(path) in caplog.text


def test_users_cli_adds_lists_changes_and_removes(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "users.yaml"
    run = CliRunner().invoke
    env = {"FLOWRUN_CONSOLE_USERS": str(path)}
    added = run(main, ["users", "add", "bob", "--role", "operator", "--password-stdin"],
                input="bob's first passphrase\n", env=env)
    assert added.exit_code == 0, added.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "bob's first passphrase" not in path.read_text(encoding="utf-8")
    listed = run(main, ["users", "list"], env=env)
    assert listed.output == "bob\toperator\n"
    again = run(main, ["users", "add", "bob", "--role", "viewer", "--password-stdin"],
                input="another passphrase\n", env=env)
    assert again.exit_code == 1 and "already a user" in again.output
    changed = run(main, ["users", "passwd", "bob", "--password-stdin"],
                  input="bob's second passphrase\n", env=env)
    assert changed.exit_code == 0
    assert Users(path).check("bob", "bob's second passphrase") == "operator"
    assert Users(path).check("bob", "bob's first passphrase") is None
    assert run(main, ["users", "remove", "bob"], env=env).exit_code == 0
    assert run(main, ["users", "list"], env=env).output == f"no users in {path}\n"
    # nothing but the file is left behind by the atomic writes
    assert [p.name for p in path.parent.iterdir()] == ["users.yaml"]


@pytest.mark.parametrize(("args", "given", "expected"), [
    (["add", "carol", "--role", "viewer", "--password-stdin"], "short\n", "too short"),
    (["add", "carol", "--role", "viewer"], "", "pipe it to --password-stdin"),
    (["add", "carol", "--role", "boss", "--password-stdin"], "", "'boss' is not one of"),
    (["add", "bad name", "--role", "viewer", "--password-stdin"], "", "user name 'bad name'"),
    (["passwd", "nobody", "--password-stdin"], "a long passphrase\n", "no user 'nobody'"),
    (["remove", "nobody"], "", "no user 'nobody'"),
])
def test_users_cli_refuses_with_a_clear_message(tmp_path: Path, args: list[str], given: str,
                                                expected: str) -> None:
    path = tmp_path / "users.yaml"
    result = CliRunner().invoke(main, ["users", *args, "--file", str(path)], input=given)
    assert result.exit_code != 0 and expected in result.output
    assert "Traceback" not in result.output


def test_users_cli_without_a_file_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWRUN_CONSOLE_USERS", raising=False)
    result = CliRunner().invoke(main, ["users", "list"])
    assert result.exit_code == 1 and "FLOWRUN_CONSOLE_USERS" in result.output


def test_the_cli_knows_the_same_roles_as_the_console() -> None:
    assert cli_users.ROLES == users.ROLES


def test_users_add_asks_the_password_twice_on_a_terminal_without_echoing_it(
        tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOWRUN_CONSOLE_USERS": str(path)}
    code, shown = in_terminal([sys.executable, "-m", "engine.cli", "users", "add", "erin",
                               "--role", "viewer"], env, str(tmp_path),
                              answers=[(b"Password:", "erin's passphrase"),
                                       (b"confirmation:", "erin's passphrase")])
    assert code == 0, shown
    assert "Repeat for confirmation" in shown and "added erin (viewer)" in shown
    assert "erin's passphrase" not in shown
    assert Users(path).check("erin", "erin's passphrase") == "viewer"


def test_a_remembered_password_is_forgotten_when_it_changes_or_the_user_goes(
        tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    run = CliRunner().invoke
    args = ["--file", str(path)]
    run(main, ["users", "add", "fay", "--role", "operator", "--password-stdin", *args],
        input="fay's first passphrase\n")
    seen = Users(path)
    assert seen.check("fay", "fay's first passphrase") == "operator"
    assert seen.check("fay", "fay's first passphrase") == "operator"  # remembered now
    run(main, ["users", "passwd", "fay", "--password-stdin", *args],
        input="fay's second passphrase\n")
    assert seen.check("fay", "fay's first passphrase") is None
    assert seen.check("fay", "fay's second passphrase") == "operator"
    run(main, ["users", "remove", "fay", *args])
    assert seen.check("fay", "fay's second passphrase") is None


def test_a_missing_or_open_users_file_is_warned_about(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users.yaml"
    Users(path)
    assert "does not exist yet" in caplog.text
    path.write_text("users: {}\n", encoding="utf-8")
    path.chmod(0o644)
    Users(path)
    assert "chmod 600" in caplog.text
