"""Commands: `newsletter lists add | ls | rm`."""

from __future__ import annotations

import click
import typer

from ..store.records import BOUNCED, CONFIRMED, UNCONFIRMED, UNSUBSCRIBED
from .app import command_group, confirm, print_json, print_table, state

lists_app = command_group("lists", "Create, show and remove mailing lists.")


@lists_app.command("add")
def add_list(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="Short name: lower-case letters, digits, '-' and '_'."),
    name: str = typer.Option(None, "--name", help="Display name (default: the slug)."),
    description: str = typer.Option("", "--description", help="One line about the list."),
    double_opt_in: bool = typer.Option(
        False, "--double-opt-in", help="New members must confirm by email before they get mail."
    ),
) -> None:
    """Create a list."""
    record = state(ctx).store.lists.create(slug, name, description, double_opt_in)
    opt_in = "double opt-in" if record.double_opt_in else "single opt-in"
    click.echo(f"Created list {record.slug} ({record.name}, {opt_in}).")


@lists_app.command("ls")
def list_lists(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Show every list with its members by status."""
    summaries = state(ctx).store.lists.all()
    if as_json:
        print_json([summary.as_json() for summary in summaries])
        return
    if not summaries:
        click.echo("No lists yet: create one with `newsletter lists add SLUG`.")
        return
    print_table(
        None,
        ["List", "Name", "Opt-in", "Confirmed", "Unconfirmed", "Unsubscribed", "Bounced", "Created"],
        [
            [
                s.list.slug,
                s.list.name,
                "double" if s.list.double_opt_in else "single",
                s.counts.get(CONFIRMED, 0),
                s.counts.get(UNCONFIRMED, 0),
                s.counts.get(UNSUBSCRIBED, 0),
                s.counts.get(BOUNCED, 0),
                s.list.created_at.strftime("%Y-%m-%d"),
            ]
            for s in summaries
        ],
    )


@lists_app.command("rm")
def remove_list(
    ctx: typer.Context,
    slug: str = typer.Argument(..., help="The list to remove."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove a list and its memberships (the subscribers themselves stay)."""
    store = state(ctx).store
    members = sum(store.lists.summary(slug).counts.values())
    confirm(f"Remove list {slug} and its {members} membership(s)?", yes)
    removed = store.lists.remove(slug)
    click.echo(f"Removed list {slug} ({removed} membership(s)).")
