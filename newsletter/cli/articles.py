"""Commands for editors: what the next issue carries, and its preview (its draft, when
there is one)."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click
import typer

from typing import TYPE_CHECKING

from ..errors import NewsletterError
from ..files import replaced_on_success
from .app import app, print_json, print_table, state, warn

if TYPE_CHECKING:
    from ..config import DigestSettings
    from ..store.drafts import DraftRecord


@app.command("articles")
def articles_command(
    ctx: typer.Context,
    digest: str = typer.Argument(None, help="The digest whose next issue to show (default: the first)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List the articles the digest's next issue would carry (its draft's, if it has one)."""
    app_state = state(ctx)
    settings = app_state.config.digest(digest or app_state.config.first_digest_name())
    digest = settings.name
    from ..drafting import current_issue

    content, draft = current_issue(app_state.config, settings, app_state.store, warn)
    if as_json:
        print_json([article.as_json() for article in content.articles])
        return
    if not content.articles:
        reason = nothing_to_show(settings, draft)
        click.echo(f"{reason[:1].upper()}{reason[1:]}.")
        return
    origin = "" if draft is None else f" (draft of issue #{draft.number}: {draft.status})"
    print_table(
        f"{digest}: {content.subject}{origin}",
        ["Published", "Title", "Authors", "Source"],
        [
            [
                a.published.astimezone(app_state.config.newsletter.tz).strftime("%Y-%m-%d %H:%M"),
                a.title,
                ", ".join(author.name for author in a.authors),
                a.source,
            ]
            for a in content.articles
        ],
    )


def nothing_to_show(settings: DigestSettings, draft: DraftRecord | None) -> str:
    if draft is not None:
        return f"the draft of issue #{draft.number} of {settings.name} carries no article (all excluded)"
    return f"no new articles for {settings.name} in the last {settings.lookback_days} days"


@app.command("preview")
def preview_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest to preview."),
    output: Path = typer.Option(
        None, "-o", "--output", help="Write to this file (default: preview.html; with --text: stdout)."
    ),
    text: bool = typer.Option(False, "--text", help="The text/plain part instead of the HTML."),
    open_browser: bool = typer.Option(False, "--open", help="Open the HTML in a browser."),
) -> None:
    """Render the digest's next issue (its draft, if it has one) without sending it."""
    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    from ..drafting import current_issue
    from ..render import render_issue, write_preview

    content, draft = current_issue(app_state.config, settings, app_state.store, warn)
    if not content.articles:
        warn(nothing_to_show(settings, draft))
    rendered = render_issue(app_state.config, settings, content)
    for message in rendered.warnings:
        warn(message)
    count = len(content.articles)
    origin = "" if draft is None else f"draft of issue #{draft.number}, {draft.status}, "
    summary = f"({origin}{count} article{'s' * (count != 1)}, subject: {content.subject})"
    if text:
        text_part = rendered.markers.neutral(rendered.text, escape_html=False)
        if output is None:
            click.echo(text_part)
            return
        with replaced_on_success(output) as handle:
            handle.write(text_part)
        click.echo(f"Wrote the text part to {output} {summary}")
        return
    target = output or Path("preview.html")
    try:
        write_preview(target, rendered)
    except OSError as exc:
        raise NewsletterError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(f"Wrote {target} {summary}")
    if open_browser:
        webbrowser.open(target.resolve().as_uri())
