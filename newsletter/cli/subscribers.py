"""Commands: `newsletter subscribers add | import | export | ls | unsubscribe | block |
unblock | suppressions | forget`."""

from __future__ import annotations

import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path

import click
import typer

from .. import importer
from ..errors import NewsletterError
from ..store.records import (
    BLOCKED,
    CONFIRMED,
    MEMBERSHIP_STATUSES,
    BOUNCED,
    SUPPRESS_DOMAIN,
    SUPPRESS_FORGOTTEN,
    UNCONFIRMED,
    UNSUBSCRIBED,
    AddResult,
    ImportReport,
)
from .app import command_group, confirm, optional_secret, print_json, print_table, state

subscribers_app = command_group("subscribers", "Add, import, export, list, unsubscribe, block and forget subscribers.")

# What `ls --status` filters on: a membership status, or blocked.
ListStatus = Enum("ListStatus", {status: status for status in (*MEMBERSHIP_STATUSES, BLOCKED)}, type=str)  # type: ignore[misc]


@subscribers_app.command("add")
def add_subscriber(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The address to add."),
    list_slug: str = typer.Option(..., "--list", "-l", help="The list to add it to."),
    name: str = typer.Option("", "--name", help="The subscriber's name."),
    confirmed: bool = typer.Option(
        False, "--confirmed", help="Consent was given elsewhere: skip the double opt-in."
    ),
) -> None:
    """Add an address to a list (double opt-in lists: as unconfirmed, and mail the link)."""
    app_state = state(ctx)
    if app_state.store.lists.get(list_slug).double_opt_in and not confirmed:
        app_state.config.token_secret  # the link needs it: fail before anything is written
    result = app_state.store.subscribers.add(
        email, list_slug, name, confirmed=confirmed, secret=optional_secret(app_state)
    )
    click.echo(describe_add(result, list_slug))
    from ..confirmation import send_confirmation  # renders the mail: Jinja2, MJML

    if result.status == UNCONFIRMED and send_confirmation(app_state.config, app_state.store, result):
        click.echo(f"Sent a confirmation link to {result.email}.")


def describe_add(result: AddResult, list_slug: str) -> str:
    if result.previous_status is None:
        return f"Added {result.email} to {list_slug} ({result.status})."
    if not result.changed:
        return f"{result.email} is already on {list_slug} ({result.status})."
    if result.previous_status in (UNSUBSCRIBED, BOUNCED):
        return f"Resubscribed {result.email} to {list_slug} ({result.status})."
    return f"Confirmed {result.email} on {list_slug}."


