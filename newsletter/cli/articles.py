"""Commands for editors: what the next issue carries, and its preview."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click
import typer

from ..compose import next_issue
from ..errors import NewsletterError
from ..files import replaced_on_success
from ..render import PersonalTemplate, NEUTRAL_VALUES, render_issue, write_preview
from .app import app, print_json, print_table, state, warn


@app.command("articles")
def articles_command(
    ctx: typer.Context,
    digest: str = typer.Argument(None, help="The digest whose next issue to show (default: the first)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List the articles the digest's next issue would carry."""
    app_state = state(ctx)
    settings = app_state.config.digest(digest or app_state.config.first_digest_name())
    digest = settings.name
    content = next_issue(app_state.config, settings, app_state.store, warn)
    if as_json:
        print_json([article.as_json() for article in content.articles])
        return
    if not content.articles:
        click.echo(f"No new articles for {digest} in the last {settings.lookback_days} days.")
        return
    print_table(
        f"{digest}: {content.subject}",
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
    """Render the digest's next issue without sending it."""
    app_state = state(ctx)
    settings = app_state.config.digest(digest)
    content = next_issue(app_state.config, settings, app_state.store, warn)
    if not content.articles:
        warn(f"no new articles for {digest} in the last {settings.lookback_days} days")
    rendered = render_issue(app_state.config, settings, content)
    for message in rendered.warnings:
        warn(message)
    count = len(content.articles)
    summary = f"({count} article{'s' * (count != 1)}, subject: {content.subject})"
    if text:
        text_part = PersonalTemplate(rendered.text, escape_html=False).fill(NEUTRAL_VALUES)
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
