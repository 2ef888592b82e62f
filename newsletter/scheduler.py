"""The scheduler daemon: each digest's crontab, and one-off sends, carried out by APScheduler.

Jobs live in APScheduler's SQLAlchemy job store inside the newsletter's own database, so a
run missed while the daemon was down still happens on restart (within
`[scheduler].misfire_grace_time`; missed runs coalesce into one), and `send --at` in another
process leaves a job that `run` picks up. A stored job names its function by text
(`RUN_DIGEST`) and carries only the config path and the digest's name, so it pickles and
survives code changes.

A job does what `newsletter send DIGEST` does (`sending.send_digest`): it resumes an
unfinished issue, else sends the digest's draft or composes a new issue, and skips when
there are too few new articles. Two daemons on one database never send an issue twice:
the sender's lease sees to that.

Review and approval (drafting.py, review.py): a digest with reviewers, or with `approval
= "required"`, also has a review job `review_before` ahead of each send, which composes
or refreshes the draft and mails it to the reviewers. A scheduled send that finds the
draft not approved (approval required) sends nothing, mails the reviewers that it waits,
and leaves a job that sends the issue within a minute of a later approval, until
`approval_grace` after the run; after that the draft waits for the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, DigestSettings, load_config
from .drafting import compose_or_refresh
from .errors import ConfigError, DeliveryError, NewsletterError
from .review import send_review
from .schedules import CRON_PREFIX, REVIEW_PREFIX, RUN_DIGEST, scheduled_jobs
from .sending import AwaitingApproval, NewIssue, NothingNew, execute, prepare_send
from .store import Store, open_store
from .store.drafts import APPROVED

JOBS_TABLE = "apscheduler_jobs"
SEND_IF_APPROVED = "newsletter.scheduler:send_if_approved"
FETCH_INBOUND = "newsletter.scheduler:fetch_inbound"
INBOUND_JOB = "inbound:fetch"
# `send --at` in another process adds jobs behind the daemon's back; it looks again this often.
POLL_SECONDS = 30.0
ONCE_PREFIX = "once:"
WAITING_PREFIX = "waiting:"
RETRY_PREFIX = "retry:"
# The longest wait between retries of a send that could not go on.
RETRY_LONGEST = 6 * 3600.0
# How often a send that waits for approval looks again: within a minute of the approval.
APPROVAL_POLL_SECONDS = 30.0
SCHEDULER_ACTOR = "scheduler"  # who the draft's history names for the daemon's changes

log = logging.getLogger("newsletter.scheduler")

# Set when the daemon is asked to stop: a running send finishes the messages in flight and
# returns. Module level because a stored job is a text reference and cannot carry it.
_stop_requested = threading.Event()
# The running daemon's scheduler, so that a job can schedule its own retry (None outside).
_daemon: BaseScheduler | None = None


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


def run_digest(config_path: str, digest_name: str, attempt: int = 0) -> None:
    """The job: send the digest's next issue (or resume one) as `newsletter send` does.

    A user-fixable failure (a missing secret, a broken template) is one log line and the
    daemon keeps running. A send that could not go on (the server unreachable, the login
    refused, the issue paused, the store unwritable) is tried again by itself with backoff
    (`retry_seconds`, doubling) rather than at the next scheduled time; the issue stays
    resumable meanwhile. An issue that waits for approval is not sent; the reviewers are
    told, and `send_if_approved` takes over.
    """
    _send(config_path, digest_name, waiting_for=None, attempt=attempt)


def send_if_approved(config_path: str, digest_name: str, number: int) -> None:
    """The job after a scheduled send that waited for approval: every
    APPROVAL_POLL_SECONDS until approval_grace is over, send issue `number` once approved.
    It ends itself when that issue is sent, or is no longer the one to send."""
    _send(config_path, digest_name, waiting_for=number)


def _send(config_path: str, digest_name: str, *, waiting_for: int | None, attempt: int = 0) -> None:
    warn = _logged_warning(digest_name)
    try:
        config = load_config(config_path)
        store = open_store(config)
        try:
            plan = prepare_send(config, store, digest_name, warn)
            if waiting_for is not None:
                if isinstance(plan, NothingNew) or plan.number != waiting_for:
                    _remove_job(config, WAITING_PREFIX + digest_name)
                    return
                if isinstance(plan, NewIssue) and plan.needs_approval:
                    return  # still waiting
                _remove_job(config, WAITING_PREFIX + digest_name)
                log.info("%s: issue #%d approved: sending it", digest_name, waiting_for)
            try:
                report = execute(config, store, plan, stop=_stop_requested)
            except AwaitingApproval as exc:
                if waiting_for is None:  # (else its approval was just voided: the wait ends)
                    log.warning("%s: %s", digest_name, exc)
                    await_approval(config, store, config.digest(digest_name))
                return
        finally:
            store.close()
    except DeliveryError as exc:
        log.error("%s: %s", digest_name, exc)
        if not _stop_requested.is_set():
            _schedule_retry(config, digest_name, attempt + 1)
        return
    except NewsletterError as exc:
        log.error("%s: %s", digest_name, exc)
        return
    if report.status == "nothing":  # fewer than min_articles new articles
        log.info("%s: skipped: %s", digest_name, report)
    else:
        log.info("%s: %s", digest_name, report)


def _schedule_retry(config: Config, digest_name: str, attempt: int) -> None:
    delay = min(config.scheduler.retry_seconds * 2 ** (attempt - 1), RETRY_LONGEST)
    when = datetime.now(config.newsletter.tz) + timedelta(seconds=delay)
    options = {
        "trigger": DateTrigger(when, timezone=config.newsletter.tz),
        "args": (*_job_args(config, digest_name), attempt),
        "id": f"{RETRY_PREFIX}{digest_name}",
        "name": f"{digest_name} retry {attempt}",
        "replace_existing": True,
        **_job_options(config),
    }
    if _daemon is not None:  # inside `newsletter run`: it wakes for the new job at once
        _daemon.add_job(RUN_DIGEST, **options)
    else:
        with job_store_session(config) as session:
            session.add_job(RUN_DIGEST, **options)
    log.info("%s: trying again at %s (retry %d)", digest_name, when.strftime("%Y-%m-%d %H:%M:%S %Z"), attempt)


def await_approval(config: Config, store: Store, digest: DigestSettings) -> None:
    """The scheduled send found no approved draft: make (or refresh) the draft, leave the
    job that sends it once approved within approval_grace, and tell the reviewers."""
    now = datetime.now(config.newsletter.tz)
    deadline = now + digest.grace
    record = compose_or_refresh(config, digest, store, _logged_warning(digest.name), actor=SCHEDULER_ACTOR)
    if record is None:
        return
    with job_store_session(config) as session:
        session.add_job(
            SEND_IF_APPROVED,
            IntervalTrigger(
                seconds=APPROVAL_POLL_SECONDS,
                start_date=now + timedelta(seconds=APPROVAL_POLL_SECONDS),
                end_date=deadline,
                timezone=config.newsletter.tz,
            ),
            args=(str(config.path), digest.name, record.number),
            id=WAITING_PREFIX + digest.name,
            name=f"{digest.name} #{record.number} waiting for approval until {deadline:%Y-%m-%d %H:%M %Z}",
            replace_existing=True,
            **_job_options(config),
        )
    log.info(
        "%s: issue #%d waits for approval until %s; then it waits for the next run",
        digest.name, record.number, f"{deadline:%Y-%m-%d %H:%M %Z}",
    )
    if digest.reviewers:
        report = send_review(config, store, digest, actor=SCHEDULER_ACTOR, waiting_until=deadline)
        _log_review(digest.name, record.number, report.sent, report.refused)


def review_digest(config_path: str, digest_name: str) -> None:
    """The job `review_before` ahead of a send: compose or refresh the draft (an approved
    draft is left as approved), and mail it to the reviewers."""
    warn = _logged_warning(digest_name)
    try:
        config = load_config(config_path)
        digest = config.digest(digest_name)
        store = open_store(config)
        try:
            now = datetime.now(config.newsletter.tz)
            send_at = crontab_triggers(config)[digest_name].get_next_fire_time(None, now)
            record = store.drafts.current(digest_name)
            if record is None or record.status != APPROVED:
                record = compose_or_refresh(config, digest, store, warn, actor=SCHEDULER_ACTOR, now=send_at)
            if record is None:
                log.info("%s: no draft to review: no new articles", digest_name)
                return
            if not digest.reviewers:
                log.info("%s: draft of issue #%d ready; no reviewers to mail", digest_name, record.number)
                return
            report = send_review(config, store, digest, actor=SCHEDULER_ACTOR, send_at=send_at)
        finally:
            store.close()
    except NewsletterError as exc:
        log.error("%s: review mail: %s", digest_name, exc)
        return
    _log_review(digest_name, record.number, report.sent, report.refused)


def _log_review(digest_name: str, number: int, sent: list[str], refused: list[tuple[str, str]]) -> None:
    if sent:
        log.info("%s: review mail of issue #%d sent to %s", digest_name, number, ", ".join(sent))
    for address, reply in refused:
        log.error("%s: review mail to %s refused: %s", digest_name, address, reply)


def _logged_warning(digest_name: str) -> Any:
    return lambda message: log.warning("%s: %s", digest_name, message)


def _remove_job(config: Config, job_id: str) -> None:
    with job_store_session(config) as session:
        try:
            session.remove_job(job_id)
        except JobLookupError:
            pass  # another daemon's job took it first


def fetch_inbound(config_path: str) -> None:
    """The job of `newsletter run` with [inbound]: `newsletter inbound fetch`, logged. A
    failure (the mailbox unreachable, a wrong password) is one log line; the messages stay
    in the mailbox for the next poll."""
    from .inbound.imap import fetch  # imaplib, flufl.bounce: only when [inbound] is set

    try:
        config = load_config(config_path)
        store = open_store(config)
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
        if job is not None and _same_trigger(job.trigger, spec.trigger):
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
        global _daemon
        _stop_requested.clear()
        with job_store_session(self.config) as session:
            sync_cron_jobs(session, self.config, self.triggers)
            sync_inbound_job(session, self.config)
            for job in session.get_jobs():
                log.info("%s: next run %s", job.name, job.next_run_time.isoformat())
        _daemon = self.scheduler
        try:
            self.scheduler.start()
        finally:
            _daemon = None

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
    """One stored job per scheduled digest, and one per review mail; an unchanged job keeps
    its (maybe missed) next run."""
    specs = scheduled_jobs(config, triggers)
    for spec in specs:
        job = scheduler.get_job(spec.id)
        if job is not None and _same_job(job, spec.trigger, config, spec.digest):
            continue
        scheduler.add_job(
            spec.func,
            spec.trigger,
            args=_job_args(config, spec.digest),
            id=spec.id,
            name=spec.name,
            replace_existing=True,
            **_job_options(config),
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


def _same_job(job: Job, trigger: BaseTrigger, config: Config, digest_name: str) -> bool:
    return (
        _same_trigger(job.trigger, trigger)
        and tuple(job.args) == _job_args(config, digest_name)
        and job.misfire_grace_time == config.scheduler.misfire_grace_time
    )


def _same_trigger(stored: Any, trigger: BaseTrigger) -> bool:
    # str() omits the zone, so a changed timezone would otherwise look the same.
    return str(stored) == str(trigger) and str(getattr(stored, "timezone", "")) == str(trigger.timezone)
