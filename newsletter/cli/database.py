"""Commands: `newsletter db status | upgrade | backup FILE`."""

from __future__ import annotations

from pathlib import Path

import click
import typer

from .app import command_group, print_json, print_table, state

db_app = command_group("db", "The database: migrations and a consistent copy.")


@db_app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Show each migration step: applied (when) or pending. Changes nothing."""
    from ..store import open_store

    store = open_store(state(ctx).config, migrate=False)
    steps = store.migrations.status()
    if as_json:
        print_json([step.as_json() for step in steps])
        return
    print_table(
        None,
        ["Step", "Name", "Applied"],
        [[step.version, step.name, step.applied_at or "pending"] for step in steps],
    )
    pending = sum(1 for step in steps if step.applied_at is None)
    click.echo(f"{store.where}: {pending} pending" + ("; run `newsletter db upgrade`" if pending else ""))


@db_app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Apply the pending migration steps (each in one transaction)."""
    from ..store import open_store

    store = open_store(state(ctx).config, migrate=False)
    applied = store.migrations.upgrade()
    for step in applied:
        click.echo(f"Applied step {step.version}: {step.name}.")
    click.echo(f"{store.where} is up to date." if applied else f"{store.where} was up to date.")


@db_app.command("backup")
def backup_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Where to write the copy (replaced when complete)."),
) -> None:
    """Write a consistent copy of a SQLite database while others use it."""
    from ..store import open_store
    from ..store.backup import backup

    store = open_store(state(ctx).config, migrate=False)
    size = backup(store, file)
    click.echo(f"Wrote a consistent copy of {store.where} to {file} ({size / 1024:.0f} KB).")
