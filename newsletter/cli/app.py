"""The Typer application and what every command shares: config, store, output, errors.

The CLI is thin: it parses arguments, calls the library, prints. The library raises
NewsletterError subclasses; `NewsletterGroup` turns them into one line on stderr and
exit code 1, never a traceback.

Every command module imports the library inside its commands, not at the top: `newsletter
--help` or `lists ls` must not pay for Jinja2, MJML, premailer, the feed parser or
APScheduler (tests/test_startup.py checks what `--help` imports).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import click
import typer
from typer.core import TyperGroup

from ..errors import NewsletterError, SecretError

if TYPE_CHECKING:
    from rich.console import Console

    from ..config import Config
    from ..store import Store


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
    # Plain help and usage errors (click's), not rich's: rich's help costs more to load
    # than the rest of the command line together.
    rich_markup_mode=None,
)


def command_group(name: str, help: str | None = None, *, no_args_is_help: bool = True) -> typer.Typer:
    """A group of subcommands (`newsletter NAME ...`), with help as plain as the app's."""
    group = typer.Typer(help=help, no_args_is_help=no_args_is_help, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


class AppState:
    """Loaded lazily, so `--help` and argument errors never touch the config or database."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        from ..config import load_config

        return load_config(self.config_path)

    @cached_property
    def store(self) -> Store:
        from ..store import open_store

        return open_store(self.config)


def show_version(wanted: bool) -> None:
    if wanted:
        click.echo(f"newsletter {importlib.metadata.version('newsletter')}")
        raise typer.Exit()


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
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = AppState(config)


def optional_secret(app_state: AppState) -> bytes | None:
    """The token secret if it is set: the store needs it only to recognise forgotten
    addresses, and says so itself when there are some."""
    try:
        return app_state.config.token_secret
    except SecretError:
        return None


def state(ctx: typer.Context) -> AppState:
    return ctx.find_root().obj  # type: ignore[no-any-return]


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning line on stderr (a skipped file, a preview check)."""
    click.echo(f"Warning: {message}", err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# A column that is not kept whole gets at least this many characters on a terminal.
_NARROWEST_COLUMN = 6
# Tab and every line boundary str.splitlines knows: each would split a tab-separated row.
_SEPARATORS_AS_SPACES = str.maketrans(dict.fromkeys("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _print_separated(title: str | None, columns: list[str], cells: list[list[str]]) -> None:
    if title:
        click.echo(title, err=True)
    for line in [columns, *cells]:
        click.echo("\t".join(text.translate(_SEPARATORS_AS_SPACES) for text in line))


def print_table(
    title: str | None, columns: list[str], rows: list[list[Any]], *, whole: tuple[str, ...] = ()
) -> None:
    """Every listing's output. On a terminal, a table whose cells wrap but are never cut,
    and whose `whole` columns (addresses) never even wrap. Anywhere else (a pipe, a file),
    and on a terminal too narrow for the whole columns: tab-separated values, a header line
    first, every value whole on its line (a tab or line break in a value becomes a space);
    the title then goes to stderr, so stdout stays one table."""
    cells = [[_cell_text(value) for value in row] for row in rows]
    if not sys.stdout.isatty():  # a pipe or a file: no need to load rich at all
        _print_separated(title, columns, cells)
        return
    from rich.cells import cell_len
    from rich.table import Table

    output = console()
    widths = [max(cell_len(text) for text in column) for column in zip(columns, *cells)]
    kept = [i for i, column in enumerate(columns) if column in whole]
    needed = sum(widths[i] for i in kept) + _NARROWEST_COLUMN * (len(columns) - len(kept))
    if not output.is_terminal or needed + 3 * len(columns) + 1 > output.width:
        _print_separated(title, columns, cells)
        return
    table = Table(title=title, show_lines=False)
    for i, column in enumerate(columns):
        if i in kept:
            table.add_column(column, no_wrap=True, min_width=widths[i])
        else:
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    output.print(table)


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value)


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
