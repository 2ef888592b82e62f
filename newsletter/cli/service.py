"""Commands for the long-running side: the schedule, the scheduler daemon, the web server."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime
from types import FrameType

import click
import typer

from ..errors import UsageError
from .app import app, command_group, print_json, print_table, state

# APScheduler, Starlette and uvicorn are imported by the commands that use them: every
# other command starts that much faster.

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_PORT = 65535


schedule_app = command_group("schedule", no_args_is_help=False)


@schedule_app.callback(invoke_without_command=True)
def schedule_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List each digest's schedule, review mail and next run times, the sends waiting for
    approval, and the one-off sends and retries waiting (`schedule cancel ID` takes one off)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..jobstore import planned_runs

    app_state = state(ctx)
    config = app_state.config
    app_state.store  # noqa: B018  (the jobs live in its database: create and migrate it first)
    runs = planned_runs(config)
    now = datetime.now(config.newsletter.tz)
    if as_json:
        print_json([run.as_json(now) for run in runs])
        return
    rows = []
    for run in runs:
        when = "-"
        if run.next_run is not None:
            when = run.next_run.astimezone(config.newsletter.tz).strftime("%Y-%m-%d %H:%M %Z")
            if run.overdue(now):
                when += " (overdue: runs when `newsletter run` starts, within the grace time)"
        schedule = {"once": "(one-off)", "retry": "(retry)"}.get(run.kind, run.schedule or "(no schedule)")
        rows.append([run.digest, run.kind, schedule, when, run.job_id or "-"])
    print_table(None, ["Digest", "Kind", "Schedule", "Next run", "ID"], rows)


@schedule_app.command("cancel")
def cancel_command(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="ID", help="The job's id, as `schedule --json` shows it."),
) -> None:
    """Cancel a waiting one-off send (`send --at`) or retry."""
    from ..jobstore import cancel

    app_state = state(ctx)
    app_state.store  # noqa: B018  (the jobs live in its database)
    run = cancel(app_state.config, job_id)
    click.echo(f"Cancelled {run.kind} send of {run.digest} at {run.schedule}.")


@app.command("run")
def run_command(ctx: typer.Context) -> None:
    """Run the scheduler in the foreground: each digest's schedule and one-off sends.

    SIGTERM or Ctrl-C stops it after the messages in flight; an interrupted issue resumes
    at the next run (or with `newsletter send DIGEST`).
    """
    from ..scheduler import Daemon

    app_state = state(ctx)
    config = app_state.config
    config.token_secret  # noqa: B018  (every send needs it: fail now, not at 8 o'clock)
    if config.inbound is not None:  # the mailbox is polled: its password too
        config.secret(config.inbound.password_env, f"the IMAP password for {config.inbound.username!r}")
    app_state.store  # noqa: B018  (create and migrate the database the jobs live in)
    daemon = Daemon(config)  # a bad crontab is one error line here, before anything runs
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("newsletter.scheduler").info(
            "%s received: stopping after the messages in flight", signal.Signals(signum).name
        )
        daemon.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.run()
    logging.getLogger("newsletter.scheduler").info("scheduler stopped")


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, help="Port to listen on (1-65535)."),
) -> None:
    """Answer the links in the emails: unsubscribe, confirm, subscribe form, archive."""
    if not 1 <= port <= MAX_PORT:
        raise UsageError(f"--port {port}: use a port from 1 to {MAX_PORT}")
    import uvicorn

    from ..web import SERVER_OPTIONS, create_app

    app_state = state(ctx)
    web_app = create_app(app_state.config, app_state.store)
    uvicorn.run(web_app, host=host, port=port, log_level="info", **SERVER_OPTIONS)
