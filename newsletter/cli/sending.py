"""Commands: send a digest's issue (now, as a test copy, or later), and the history of issues."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType

import click
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import Config
from ..errors import NewsletterError
from ..sending import (
    IssuePaused,
    NewIssue,
    NothingNew,
    ResumeIssue,
    SendProgress,
    SendReport,
    execute,
    prepare_send,
    send_test_copy,
)
from ..store import Store
from .app import app, confirm, console, print_json, print_table, state, warn

FIRST_RECIPIENTS = 10
AT_FORMAT = "%Y-%m-%d %H:%M"


@app.command("send")
def send_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest to send, as named in the config."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent; send nothing."),
    to: str = typer.Option(None, "--to", metavar="EMAIL", help="Send one test copy to EMAIL only."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    at: str = typer.Option(
        None, "--at", metavar="'YYYY-MM-DD HH:MM'", help="Send later (newsletter time zone); `newsletter run` does it."
    ),
) -> None:
    """Send the digest's next issue: its draft as it stands (approved, where approval is
    required), else composed now; or resume an unfinished one."""
    app_state = state(ctx)
    config = app_state.config
    if at is not None:
        schedule_later(config, digest, at)
        return
    plan = prepare_send(config, app_state.store, digest, warn)
    if isinstance(plan, NothingNew):
        click.echo(f"{plan.reason[:1].upper()}{plan.reason[1:]}; nothing to send.")
        return
    if to is not None:
        send_test_copy(config, plan, to)
        click.echo(f"Sent a test copy of issue #{plan.number} ({plan.subject}) to {to}; nothing recorded.")
        return
    if dry_run:
        show_plan(plan, app_state.store.issues.first_recipients(plan.list.id, FIRST_RECIPIENTS))
        return
    if isinstance(plan, NewIssue):
        plan.check_sendable()
    confirm(question(plan), yes)
    with stop_on_signals() as stop:
        try:
            report = run_with_progress(config, app_state.store, plan, stop)
        except IssuePaused as exc:
            click.echo(str(exc.report))
            raise
    click.echo(str(report))
    if report.status == "stopped":
        raise typer.Exit(1)  # not finished: a script must not take it for done


def schedule_later(config: Config, digest: str, at: str) -> None:
    try:
        when = datetime.strptime(at.strip(), AT_FORMAT)
    except ValueError:
        raise NewsletterError(f'--at {at!r}: use "YYYY-MM-DD HH:MM" (in the newsletter time zone)') from None
    from ..scheduler import schedule_one_off  # the scheduler pulls in APScheduler: only here

    job_id = schedule_one_off(config, digest, when)
    click.echo(
        f"Scheduled {digest} for {when:%Y-%m-%d %H:%M} {config.newsletter.timezone} (job {job_id}); "
        "`newsletter run` sends it then."
    )


def question(plan: NewIssue | ResumeIssue) -> str:
    if isinstance(plan, ResumeIssue):
        return f"Resume issue #{plan.number} of {plan.digest.name} ({plan.subject}): {plan.recipients} deliveries left?"
    return (
        f"Send issue #{plan.number} of {plan.digest.name} ({plan.subject}, "
        f"{_count(plan.article_count, 'article')}) to {_count(plan.recipients, 'subscriber')} "
        f"of {plan.list.slug}?"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def show_plan(plan: NewIssue | ResumeIssue, first: list[str]) -> None:
    action = "Would resume" if isinstance(plan, ResumeIssue) else "Would send"
    click.echo(f"{action} issue #{plan.number} of {plan.digest.name} to list {plan.list.slug}.")
    click.echo(f"Subject: {plan.subject}")
    if isinstance(plan, NewIssue):
        click.echo(f"Articles: {plan.article_count}")
        click.echo(f"Recipients: {plan.recipients}")
    else:
        click.echo(f"Deliveries left: {plan.recipients}")
    if first:
        shown = ", ".join(first)
        more = f" and {plan.recipients - len(first)} more" if plan.recipients > len(first) else ""
        click.echo(f"First recipients: {shown}{more}")
    click.echo("Dry run: nothing was sent or recorded.")


def run_with_progress(
    config: Config, store: Store, plan: NewIssue | ResumeIssue, stop: threading.Event
) -> SendReport:
    """A live progress bar on a terminal; in a log or a pipe only the summary that follows."""
    output = console()
    if not output.is_terminal:
        return execute(config, store, plan, stop=stop)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]} · {task.fields[rate]:.0f}/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=output, transient=False) as bar:
        task = bar.add_task(f"#{plan.number} {plan.digest.name}", total=None, sent=0, failed=0, rate=0.0)

        def update(progress: SendProgress) -> None:
            bar.update(
                task,
                total=progress.total,
                completed=progress.done,
                sent=progress.sent,
                failed=progress.failed,
                rate=progress.rate,
            )

        return execute(config, store, plan, progress=update, stop=stop)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM: finish the messages in flight, leave the issue resumable."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            click.echo("Stopping after the messages in flight; `send` again resumes.", err=True)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("history")
def history_command(
    ctx: typer.Context,
    digest: str = typer.Argument(None, help="Only this digest's issues."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Issues sent so far, newest first, with their delivery counts."""
    app_state = state(ctx)
    summaries = app_state.store.issues.history(digest)
    if as_json:
        print_json([summary.as_json() for summary in summaries])
        return
    if not summaries:
        click.echo(f"No issues of {digest} yet." if digest else "No issues yet.")
        return
    print_table(
        None,
        ["Issue", "Subject", "Created", "Status", "Sent", "Failed", "Skipped", "Pending"],
        [
            [
                f"{s.digest} #{s.number}",
                s.subject,
                s.created_at.astimezone(app_state.config.newsletter.tz).strftime("%Y-%m-%d %H:%M"),
                s.status if s.paused_reason is None else f"{s.status}: {s.paused_reason}",
                s.counts.sent,
                s.counts.failed,
                s.counts.skipped,
                s.counts.pending,
            ]
            for s in summaries
        ],
    )
