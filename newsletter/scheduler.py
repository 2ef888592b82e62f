"""The scheduler daemon: each digest's crontab, and one-off sends, carried out by APScheduler.

Jobs live in APScheduler's SQLAlchemy job store inside the newsletter's own database, so a
run missed while the daemon was down still happens on restart (within
`[scheduler].misfire_grace_time`; missed runs coalesce into one), and `send --at` in another
process leaves a job that `run` picks up. A stored job names its function by text
(`RUN_DIGEST`) and carries only the config path and the digest's name, so it pickles and
survives code changes.

A job does what `newsletter send DIGEST` does (`sending.send_digest`): it resumes an
unfinished issue, else composes a new one, and skips when there are too few new articles.
Two daemons on one database never send an issue twice: the sender's lease sees to that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, load_config
from .errors import ConfigError, NewsletterError
from .sending import send_digest
from .store import open_store

JOBS_TABLE = "apscheduler_jobs"
RUN_DIGEST = "newsletter.scheduler:run_digest"
FETCH_INBOUND = "newsletter.scheduler:fetch_inbound"
INBOUND_JOB = "inbound:fetch"
# `send --at` in another process adds jobs behind the daemon's back; it looks again this often.
POLL_SECONDS = 30.0
CRON_PREFIX = "digest:"
ONCE_PREFIX = "once:"

log = logging.getLogger("newsletter.scheduler")

# Set when the daemon is asked to stop: a running send finishes the messages in flight and
# returns. Module level because a stored job is a text reference and cannot carry it.
_stop_requested = threading.Event()


@dataclass(frozen=True)
class PlannedRun:
    """One line of `newsletter schedule`: a digest's crontab or a one-off send."""

    digest: str
    kind: str  # "cron" | "once" | "none" (a digest without a schedule)
    schedule: str | None  # the crontab as written, or the one-off time
    next_run: datetime | None
    job_id: str | None

    def overdue(self, now: datetime) -> bool:
        """Missed while no daemon ran: `run` carries it out at start if within the grace time."""
        return self.next_run is not None and self.next_run < now

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "kind": self.kind,
            "schedule": self.schedule,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "overdue": self.overdue(now),
            "job_id": self.job_id,
        }


def crontab_triggers(config: Config) -> dict[str, CronTrigger]:
    """A trigger per digest with a `schedule`; ConfigError naming the digest for a bad one."""
    triggers = {}
    for digest in config.digests.values():
        if digest.schedule is None:
            continue
        try:
            triggers[digest.name] = CronTrigger.from_crontab(
                standard_weekdays(digest.schedule), timezone=config.newsletter.tz
            )
        except ValueError as exc:
            raise ConfigError(
                f"{config.path}: [digests.{digest.name}].schedule: invalid crontab "
                f"{digest.schedule!r} ({exc}); use five fields, minute hour day month weekday, "
                'such as "0 8 * * mon"'
            ) from None
    return triggers


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_weekdays(crontab: str) -> str:
    """The crontab with its weekday field in names, as crontab(5) means its numbers.

    APScheduler 3 counts weekdays from Monday = 0, crontab from Sunday = 0 (and 7): "0 8 * * 1"
    must mean Monday. Numbers, ranges and steps are expanded to a list of day names.
    """
    fields = crontab.split()
    if len(fields) != 5 or not any(ch.isdigit() for ch in fields[4]):
        return crontab  # names only (or a field count APScheduler reports itself)
    days: set[int] = set()
    for item in fields[4].split(","):
        days |= _weekday_item(item)
    fields[4] = ",".join(_CRON_DAYS[day] for day in sorted(days))
    return " ".join(fields)


def _weekday_item(item: str) -> set[int]:
    """Days (0 = Sunday) of one comma item: `*`, `N`, `N-M`, `NAME`, each with an optional /STEP."""
    span, _, step_text = item.partition("/")
    step = _weekday_number(step_text, allow_big=True) if step_text else 1
    if span == "*":
        first, last = 0, 6
    else:
        low, _, high = span.partition("-")
        first = _weekday_number(low)
        last = _weekday_number(high) if high else (6 if step_text else first)
    if first > last or step < 1:
        raise ValueError(f"bad weekday range {item!r}")
    return {day % 7 for day in range(first, last + 1, step)}


def _weekday_number(text: str, *, allow_big: bool = False) -> int:
    if text.lower() in _CRON_DAYS:
        return _CRON_DAYS.index(text.lower())
    if not text.isdigit() or (int(text) > 7 and not allow_big):
        raise ValueError(f"bad weekday {text!r} (0-7 or sun-sat)")
    return int(text)


