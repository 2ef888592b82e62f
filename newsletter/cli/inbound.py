"""Commands: `newsletter inbound process | fetch | receive`: bounces, complaints and mailto
unsubscribes coming in (newsletter/inbound/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer

from ..errors import NewsletterError, UsageError
from .app import command_group, print_json, state
from .service import MAX_PORT

if TYPE_CHECKING:
    from ..inbound.process import Processed

# newsletter.inbound (flufl.bounce, imaplib, aiosmtpd) is imported by the commands that use
# it: every other command starts that much faster.

inbound_app = command_group(
    "inbound", "Read bounces, complaints and mailto unsubscribes, and apply the bounce policy."
)

STDIN = "-"


@inbound_app.command("process")
def process_command(
    ctx: typer.Context,
    files: list[str] = typer.Argument(
        None, metavar="[FILE]...", help="One message per file; none, or -, reads one from stdin."
    ),
    recipient: str = typer.Option(
        None, "--recipient", metavar="ADDRESS", help="The envelope recipient (as an MTA's pipe gives it)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Classify each message (bounce, complaint, unsubscribe, autoreply, unknown) and act on it."""
    from ..inbound.process import process_message

    app_state = state(ctx)
    config = app_state.config
    config.token_secret  # noqa: B018  (tokens are checked with it: fail before reading anything)
    messages = [(name, _read(name)) for name in (files or [STDIN])]
    results: list[Processed] = []
    for name, raw in messages:
        source = "inbound:stdin" if name == STDIN else f"inbound:{Path(name).name}"
        results.append(
            process_message(config, app_state.store, raw, name=name, source=source, recipient=recipient)
        )
    if as_json:
        print_json([result.as_json() for result in results])
        return
    for result in results:
        click.echo(result.line())


def _read(name: str) -> bytes:
    if name == STDIN:
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise NewsletterError(f"cannot read {name}: {exc.strerror or exc}; give a file holding one message") from None


@inbound_app.command("fetch")
def fetch_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Process every message in the [inbound] IMAP folder, moving each one to
    processed_folder once it is done."""
    from ..inbound.imap import fetch

    app_state = state(ctx)
    results = fetch(app_state.config, app_state.store)
    if as_json:
        print_json([result.as_json() for result in results])
        return
    for result in results:
        click.echo(result.line())
    click.echo(f"Processed {len(results)} message(s).")


@inbound_app.command("receive")
def receive_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(2525, help="Port to listen on (1-65535)."),
) -> None:
    """Run an LMTP server an MTA delivers the bounce and unsubscribe addresses to."""
    if not 1 <= port <= MAX_PORT:
        raise UsageError(f"--port {port}: use a port from 1 to {MAX_PORT}")
    from ..inbound.lmtp import serve

    app_state = state(ctx)
    app_state.config.token_secret  # noqa: B018  (every message needs it: fail now)
    serve(app_state.config, app_state.store, host, port)