@subscribers_app.command("import")
def import_subscribers(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A CSV exported by another service, or by `export`."),
    list_slug: str = typer.Option(
        None, "--list", "-l", help="The list to import into (default: the file's list column)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would happen; write nothing."),
    send_confirmations: bool = typer.Option(
        False,
        "--send-confirmations",
        help="Import active rows as unconfirmed and mail each new member a confirmation link.",
    ),
    status_map: str = typer.Option(
        "",
        importer.STATUS_MAP_OPTION,
        metavar="VALUE=STATUS,...",
        help="Read the file's status values as these statuses, e.g. 1=active,0=unsubscribed.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import subscribers from a CSV, in one transaction; report added, updated, skipped."""
    statuses = importer.parse_status_map(status_map) if status_map else {}
    app_state = state(ctx)
    csv_file = importer.read(file)
    if list_slug is None and csv_file.columns.list is None:
        raise NewsletterError(
            f"{file} has no list column; name the list to import into with --list SLUG"
        )
    if send_confirmations and list_slug is None:
        raise NewsletterError("--send-confirmations needs the list: add --list SLUG")
    if send_confirmations:
        app_state.config.token_secret  # the links need it: fail before anything is written
    from ..store.schema import utcnow

    started = utcnow()
    report = ImportReport(
        file=str(file),
        list_slug=list_slug,
        dry_run=dry_run,
        encoding=csv_file.encoding,
        delimiter=csv_file.delimiter,
        format=csv_file.format,
    )
    app_state.store.subscribers.import_rows(
        csv_file.rows(statuses),
        report,
        list_slug=list_slug,
        source=f"import:{file.name}",
        secret=optional_secret(app_state),
        dry_run=dry_run,
        active_status=UNCONFIRMED if send_confirmations else CONFIRMED,
    )
    mailed = None
    if send_confirmations and not dry_run:
        pending = app_state.store.memberships.awaiting_confirmation(list_slug, started)
        from ..confirmation import send_confirmations

        mailed = send_confirmations(app_state.config, app_state.store, pending)
    if as_json:
        print_json(report.as_json() | ({"confirmations": asdict(mailed)} if mailed else {}))
        return
    for line in describe_import(report):
        click.echo(line)
    if mailed is not None:
        click.echo(f"Sent {mailed.sent} confirmation links.")
        for email, reply in mailed.refused:
            click.echo(f"  {email}: refused by the server: {reply}")


_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def describe_import(report: ImportReport) -> list[str]:
    target = f"into {report.list_slug}" if report.list_slug else "into the lists it names"
    layout = f"{report.format}, {report.encoding}, {_DELIMITER_NAMES[report.delimiter]}-separated"
    counts = (
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped"
    )
    head = "Dry run, nothing written: " if report.dry_run else ""
    lines = [f"{head}{report.file} ({layout}) {target}: {counts}."]
    lines += [
        f"  line {line}: {email or '(no address)'}: {reason}"
        for line, email, reason in report.skipped
    ]
    return lines


@subscribers_app.command("export")
def export_subscribers(
    ctx: typer.Context,
    list_slug: str = typer.Option(None, "--list", "-l", help="Only this list's members."),
    output: Path = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
) -> None:
    """Write subscribers as CSV (one row per membership); `import` reads it back."""
    from .. import exporter

    store = state(ctx).store
    if list_slug is not None:
        store.lists.get(list_slug)  # an unknown list is an error before anything is written
    listings = store.subscribers.listing(list_slug)
    if output is None:
        exporter.write_export(sys.stdout, listings, list_slug)
        return
    count = exporter.write_export_file(output, listings, list_slug)
    click.echo(f"Wrote {count} row(s) to {output}.")


@subscribers_app.command("ls")
def list_subscribers(
    ctx: typer.Context,
    list_slug: str = typer.Option(None, "--list", "-l", help="Only this list's members."),
    status: ListStatus = typer.Option(None, "--status", help="Only subscribers with this status."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List subscribers with their status and lists."""
    listings = state(ctx).store.subscribers.listing(list_slug, status.value if status else None)
    if as_json:
        print_json([item.as_json() for item in listings])
        return
    rows = [
        [
            item.email,
            item.name,
            item.status,
            ", ".join(item.lists),
            item.bounces,
            item.created_at.strftime("%Y-%m-%d"),
        ]
        for item in listings
    ]
    if not rows:
        click.echo("No subscribers match.")
        return
    print_table(
        None, ["Email", "Name", "Status", "Lists", "Bounces", "Created"], rows, whole=("Email",)
    )


@subscribers_app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The address to unsubscribe."),
    list_slug: str = typer.Option(None, "--list", "-l", help="Only from this list (default: all)."),
) -> None:
    """Unsubscribe an address from one list, or from all of them."""
    left = state(ctx).store.memberships.unsubscribe(email, list_slug, source="cli")
    if left:
        click.echo(f"Unsubscribed {email} from {', '.join(left)}.")
    elif list_slug is not None:
        click.echo(f"{email} was already unsubscribed from {list_slug}.")
    else:
        click.echo(f"{email} is not subscribed to any list.")


@subscribers_app.command("block")
def block(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="EMAIL|@DOMAIN", help="An address, or @domain."),
    reason: str = typer.Option("", "--reason", help="Why (kept with the block)."),
) -> None:
    """Put an address or a whole domain on the suppression list: never mailed again."""
    suppression = state(ctx).store.suppressions.block(target, reason)
    if suppression.kind == SUPPRESS_DOMAIN:
        click.echo(f"Blocked @{suppression.value}: no address there will be mailed.")
    else:
        click.echo(f"Blocked {suppression.value}: it will not be mailed again.")


@subscribers_app.command("unblock")
def unblock(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="EMAIL|@DOMAIN", help="An address, or @domain."),
) -> None:
    """Take an address or domain off the suppression list (and lift a forget)."""
    app_state = state(ctx)
    removed = app_state.store.suppressions.unblock(target, secret=optional_secret(app_state))
    click.echo(f"Unblocked {target}." if removed else f"{target} was not blocked.")


@subscribers_app.command("suppressions")
def suppressions_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Blocked addresses and domains, with their reasons (never mailed)."""
    blocks = [s for s in state(ctx).store.suppressions.all() if s.kind != SUPPRESS_FORGOTTEN]
    if as_json:
        print_json([block.as_json() for block in blocks])
        return
    if not blocks:
        click.echo("Nothing is blocked.")
        return
    print_table(
        None,
        ["Blocked", "Kind", "Reason", "Since"],
        [
            [
                f"@{block.value}" if block.kind == SUPPRESS_DOMAIN else block.value,
                block.kind,
                block.reason,
                block.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for block in blocks
        ],
        whole=("Blocked",),
    )


@subscribers_app.command("forget")
def forget(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The person's address."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Erase a person's data; keep only a keyed hash so an import cannot bring them back."""
    app_state = state(ctx)
    secret = app_state.config.token_secret
    confirm(f"Erase {email} and everything recorded about them? This cannot be undone.", yes)
    if app_state.store.subscribers.forget(email, secret=secret):
        click.echo(f"Forgot {email}: their data is erased; only a keyed hash remains.")
    else:
        click.echo(f"No subscriber {email}; a keyed hash now keeps the address from imports.")
