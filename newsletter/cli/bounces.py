"""Commands: `newsletter deliveries DIGEST NUMBER` (each recipient's outcome) and
`newsletter bounces` (recent bounce and complaint events)."""

from __future__ import annotations

from enum import Enum

import click
import typer

from ..store.records import FAILED, PENDING, SENT, SKIPPED
from .app import app, print_json, print_table, state

DeliveryStatus = Enum("DeliveryStatus", {s: s for s in (SENT, FAILED, PENDING, SKIPPED)}, type=str)  # type: ignore[misc]


@app.command("deliveries")
def deliveries_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest, as named in the config."),
    number: int = typer.Argument(..., help="The issue's number (see `newsletter history`)."),
    status: DeliveryStatus = typer.Option(None, "--status", help="Only recipients with this status."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Each recipient of an issue with its status and the server's reply."""
    app_state = state(ctx)
    issue = app_state.store.issues.find(digest, number)
    lines = app_state.store.issues.deliveries(issue.id, status.value if status else None)
    if as_json:
        print_json([line.as_json() for line in lines])
        return
    if not lines:
        click.echo(f"No deliveries of {digest} #{number} match.")
        return
    tz = app_state.config.newsletter.tz
    print_table(
        f"{digest} #{number}: {issue.subject}",
        ["Email", "Status", "Attempts", "Sent", "Reply"],
        [
            [
                line.email or "(forgotten)",
                line.status,
                line.attempts,
                line.sent_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if line.sent_at else "",
                line.reply or "",
            ]
            for line in lines
        ],
        whole=("Email",),
    )


@app.command("bounces")
def bounces_command(
    ctx: typer.Context,
    limit: int = typer.Option(100, "--limit", help="How many of the newest events."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Recent bounce, complaint and mailto unsubscribe events, newest first."""
    app_state = state(ctx)
    events = app_state.store.bounces.recent(limit)
    if as_json:
        print_json([event.as_json() for event in events])
        return
    if not events:
        click.echo("No bounces or complaints yet.")
        return
    tz = app_state.config.newsletter.tz
    print_table(
        None,
        ["When", "Kind", "Email", "List", "Issue", "Status", "Diagnostic", "Action"],
        [
            [
                event.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                event.kind if event.severity is None else f"{event.severity} {event.kind}",
                event.email or "(forgotten)",
                event.list_slug or "",
                event.issue or "",
                event.status or "",
                event.diagnostic or "",
                event.action,
            ]
            for event in events
        ],
        whole=("Email",),
    )
