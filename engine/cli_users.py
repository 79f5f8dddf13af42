"""`flowrun users`: the console's named operators in FLOWRUN_CONSOLE_USERS (or --file).

Passwords are asked twice on a terminal and never echoed; a script pipes one line to
``--password-stdin``. The file is replaced atomically with mode 0600, and a running
``flowrun serve`` picks the change up at the next request.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from engine.console import users as accounts

# engine.console.users.ROLES, spelt here so that `flowrun` starts without loading the console
# (its package imports Jinja2 and Starlette); a test keeps the two equal
ROLES = ("viewer", "operator", "admin")
MIN_PASSWORD = 12  # long passphrases beat complexity rules (NIST SP 800-63B asks for 8+)

file_option = click.option(
    "--file", "path", type=click.Path(dir_okay=False, path_type=Path),
    help="The users file (default: FLOWRUN_CONSOLE_USERS).")
stdin_option = click.option("--password-stdin", is_flag=True,
                            help="Read the password from the first line of standard input.")


def _file(path: Path | None) -> Path:
    if path is not None:
        return path
    from engine.settings import load_settings

    try:
        configured = load_settings().console_users
    except ValueError as exc:
        raise click.ClickException(f"settings: {exc}") from None
    if configured is None:
        raise click.ClickException("no users file: set FLOWRUN_CONSOLE_USERS=path/to/users.yaml "
                                   "(also read by flowrun serve) or pass --file")
    return configured


def _load(path: Path) -> accounts.UsersFile:
    from engine.console import users as accounts

    try:
        return accounts.read(path)
    except accounts.UsersError as exc:
        raise click.ClickException(str(exc)) from None


def _save(path: Path, found: accounts.UsersFile) -> None:
    from engine.console import users as accounts

    try:
        accounts.write(path, found)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write the users file: {exc.strerror}"
                                   ) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.ClickException("no terminal to ask the password on: pipe it to "
                                   "--password-stdin")
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password is too short: use at least {MIN_PASSWORD} "
                                   "characters (a few words make a good one)")
    return password


def _name(name: str) -> str:
    from engine.console import users as accounts

    try:
        return accounts.check_name(name)
    except accounts.UsersError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def users() -> None:
    """The console's operators: names, roles (viewer, operator, admin) and passwords."""


@users.command()
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="viewer: read; operator: also replay and discard; admin: everything.")
@stdin_option
@file_option
def add(name: str, role: str, password_stdin: bool, path: Path | None) -> None:
    """Add the user NAME with a ROLE and a password."""
    path, name = _file(path), _name(name)
    found = _load(path)
    if name in found.users:
        raise click.ClickException(f"{name} is already a user in {path}; change the password "
                                   "with `flowrun users passwd`, the role with `flowrun users "
                                   "role`")
    from engine.console.users import User, hash_password

    found.users[name] = User(role=role,  # one of ROLES (click)
                             password=hash_password(_password(password_stdin)))
    _save(path, found)
    click.echo(f"added {name} ({role}) to {path}")


@users.command(name="list")
@file_option
def list_(path: Path | None) -> None:
    """List the users and their roles (never their password hashes)."""
    path = _file(path)
    found = _load(path)
    if not found.users:
        click.echo(f"no users in {path}")
    for name, user in sorted(found.users.items()):
        click.echo(f"{name}\t{user.role}")


@users.command()
@click.argument("name")
@stdin_option
@file_option
def passwd(name: str, password_stdin: bool, path: Path | None) -> None:
    """Set a new password for NAME (sessions made with the old one end at their next request)."""
    path = _file(path)
    found = _load(path)
    user = found.users.get(name)
    if user is None:
        raise click.ClickException(f"no user {name!r} in {path}")
    from engine.console.users import hash_password

    user.password = hash_password(_password(password_stdin))
    _save(path, found)
    click.echo(f"password of {name} changed")


@users.command()
@click.argument("name")
@click.argument("role_", metavar="ROLE", type=click.Choice(ROLES))
@file_option
def role(name: str, role_: str, path: Path | None) -> None:
    """Give NAME another ROLE (their sessions follow at their next request)."""
    path = _file(path)
    found = _load(path)
    user = found.users.get(name)
    if user is None:
        raise click.ClickException(f"no user {name!r} in {path}")
    user.role = role_  # type: ignore[assignment]  # one of ROLES (click)
    _save(path, found)
    click.echo(f"{name} is now {role_}")


@users.command()
@click.argument("name")
@file_option
def remove(name: str, path: Path | None) -> None:
    """Remove NAME (their sessions end at their next request)."""
    path = _file(path)
    found = _load(path)
    if found.users.pop(name, None) is None:
        raise click.ClickException(f"no user {name!r} in {path}")
    _save(path, found)
    click.echo(f"removed {name} from {path}")
