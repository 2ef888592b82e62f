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
from typing import TYPE_CHECKING

from ..errors import NewsletterError
from .app import AppState, app, confirm, console, optional_secret, print_json, print_table, state, warn

if TYPE_CHECKING:
    from ..config import Config
    from ..sending import NewIssue, ResumeIssue, SendProgress, SendReport
    from ..store import Store

FIRST_RECIPIENTS = 10
AT_FORMAT = "%Y-%m-%d %H:%M"


@app.command("send")
def send_command(
    ctx: typer.Context,
    digest: str = typer.Argument(..., help="The digest to send, as named in the config."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent; send nothing."),
    to: list[str] = typer.Option(
        None, "--to", metavar="EMAIL", help="Send a test copy to EMAIL only (repeat for several); records nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    at: str = typer.Option(
        None, "--at", metavar="'YYYY-MM-DD HH:MM'", help="Send later (newsletter time zone); `newsletter run` does it."
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Sender processes (default: [delivery] workers, \"auto\": one per core)."
    ),
) -> None:
    """Send the digest's next issue: its draft as it stands (approved, where approval is
    required), else composed now; or resume an unfinished one."""
    app_state = state(ctx)
    config = app_state.config
    if at is not None:
        if to or dry_run:
            raise NewsletterError(
                f"--at cannot be combined with {'--to' if to else '--dry-run'}: a scheduled send "
                "mails the whole list; send the test copy or the dry run now, without --at"
            )
        schedule_later(config, digest, at)
        return
    from .. import addresses
    from ..sending import IssuePaused, NewIssue, NothingNew, prepare_send, send_test_copy

    test_addresses = [addresses.parse(email).email for email in to or []]
    plan = prepare_send(config, app_state.store, digest, warn)
    if isinstance(plan, NothingNew):
        click.echo(f"{plan.reason[:1].upper()}{plan.reason[1:]}; nothing to send.")
        return
    if test_addresses:
        refuse_suppressed(app_state, test_addresses)
        send_test_copy(config, plan, test_addresses)
        click.echo(
            f"Sent a test copy of issue #{plan.number} ({plan.subject}) to {', '.join(test_addresses)}; "
            "nothing recorded."
        )
        return
    if dry_run:
        show_plan(plan, app_state.store.issues.first_recipients(plan.list.id, FIRST_RECIPIENTS))
        return
    if isinstance(plan, NewIssue):
        plan.check_sendable()
    confirm(question(plan), yes)
    with stop_on_signals() as stop:
        try:
            report = run_with_progress(config, app_state.store, plan, stop, workers)
        except IssuePaused as exc:
            click.echo(str(exc.report))
            raise
    click.echo(str(report))
    if report.status == "stopped":
        raise typer.Exit(1)  # not finished: a script must not take it for done


def refuse_suppressed(app_state: AppState, emails: list[str]) -> None:
    """A test copy never goes to an address the list must not mail."""
    for email in emails:
        if app_state.store.suppressions.is_suppressed(email, optional_secret(app_state)):
            raise NewsletterError(
                f"not sending a test copy to {email}: it is on the suppression list (blocked or "
                f"forgotten); pick another address, or lift it with `newsletter subscribers unblock {email}`"
            )


@app.command("worker")
def worker_command(
    ctx: typer.Context,
    issue: int = typer.Option(None, "--issue", metavar="ID", help="Join this issue only, and leave when it is sent."),
    connections: int = typer.Option(
        None, "--connections", min=1, help="SMTP connections of this worker (default: [smtp] connections)."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --issue: print the report as JSON."),
) -> None:
    """Join whatever issue is being sent (one after another) beside its other senders,
    here or on other machines sharing the database; SIGTERM or Ctrl-C stops it after
    its messages in flight."""
    from ..sending.worker import serve, with_connections, work_on

    app_state = state(ctx)
    config = app_state.config
    if connections is not None:
        config = with_connections(config, connections)
    with stop_on_signals(quiet=True) as stop:
        if issue is None:
            serve(config, app_state.store, stop, click.echo)
            return
        report = work_on(config, app_state.store, app_state.store.issues.get(issue), stop=stop)
    if as_json:
        print_json(report.as_json())
    else:
        click.echo(report.worker_line())


def schedule_later(config: Config, digest: str, at: str) -> None:
    try:
        when = datetime.strptime(at.strip(), AT_FORMAT)
    except ValueError:
        raise NewsletterError(f'--at {at!r}: use "YYYY-MM-DD HH:MM" (in the newsletter time zone)') from None
    from ..jobstore import schedule_one_off  # APScheduler: only here

    job_id = schedule_one_off(config, digest, when)
    click.echo(
        f"Scheduled {digest} for {when:%Y-%m-%d %H:%M} {config.newsletter.timezone} (job {job_id}); "
        "`newsletter run` sends it then."
    )


def question(plan: NewIssue | ResumeIssue) -> str:
    from ..sending import ResumeIssue

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
    from ..sending import NewIssue, ResumeIssue

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
    config: Config, store: Store, plan: NewIssue | ResumeIssue, stop: threading.Event, workers: int | None
) -> SendReport:
    """A live progress bar on a terminal; in a log or a pipe only the summary that follows."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..sending import execute

    output = console()
    if not output.is_terminal:
        return execute(config, store, plan, workers=workers, stop=stop)
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

        return execute(config, store, plan, workers=workers, progress=update, stop=stop)


@contextmanager
def stop_on_signals(*, quiet: bool = False) -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM: finish the messages in flight, leave the issue resumable."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set() and not quiet:
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
