"""Commands for editors: compose, edit, approve and review the draft of a digest's next issue."""

from __future__ import annotations

import getpass
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import typer

from ..errors import NewsletterError, UsageError
from .app import app, print_json, state, warn

if TYPE_CHECKING:
    from ..config import Config, DigestSettings
    from ..store import Store
    from ..store.drafts import DraftArticle, DraftRecord

MAX_NAME = 200  # the store's approved_by and history actor columns
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def who() -> str:
    """Who the history names for a change made from this terminal."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@app.command("draft")
def draft_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest whose next issue to draft."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Compose the next issue as a draft, or refresh the draft: new articles are added in
    their place, the editor's choices are kept."""
    from ..drafting import compose_or_refresh

    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    record = compose_or_refresh(app_state.config, settings, app_state.store, warn, actor=who())
    if record is None:
        click.echo(f"No new articles for {digest} in the last {settings.lookback_days} days; no draft composed.")
        return
    after_change(app_state.config, app_state.store, settings, record)
    show_draft(app_state.store, record, as_json)


@app.command("edit")
def edit_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest whose draft to change."),
    exclude: list[str] = typer.Option([], "--exclude", metavar="ID", help="Leave this article out."),
    include: list[str] = typer.Option([], "--include", metavar="ID", help="Bring an excluded article back."),
    move: list[str] = typer.Option(
        [], "--move", metavar="ID:POSITION", help="Put the article at this position (from 1)."
    ),
    pin: str = typer.Option(None, "--pin", metavar="ID", help="Make the article lead the issue and its subject."),
    unpin: bool = typer.Option(False, "--unpin", help="No article is pinned any more."),
    subject: str = typer.Option(None, "--subject", metavar="TEXT", help='The subject ("" goes back to the template).'),
    note: str = typer.Option(None, "--note", metavar="FILE|-", help="The editor's note, Markdown, from FILE or stdin (empty removes it)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Change the draft: --exclude, --include, --unpin, --pin, --move in that order, then
    --subject and --note; all or nothing. Any change to an approved draft returns it to
    `draft`."""
    from ..drafting import DraftEdit, edit_draft

    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    edit = DraftEdit(
        exclude=exclude,
        include=include,
        pin=pin,
        unpin=unpin,
        moves=[parse_move(value) for value in move],
        subject=subject,
        note=None if note is None else read_note(note),
    )
    record = edit_draft(app_state.config, settings, app_state.store, edit, actor=who())
    after_change(app_state.config, app_state.store, settings, record)
    show_draft(app_state.store, record, as_json)


@app.command("approve")
def approve_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest whose draft to approve."),
    by: str = typer.Option(None, "--by", metavar="NAME", help="Who approves (default: your user name)."),
) -> None:
    """Approve the draft as it stands (who, when and its content hash are recorded)."""
    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    name = one_line(by or who())
    if not name or len(name) > MAX_NAME:
        raise UsageError(f"--by {by!r}: give the approver's name (1 to {MAX_NAME} characters)")
    record, newly = app_state.store.drafts.approve(settings.name, name)
    if not newly:
        click.echo(f"{label(record)} was already approved by {record.approved_by}; nothing changed.")
        return
    click.echo(
        f"Approved {record.label} ({one_line(record.content.subject)}) as {name}; "
        f"version {record.content_hash[:12]}. `newsletter send {digest}` or the scheduled run sends it."
    )


@app.command("review")
def review_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest whose draft to mail to its reviewers."),
) -> None:
    """Mail the draft to the digest's reviewers now, each with an Approve link."""
    from ..review import send_review

    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    report = send_review(app_state.config, app_state.store, settings, actor=who())
    if report.sent:
        click.echo(f"Mailed the draft of {digest} to {', '.join(report.sent)}.")
    for address, reply in report.refused:
        warn(f"the review mail to {address} was refused by the server: {reply}")
    if not report.sent:
        raise NewsletterError(f"no reviewer of {digest} accepted the review mail; see the lines above")


def after_change(config: Config, store: Store, digest: DigestSettings, record: DraftRecord) -> None:
    """The reviewers saw an earlier version: mail them this one. The change stands even
    when the mail cannot go out; the warning says how to send it later."""
    from ..review import review_again

    try:
        report = review_again(config, store, digest, record, actor=who())
    except NewsletterError as exc:
        warn(f"the new review mail could not be sent ({exc}); send it with `newsletter review {digest.name}`")
        return
    if report is not None and report.sent:
        click.echo(f"The reviewers had an earlier version: mailed this one to {', '.join(report.sent)}.", err=True)


def parse_move(value: str) -> tuple[str, int]:
    article_id, _, position = value.rpartition(":")
    if not article_id or not position.strip().lstrip("-").isdigit():
        raise UsageError(f"--move {value!r}: write ID:POSITION, such as --move 3f2a9c1d0b7e4a65:2")
    return article_id.strip(), int(position)


def read_note(source: str) -> str:
    """The note's Markdown from a file, or from stdin for `-`."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise UsageError(f"--note {source}: cannot read the file ({reason}); give a Markdown file, or - for stdin") from None


def show_draft(store: Store, record: DraftRecord, as_json: bool) -> None:
    if as_json:
        print_json(draft_json(store, record))
        return
    content = record.content
    click.echo(f"{label(record)}: {record.status}")
    if record.approved_by:
        click.echo(f"Approved by {one_line(record.approved_by)} at {record.approved_at:%Y-%m-%d %H:%M %Z}")
    click.echo(f"Subject: {one_line(content.subject)}")
    click.echo("Articles:")
    for position, entry in enumerate(content.included, start=1):
        pinned = " (pinned)" if entry.pinned else ""
        click.echo(f"  {position}. {entry.id}  {one_line(entry.article['title'])}{authors(entry)}{pinned}")
    if not content.included:
        click.echo("  none")
    for entry in content.excluded:
        click.echo(f"  excluded: {entry.id}  {one_line(entry.article['title'])}")
    click.echo("Note:" + ("" if content.note else " none"))
    for line in content.note.splitlines():
        click.echo("  " + _CONTROL.sub(" ", line))


def draft_json(store: Store, record: DraftRecord) -> dict[str, Any]:
    content = record.content
    return {
        "digest": record.digest,
        "number": record.number,
        "subject": content.subject,
        "subject_override": content.subject_override,
        "status": record.status,
        "note": content.note,
        "approved_by": record.approved_by,
        "approved_at": record.approved_at.isoformat() if record.approved_at else None,
        "content_hash": record.content_hash,
        "articles": [article_json(entry) for entry in content.included],
        "excluded": [article_json(entry) for entry in content.excluded],
        "history": [entry.as_json() for entry in store.drafts.history(record.id)],
    }


def article_json(entry: DraftArticle) -> dict[str, Any]:
    from ..drafting import from_snapshot

    article = from_snapshot(entry.article)
    return {
        "id": article.id,
        "title": article.title,
        "url": article.url,
        "authors": [author.name for author in article.authors],
        "published": article.published.isoformat(),
        "pinned": entry.pinned,
    }


def label(record: DraftRecord) -> str:
    return f"Issue #{record.number} of {record.digest}"


def authors(entry: DraftArticle) -> str:
    names = ", ".join(author["name"] for author in entry.article["authors"])
    return f" - {one_line(names)}" if names else ""


def one_line(text: str) -> str:
    """A value from an article or a person as one line of terminal output: control
    characters (escape sequences, line breaks) become spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())
