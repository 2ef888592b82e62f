"""The stored jobs of `newsletter run`: APScheduler's SQLAlchemy job store inside the
newsletter's own database, read and edited from any process.

A stored job names its function by text and carries only the config path and the digest's
name (and a retry's attempt, a waiting send's issue number), so it pickles and survives
code changes. `newsletter schedule`, `send --at` and `schedule cancel` work here; the
daemon (scheduler.py) runs the jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from .config import Config
from .errors import NewsletterError
from .schedules import CRON_PREFIX, REVIEW_PREFIX, RUN_DIGEST, crontab_triggers, scheduled_jobs

JOBS_TABLE = "apscheduler_jobs"
ONCE_PREFIX = "once:"
WAITING_PREFIX = "waiting:"
RETRY_PREFIX = "retry:"

log = logging.getLogger("newsletter.scheduler")


@dataclass(frozen=True)
class PlannedRun:
    """One line of `newsletter schedule`: a digest's crontab or a one-off send."""

    digest: str
    kind: str  # "cron" | "review" | "waiting" | "once" | "retry" | "none" (no schedule)
    schedule: str | None  # the crontab as written, the review's lead, the one-off time
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
            args=job_args(config, digest_name),
            id=job_id,
            name=f"{digest_name} once at {moment.isoformat()}",
            replace_existing=True,
            **job_options(config),
        )
    return job_id


def cancel(config: Config, job_id: str) -> PlannedRun:
    """Take a waiting one-off send or retry off the schedule; what it was. A digest's
    crontab is changed in the config, not here."""
    runs = {run.job_id: run for run in planned_runs(config)}
    run = runs.get(job_id)
    if run is None or run.kind not in ("once", "retry"):
        waiting = ", ".join(r.job_id for r in runs.values() if r.job_id and r.kind in ("once", "retry"))
        what = "a digest's schedule is set in the config" if run is not None else "no such job"
        raise NewsletterError(
            f"cannot cancel {job_id!r}: {what}; waiting one-off sends and retries: {waiting or 'none'} "
            "(`newsletter schedule --json` shows their ids)"
        )
    with job_store_session(config) as session:
        try:
            session.remove_job(job_id)
        except JobLookupError:  # run or cancelled meanwhile
            raise NewsletterError(f"{job_id!r} is no longer waiting (it ran or was cancelled)") from None
    return run


def planned_runs(config: Config) -> list[PlannedRun]:
    """Every digest's schedule and review mail with their next runs, the sends waiting for
    approval, and the pending one-off sends, soonest first."""
    triggers = crontab_triggers(config)
    now = datetime.now(config.newsletter.tz)
    with job_store_session(config) as session:
        stored = {job.id: job for job in session.get_jobs()}
    runs = [PlannedRun(name, "none", None, None, None) for name in config.digests if name not in triggers]
    for spec in scheduled_jobs(config, triggers):
        job = stored.get(spec.id)
        # A stored job keeps a run missed while no daemon ran; a new or changed one starts afresh.
        if job is not None and same_trigger(job.trigger, spec.trigger):
            next_run = job.next_run_time
        else:
            next_run = spec.trigger.get_next_fire_time(None, now)
        runs.append(PlannedRun(spec.digest, spec.kind, spec.schedule, next_run, spec.id))
    for job in stored.values():
        if job.id.startswith(ONCE_PREFIX):
            digest_name = job.args[1]
            runs.append(
                PlannedRun(digest_name, "once", job.trigger.run_date.isoformat(), job.next_run_time, job.id)
            )
        elif job.id.startswith(RETRY_PREFIX):
            runs.append(PlannedRun(job.args[1], "retry", job.trigger.run_date.isoformat(), job.next_run_time, job.id))
        elif job.id.startswith(WAITING_PREFIX):
            until = job.trigger.end_date.isoformat()
            runs.append(PlannedRun(job.args[1], "waiting", f"issue #{job.args[2]} until {until}", job.next_run_time, job.id))
    return sorted(runs, key=lambda run: (run.next_run is None, run.next_run or now, run.digest))


def sync_cron_jobs(scheduler: BaseScheduler, config: Config, triggers: dict[str, CronTrigger]) -> None:
    """One stored job per scheduled digest, and one per review mail; an unchanged job keeps
    its (maybe missed) next run."""
    specs = scheduled_jobs(config, triggers)
    for spec in specs:
        job = scheduler.get_job(spec.id)
        if job is not None and same_job(job, spec.trigger, config, spec.digest):
            continue
        scheduler.add_job(
            spec.func,
            spec.trigger,
            args=job_args(config, spec.digest),
            id=spec.id,
            name=spec.name,
            replace_existing=True,
            **job_options(config),
        )
    wanted = {spec.id for spec in specs}
    for job in scheduler.get_jobs():
        if job.id.startswith((CRON_PREFIX, REVIEW_PREFIX)) and job.id not in wanted:
            log.info("%s: no schedule (or review) in the config any more; job removed", job.id)
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
        jobstores={"default": job_store(config)}, timezone=config.newsletter.tz, logger=_editor_log
    )
    editor.start(paused=True)
    try:
        yield editor
    finally:
        editor.shutdown(wait=False)


def job_store(config: Config) -> SQLAlchemyJobStore:
    url = config.database.url
    options = {"connect_args": {"timeout": config.database.busy_timeout}} if url.startswith("sqlite") else {}
    return SQLAlchemyJobStore(url=url, tablename=JOBS_TABLE, engine_options=options)


def job_args(config: Config, digest_name: str) -> tuple[str, str]:
    return (str(config.path), digest_name)


def job_options(config: Config) -> dict[str, Any]:
    return {
        "misfire_grace_time": config.scheduler.misfire_grace_time,
        "coalesce": True,
        "max_instances": 1,
    }


def same_job(job: Job, trigger: BaseTrigger, config: Config, digest_name: str) -> bool:
    return (
        same_trigger(job.trigger, trigger)
        and tuple(job.args) == job_args(config, digest_name)
        and job.misfire_grace_time == config.scheduler.misfire_grace_time
    )


def same_trigger(stored: Any, trigger: BaseTrigger) -> bool:
    # str() omits the zone, so a changed timezone would otherwise look the same.
    return str(stored) == str(trigger) and str(getattr(stored, "timezone", "")) == str(trigger.timezone)
