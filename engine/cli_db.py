"""`flowrun db`: the PostgreSQL schema of FLOWRUN_DATABASE_URL — upgrade it, show its versions."""

from __future__ import annotations

from typing import Any

import click


def _connect() -> Any:
    from engine.settings import load_settings

    url = load_settings().database_url
    if not url:
        raise click.ClickException("FLOWRUN_DATABASE_URL is not set; `flowrun db` works on the "
                                   "PostgreSQL store (e.g. FLOWRUN_DATABASE_URL="
                                   "postgresql://flowrun@db.internal:5432/flowrun)")
    try:
        import psycopg
    except ImportError:
        raise click.ClickException("the PostgreSQL store needs flowrunner-ipaas[postgres]: pip "
                                   "install 'flowrunner-ipaas[postgres]'") from None
    from engine.store.postgres import describe

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10), describe(url)
    except psycopg.Error as exc:
        raise click.ClickException(f"PostgreSQL {describe(url)} cannot be reached: "
                                   f"{str(exc).strip().splitlines()[0]}") from None


@click.group()
def db() -> None:
    """The PostgreSQL store's schema (FLOWRUN_DATABASE_URL)."""


@db.command()
def upgrade() -> None:
    """Apply the pending schema migrations, each in its own transaction (safe to run again,
    and from two places at once: the second waits, then finds nothing to do)."""
    import psycopg

    from engine.store import pg_migrations
    from engine.store.base import StoreError

    conn, where = _connect()
    with conn:
        try:
            ran = pg_migrations.upgrade(conn)
        except (psycopg.Error, StoreError) as exc:
            raise click.ClickException(f"PostgreSQL {where}: {exc}") from None
    for migration in ran:
        click.echo(f"applied {migration.version:04d} {migration.name}")
    click.echo(f"PostgreSQL {where}: schema at version {pg_migrations.latest()}"
               + ("" if ran else " (nothing to do)"))


@db.command()
def status() -> None:
    """Show the schema versions applied and pending."""
    from engine.store import pg_migrations

    conn, where = _connect()
    with conn:
        done = set(pg_migrations.applied(conn))
    known = {m.version: m.name for m in pg_migrations.migrations()}
    click.echo(f"PostgreSQL {where}")
    for version in sorted(done | set(known)):
        state = ("applied" if version in done else "pending") if version in known else \
            "applied, unknown to this flowrunner"
        click.echo(f"  {version:04d} {known.get(version, '?'):<24} {state}")
    pending = [v for v in known if v not in done]
    if max(done, default=0) > pg_migrations.latest():
        click.echo(pg_migrations.too_new(max(done)))
    elif pending:
        click.echo(f"{len(pending)} pending: run `flowrun db upgrade`")
    else:
        click.echo("up to date")
