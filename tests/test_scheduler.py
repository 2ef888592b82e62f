"""The scheduler with real APScheduler triggers and job store, and the `schedule`/`run` commands."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Config, load_config
from newsletter.jobstore import job_store_session, schedule_one_off, sync_cron_jobs
from newsletter.scheduler import Daemon
from newsletter.schedules import crontab_triggers, standard_weekdays
from newsletter.sending import send_digest
from newsletter.store import Store
from smtp_server import SmtpTestServer, configure, generated_people, subscribe

BACKENDS = ("sqlite", "postgres")

SECRET = "scheduler-test-secret"
WAIT = 15.0


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


@pytest.fixture
def make_config(write_config: Callable[[str], Path]) -> Callable[..., Config]:
    """A config whose weekly digest has `schedule`, with a list of two subscribers."""

    def make(schedule: str | None = "0 8 * * *", grace: int = 3600, extra: str = "") -> Config:
        lines = [f'schedule = "{schedule}"'] if schedule else []
        path = write_config("\n".join(lines) + f"\n[scheduler]\nmisfire_grace_time = {grace}\n{extra}")
        config = load_config(path)
        store = Store(config.database.url)
        if not any(summary.list.slug == "weekly" for summary in store.lists.all()):
            store.lists.create("weekly", "Test Weekly")
            for address in ("alice@example.org", "bob@example.org"):
                store.subscribers.add(address, "weekly")
        store.close()
        return config

    return make


def sent_messages(config: Config) -> list[Path]:
    return sorted(config.delivery.outbox.rglob("*.eml")) if config.delivery.outbox.exists() else []


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running(daemon: Daemon) -> Iterator[None]:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_until(lambda: daemon.running, "the scheduler to start")
    try:
        yield
    finally:
        daemon.stop()
        thread.join(WAIT)
        assert not thread.is_alive()


def stored_next_run(config: Config, job_id: str) -> datetime | None:
    with job_store_session(config) as session:
        job = session.get_job(job_id)
        return None if job is None else job.next_run_time


def move_next_run(config: Config, job_id: str, when: datetime) -> None:
    """What a daemon that was down at `when` finds in the job store when it starts again."""
    with job_store_session(config) as session:
        session.modify_job(job_id, next_run_time=when)


def stored_cron_job(config: Config) -> None:
    with job_store_session(config) as session:
        sync_cron_jobs(session, config, crontab_triggers(config))


# -- crontab -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crontab", "meant"),
    [
        ("0 8 * * 1", "0 8 * * mon"),  # crontab(5): 1 is Monday (APScheduler 3 would say Tuesday)
        ("0 8 * * 0", "0 8 * * sun"),
        ("0 8 * * 7", "0 8 * * sun"),
        ("0 8 * * 1-5", "0 8 * * mon,tue,wed,thu,fri"),
        ("0 8 * * 5-7", "0 8 * * sun,fri,sat"),
        ("0 8 * * */2", "0 8 * * sun,tue,thu,sat"),
        ("0 8 * * mon-fri", "0 8 * * mon-fri"),
        ("0 8 * * 1,wed", "0 8 * * mon,wed"),
        ("0 8 * * *", "0 8 * * *"),
    ],
)
def test_weekday_numbers_mean_what_crontab_means(crontab: str, meant: str) -> None:
    assert standard_weekdays(crontab) == meant


def test_a_crontab_fires_in_the_newsletters_time_zone(make_config: Callable[..., Config], project: Path) -> None:
    config = make_config("30 8 * * 1")
    text = (project / "config.toml").read_text().replace('timezone = "UTC"', 'timezone = "Europe/Berlin"')
    (project / "config.toml").write_text(text)
    trigger = crontab_triggers(load_config(project / "config.toml"))["weekly"]

    # Sunday 2026-03-01 12:00 UTC -> Monday 2026-03-02 08:30 in Berlin (07:30 UTC).
    fire = trigger.get_next_fire_time(None, datetime(2026, 3, 1, 12, tzinfo=timezone.utc))
    assert fire.astimezone(timezone.utc) == datetime(2026, 3, 2, 7, 30, tzinfo=timezone.utc)
    assert config.digests["weekly"].schedule == "30 8 * * 1"


@pytest.mark.parametrize("command", ["schedule", "run"])
@pytest.mark.parametrize("crontab", ["0 25 * * *", "0 8 * *", "0 8 * * 9"])
def test_a_bad_crontab_is_one_line_naming_digest_and_value(
    make_config: Callable[..., Config], command: str, crontab: str
) -> None:
    config = make_config(crontab)

    result = CliRunner().invoke(app, ["--config", str(config.path), command])

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"Error: {config.path}: [digests.weekly].schedule: invalid crontab {crontab!r} ("
    )
    assert lines[0].endswith('use five fields, minute hour day month weekday, such as "0 8 * * mon"')


# -- the job store --------------------------------------------------------------------------


def test_schedule_lists_each_digest_and_the_one_off_sends(make_config: Callable[..., Config]) -> None:
    config = make_config(
        "0 8 * * 1",
        extra='[digests.monthly]\nlist = "weekly"\nsubject = "Monthly"\n',
    )
    when = datetime(2099, 12, 1, 8, 0)
    job_id = schedule_one_off(config, "monthly", when)

    result = CliRunner().invoke(app, ["--config", str(config.path), "schedule", "--json"])

    assert result.exit_code == 0, result.stderr
    now = datetime.now(timezone.utc)
    monday = (now + timedelta(days=(7 - now.weekday()) % 7)).replace(hour=8, minute=0, second=0, microsecond=0)
    if monday <= now:
        monday += timedelta(days=7)
    assert json.loads(result.stdout) == [
        {
            "digest": "weekly",
            "kind": "cron",
            "schedule": "0 8 * * 1",
            "next_run": monday.isoformat(),
            "overdue": False,
            "job_id": "digest:weekly",
        },
        {
            "digest": "monthly",
            "kind": "once",
            "schedule": "2099-12-01T08:00:00+00:00",
            "next_run": "2099-12-01T08:00:00+00:00",
            "overdue": False,
            "job_id": job_id,
        },
        {"digest": "monthly", "kind": "none", "schedule": None, "next_run": None, "overdue": False, "job_id": None},
    ]
    table = CliRunner().invoke(app, ["--config", str(config.path), "schedule"])
    assert f"{monday:%Y-%m-%d} 08:00 UTC" in table.stdout
    assert "2099-12-01 08:00 UTC" in table.stdout


def test_one_off_in_the_past_or_for_an_unknown_digest_is_refused(make_config: Callable[..., Config]) -> None:
    config = make_config()

    with pytest.raises(Exception, match="is in the past; give a future time"):
        schedule_one_off(config, "weekly", datetime(2020, 1, 1, 8, 0))
    with pytest.raises(Exception, match="no digest named 'nope'"):
        schedule_one_off(config, "nope", datetime(2099, 1, 1, 8, 0))


def test_restart_keeps_a_missed_run_but_a_changed_schedule_starts_afresh(
    make_config: Callable[..., Config], project: Path
) -> None:
    config = make_config("0 8 * * *")
    stored_cron_job(config)
    missed = datetime.now(timezone.utc) - timedelta(minutes=5)
    move_next_run(config, "digest:weekly", missed)

    stored_cron_job(config)
    assert stored_next_run(config, "digest:weekly") == missed

    changed = make_config("0 9 * * *")
    stored_cron_job(changed)
    next_run = stored_next_run(changed, "digest:weekly")
    assert next_run is not None and next_run > datetime.now(timezone.utc)
    assert (next_run.hour, next_run.minute) == (9, 0)

    unscheduled = make_config(None)
    stored_cron_job(unscheduled)
    assert stored_next_run(unscheduled, "digest:weekly") is None


# -- the daemon ----------------------------------------------------------------------------


def test_a_one_off_send_fires_at_its_time(make_config: Callable[..., Config]) -> None:
    config = make_config(None)
    when = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    schedule_one_off(config, "weekly", when)

    with running(Daemon(config)):
        assert sent_messages(config) == []
        wait_until(lambda: len(sent_messages(config)) == 2, "two messages")
        sent_at = min(path.stat().st_mtime for path in sent_messages(config))

    assert sent_at >= when.timestamp()
    with job_store_session(config) as session:
        assert session.get_jobs() == []


def test_a_missed_run_fires_on_restart_within_the_grace_time(make_config: Callable[..., Config]) -> None:
    config = make_config("0 8 * * *", grace=3600)
    stored_cron_job(config)
    move_next_run(config, "digest:weekly", datetime.now(timezone.utc) - timedelta(minutes=2))

    with running(Daemon(config)):
        wait_until(lambda: len(sent_messages(config)) == 2, "the missed run's two messages")

    next_run = stored_next_run(config, "digest:weekly")
    assert next_run is not None and next_run > datetime.now(timezone.utc)
    assert (next_run.hour, next_run.minute) == (8, 0)


def test_a_run_missed_by_more_than_the_grace_time_is_skipped(
    make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config("0 8 * * *", grace=30)
    stored_cron_job(config)
    move_next_run(config, "digest:weekly", datetime.now(timezone.utc) - timedelta(minutes=2))

    with caplog.at_level(logging.INFO), running(Daemon(config)):
        wait_until(
            lambda: (stored_next_run(config, "digest:weekly") or datetime.min.replace(tzinfo=timezone.utc))
            > datetime.now(timezone.utc),
            "the daemon to move past the missed run",
        )

    assert sent_messages(config) == []
    assert "was missed by" in caplog.text


def test_a_run_with_too_few_new_articles_sends_nothing(
    make_config: Callable[..., Config], project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(None)
    for article in (project / "articles").iterdir():
        article.unlink()
    schedule_one_off(config, "weekly", datetime.now(timezone.utc) + timedelta(seconds=0.5))

    with caplog.at_level(logging.INFO), running(Daemon(config)):
        wait_until(lambda: not _stored_jobs(config), "the one-off job to be taken")

    assert sent_messages(config) == []
    assert re.search(r"weekly: .*skipped", caplog.text), caplog.text
    store = Store(config.database.url)
    assert store.issues.next_number("weekly") == 1
    store.close()


def _stored_jobs(config: Config) -> list[str]:
    with job_store_session(config) as session:
        return [job.id for job in session.get_jobs()]


@pytest.mark.slow
def test_run_logs_with_timestamps_and_stops_cleanly_on_sigterm(make_config: Callable[..., Config]) -> None:
    config = make_config("0 8 * * *")
    process = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--config", str(config.path), "run"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NEWSLETTER_SECRET": SECRET},
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "scheduler started" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=WAIT)
    lines += rest.splitlines(keepends=True)

    assert process.returncode == 0, "".join(lines)
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) ")
    assert all(stamp.match(line) for line in lines), "".join(lines)
    text = "".join(lines)
    assert "weekly (0 8 * * *): next run" in text
    assert "SIGTERM received: stopping after the messages in flight" in text
    assert "scheduler stopped" in text


def test_stop_waits_for_the_messages_in_flight_and_leaves_the_issue_resumable(
    make_config: Callable[..., Config], project: Path, smtp_server: SmtpTestServer
) -> None:
    make_config(None)
    config = configure(project, smtp_server.config_toml(connections=1))
    store = Store(config.database.url)
    subscribe(store, "weekly", generated_people(18))
    smtp_server.hold_after(5)  # the sixth message stays in flight until release()
    schedule_one_off(config, "weekly", datetime.now(timezone.utc) + timedelta(seconds=0.2))
    daemon = Daemon(config)

    with running(daemon):
        wait_until(lambda: smtp_server.held == 1, "a message in flight")
        stopping = threading.Thread(target=daemon.stop)
        stopping.start()
        stopping.join(0.5)
        assert stopping.is_alive()  # it waits for the message in flight
        smtp_server.release()
        stopping.join(WAIT)
        assert not stopping.is_alive()

    [issue] = store.issues.history("weekly")
    assert issue.status == "sending"
    assert (issue.counts.sent, issue.counts.pending) == (5, 15)  # the held one was refused: 4xx
    send_digest(config, store, "weekly")
    assert sorted(smtp_server.per_recipient().values()) == [1] * 20
    store.close()


def test_two_daemons_on_one_database_send_a_one_off_issue_once(make_config: Callable[..., Config]) -> None:
    config = make_config(None)
    schedule_one_off(config, "weekly", datetime.now(timezone.utc) + timedelta(seconds=1))
    first, second = Daemon(config), Daemon(config)

    with running(first), running(second):
        wait_until(lambda: len(sent_messages(config)) == 2, "two messages")
        wait_until(lambda: not _stored_jobs(config), "the one-off job to be taken")
        time.sleep(0.3)
        assert first.running and second.running

    recipients = sorted(path.read_bytes().split(b"\r\nTo: ")[1].split(b"\r\n")[0] for path in sent_messages(config))
    assert recipients == [b"alice@example.org", b"bob@example.org"]


def test_an_unreachable_smtp_server_is_logged_and_the_daemon_keeps_running(
    make_config: Callable[..., Config], project: Path, smtp_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    make_config(None)
    config = configure(project, smtp_server.config_toml())
    smtp_server.stop()
    schedule_one_off(config, "weekly", datetime.now(timezone.utc) + timedelta(seconds=0.2))
    daemon = Daemon(config)

    with caplog.at_level(logging.INFO), running(daemon):
        wait_until(lambda: "ERROR" in caplog.text, "the error line")
        assert daemon.running

    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith("weekly: ")
    assert f"127.0.0.1:{smtp_server.port}" in line
    store = Store(config.database.url)
    assert store.issues.unfinished("weekly") is None  # nothing recorded: the next run starts afresh
    store.close()


def test_a_send_that_could_not_go_on_is_tried_again_by_itself(
    make_config: Callable[..., Config], project: Path, smtp_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    make_config(None, extra="retry_seconds = 0.5")
    config = configure(project, smtp_server.config_toml())
    smtp_server.refuse_sender("news@example.org", "554 5.7.1 Sender blocked for now")
    schedule_one_off(config, "weekly", datetime.now(timezone.utc) + timedelta(seconds=0.2))

    with caplog.at_level(logging.INFO), running(Daemon(config)):
        wait_until(lambda: "(retry 1)" in caplog.text, "the first retry to be planned")
        assert [job.id for job in _jobs(config)] == ["retry:weekly"]
        smtp_server.handler.sender_refusals.clear()  # the server accepts us again
        wait_until(lambda: len(smtp_server.messages) == 2, "the retry's two messages")
        wait_until(lambda: "weekly: issue #1 of weekly: 2 sent" in caplog.text, "the retry's report")

    assert "weekly: issue #1 of weekly paused: " in caplog.text
    assert _jobs(config) == []
    assert smtp_server.per_recipient() == {"alice@example.org": 1, "bob@example.org": 1}


def _jobs(config: Config) -> list[object]:
    with job_store_session(config) as session:
        return list(session.get_jobs())


def test_schedule_cancel_takes_a_waiting_one_off_send_off(make_config: Callable[..., Config]) -> None:
    config = make_config("0 8 * * 1")
    job_id = schedule_one_off(config, "weekly", datetime(2099, 12, 1, 8, 0))
    runner = CliRunner()

    cancelled = runner.invoke(app, ["--config", str(config.path), "schedule", "cancel", job_id])
    again = runner.invoke(app, ["--config", str(config.path), "schedule", "cancel", job_id])
    cron = runner.invoke(app, ["--config", str(config.path), "schedule", "cancel", "digest:weekly"])

    assert (cancelled.exit_code, cancelled.stdout) == (
        0, "Cancelled once send of weekly at 2099-12-01T08:00:00+00:00.\n"
    )
    assert [job.id for job in _jobs(config)] == []
    assert again.exit_code == 1 and again.stderr == (
        f"Error: cannot cancel '{job_id}': no such job; waiting one-off sends and retries: none "
        "(`newsletter schedule --json` shows their ids)\n"
    )
    assert cron.exit_code == 1 and "a digest's schedule is set in the config" in cron.stderr
