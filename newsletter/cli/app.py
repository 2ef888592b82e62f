"""The Typer application and what every command shares: config, store, output, errors.

The CLI is thin: it parses arguments, calls the library, prints. The library raises
NewsletterError subclasses; `NewsletterGroup` turns them into one line on stderr and
exit code 1, never a traceback.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from ..config import Config, load_config
from ..errors import NewsletterError
from ..store import Store, open_store


class NewsletterGroup(TyperGroup):
    """Turns the project's own errors into `Error: ...` on stderr and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            click.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None  # typer's own Exit: click's is not caught by typer


app = typer.Typer(
    cls=NewsletterGroup,
    help="Compose a digest of recent articles and mail it to a list's subscribers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class AppState:
    """Loaded lazily, so `--help` and argument errors never touch the config or database."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    @cached_property
    def store(self) -> Store:
        return open_store(self.config.database)


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Path = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default: $NEWSLETTER_CONFIG or ./config.toml).",
        show_default=False,
    ),
) -> None:
    ctx.obj = AppState(config)


def state(ctx: typer.Context) -> AppState:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning line on stderr (a skipped file, a preview check)."""
    click.echo(f"Warning: {message}", err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask before doing something that cannot be undone; --yes answers for the user."""
    if assume_yes:
        return
    try:
        agreed = typer.confirm(question, default=False)
    except (click.Abort, typer.Abort):
        agreed = False
    if not agreed:
        raise NewsletterError("not confirmed; nothing was done (pass --yes to skip the question)")