def run_digest(config_path: str, digest_name: str) -> None:
    """The job: send the digest's next issue (or resume one) as `newsletter send` does.

    A user-fixable failure (SMTP unreachable, a missing secret) is one log line; the issue
    stays resumable and the daemon keeps running for the next time.
    """
    try:
        config = load_config(config_path)
        store = open_store(config.database, bounces=config.bounces)
        try:
            report = send_digest(
                config,
                store,
                digest_name,
                stop=_stop_requested,
                warn=lambda message: log.warning("%s: %s", digest_name, message),
            )
        finally:
            store.close()
    except NewsletterError as exc:
        log.error("%s: %s", digest_name, exc)
        return
    if report.status == "nothing":  # fewer than min_articles new articles
        log.info("%s: skipped: %s", digest_name, report)
    else:
        log.info("%s: %s", digest_name, report)


def fetch_inbound(config_path: str) -> None:
    """The job of `newsletter run` with [inbound]: `newsletter inbound fetch`, logged. A
    failure (the mailbox unreachable, a wrong password) is one log line; the messages stay
    in the mailbox for the next poll."""
    from .inbound.imap import fetch  # imaplib, flufl.bounce: only when [inbound] is set

    try:
        config = load_config(config_path)
        store = open_store(config.database, bounces=config.bounces)
        try:
            results = fetch(config, store, on_message=lambda result: log.info("inbound: %s", result.line()))
        finally:
            store.close()
    except NewsletterError as exc:
        log.error("inbound: %s", exc)
        return
    if results:
        log.info("inbound: processed %d message(s)", len(results))


def sync_inbound_job(scheduler: BaseScheduler, config: Config) -> None:
    """Poll the [inbound] mailbox every poll_minutes; no job without [inbound]."""
    if config.inbound is None:
        if scheduler.get_job(INBOUND_JOB) is not None:
            scheduler.remove_job(INBOUND_JOB)
        return
    scheduler.add_job(
        FETCH_INBOUND,
        IntervalTrigger(minutes=config.inbound.poll_minutes, timezone=config.newsletter.tz),
        args=(str(config.path),),
        id=INBOUND_JOB,
        name=f"inbound fetch (every {config.inbound.poll_minutes:g} min)",
        replace_existing=True,
        **_job_options(config),
    )


def schedule_one_off(config: Config, digest_name: str, when: datetime) -> str:
    """Store a job that `newsletter run` carries out at `when`; returns its id.

    A naive `when` is read in the newsletter's time zone.
    """
    config.digest(digest_name)  # ConfigError for an unknown digest
    tz = config.newsletter.tz
    moment = when if when.tzinfo else when.replace(tzinfo=tz)
    if moment <= datetime.now(tz):
        raise NewsletterError(
            f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z} is in the past; give a future time "
            '(such as --at "2026-12-01 08:00", in the newsletter\'s time zone)'
        )
    job_id = f"{ONCE_PREFIX}{digest_name}:{moment.isoformat()}"
    with job_store_session(config) as session:
        session.add_job(
            RUN_DIGEST,
            DateTrigger(moment, timezone=tz),
            args=_job_args(config, digest_name),
            id=job_id,
            name=f"{digest_name} once at {moment.isoformat()}",
            replace_existing=True,
            **_job_options(config),
        )
    return job_id


def planned_runs(config: Config) -> list[PlannedRun]:
    """Every digest's schedule and next run, and the pending one-off sends, soonest first."""
    triggers = crontab_triggers(config)
    now = datetime.now(config.newsletter.tz)
    with job_store_session(config) as session:
        stored = {job.id: job for job in session.get_jobs()}
    runs = []
    for name, digest in config.digests.items():
        trigger = triggers.get(name)
        if trigger is None:
            runs.append(PlannedRun(name, "none", None, None, None))
            continue
        job = stored.get(CRON_PREFIX + name)
        # A stored job keeps a run missed while no daemon ran; a new or changed one starts afresh.
        if job is not None and _same_trigger(job.trigger, trigger):
            next_run = job.next_run_time
        else:
            next_run = trigger.get_next_fire_time(None, now)
        runs.append(PlannedRun(name, "cron", digest.schedule, next_run, CRON_PREFIX + name))
    for job in stored.values():
        if job.id.startswith(ONCE_PREFIX):
            digest_name = job.args[1]
            runs.append(
                PlannedRun(digest_name, "once", job.trigger.run_date.isoformat(), job.next_run_time, job.id)
            )
    return sorted(runs, key=lambda run: (run.next_run is None, run.next_run or now, run.digest))


class Daemon:
    """`newsletter run`: the stored jobs, carried out in the foreground until stop()."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.triggers = crontab_triggers(config)
        self.scheduler = _PollingScheduler(
            jobstores={"default": _job_store(config)},
            job_defaults=_job_options(config),
            timezone=config.newsletter.tz,
        )
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)

    def run(self) -> None:
        """Bring the cron jobs in line with the config, then run jobs until stop() (blocks)."""
        _stop_requested.clear()
        with job_store_session(self.config) as session:
            sync_cron_jobs(session, self.config, self.triggers)
            sync_inbound_job(session, self.config)
            for job in session.get_jobs():
                log.info("%s: next run %s", job.name, job.next_run_time.isoformat())
        self.scheduler.start()

    def _started(self, _event: SchedulerEvent) -> None:
        if _stop_requested.is_set():  # stop() came while the scheduler was starting
            self.scheduler.shutdown(wait=False)
            return
        log.info("scheduler started; stop with Ctrl-C or SIGTERM")

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def stop(self) -> None:
        """Let a running send finish its messages in flight, then stop (blocks until then)."""
        _stop_requested.set()
        try:
            self.scheduler.shutdown(wait=True)
        except SchedulerNotRunningError:
            log.info("stopping (the scheduler was still starting, or is stopping already)")


class _PollingScheduler(BlockingScheduler):
    """Wakes at least every POLL_SECONDS to see jobs that another process stored."""

    def _process_jobs(self) -> float | None:
        try:
            wait = super()._process_jobs()
        except JobLookupError:  # another daemon on this database took a one-off job first
            return 0.0
        return POLL_SECONDS if wait is None else min(wait, POLL_SECONDS)


def sync_cron_jobs(scheduler: BaseScheduler, config: Config, triggers: dict[str, CronTrigger]) -> None:
    """One stored job per scheduled digest; an unchanged job keeps its (maybe missed) next run."""
    for name, trigger in triggers.items():
        job_id = CRON_PREFIX + name
        job = scheduler.get_job(job_id)
        if job is not None and _same_job(job, trigger, config, name):
            continue
        scheduler.add_job(
            RUN_DIGEST,
            trigger,
            args=_job_args(config, name),
            id=job_id,
            name=f"{name} ({config.digests[name].schedule})",
            replace_existing=True,
            **_job_options(config),
        )
    for job in scheduler.get_jobs():
        if job.id.startswith(CRON_PREFIX) and job.id.removeprefix(CRON_PREFIX) not in triggers:
            log.info("%s: no schedule in the config any more; job removed", job.id)
            scheduler.remove_job(job.id)


class _JobStoreEditor(BaseScheduler):
    """A scheduler with no loop: it reads and edits the stored jobs and never runs one."""

    def wakeup(self) -> None:
        """Nothing to wake: jobs are processed only by the daemon."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


# The editor's own start/stop lines would read as if the daemon started and stopped.
_editor_log = logging.getLogger("newsletter.scheduler.jobs")
_editor_log.setLevel(logging.WARNING)


@contextmanager
def job_store_session(config: Config) -> Iterator[BaseScheduler]:
    """The stored jobs, to read and edit (add_job, get_jobs, ...) from any process."""
    editor = _JobStoreEditor(
        jobstores={"default": _job_store(config)}, timezone=config.newsletter.tz, logger=_editor_log
    )
    editor.start(paused=True)
    try:
        yield editor
    finally:
        editor.shutdown(wait=False)


def _job_store(config: Config) -> SQLAlchemyJobStore:
    url = config.database.url
    options = {"connect_args": {"timeout": config.database.busy_timeout}} if url.startswith("sqlite") else {}
    return SQLAlchemyJobStore(url=url, tablename=JOBS_TABLE, engine_options=options)


def _job_args(config: Config, digest_name: str) -> tuple[str, str]:
    return (str(config.path), digest_name)


def _job_options(config: Config) -> dict[str, Any]:
    return {
        "misfire_grace_time": config.scheduler.misfire_grace_time,
        "coalesce": True,
        "max_instances": 1,
    }


def _same_job(job: Job, trigger: CronTrigger, config: Config, digest_name: str) -> bool:
    return (
        _same_trigger(job.trigger, trigger)
        and tuple(job.args) == _job_args(config, digest_name)
        and job.misfire_grace_time == config.scheduler.misfire_grace_time
    )


def _same_trigger(stored: Any, trigger: CronTrigger) -> bool:
    # str() omits the zone, so a changed timezone would otherwise look the same.
    return str(stored) == str(trigger) and str(getattr(stored, "timezone", "")) == str(trigger.timezone)
