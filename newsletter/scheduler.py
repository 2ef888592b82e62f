"""The scheduler daemon: each digest's crontab, and one-off sends, carried out by APScheduler.

Jobs live in APScheduler's SQLAlchemy job store inside the newsletter's own database
(jobstore.py), so a run missed while the daemon was down still happens on restart (within
`[scheduler].misfire_grace_time`; missed runs coalesce into one), and `send --at` in another
process leaves a job that `run` picks up. What the config asks for is schedules.py.

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
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, DigestSettings, load_config
from .drafting import compose_or_refresh
from .errors import DeliveryError, NewsletterError
from .jobstore import (
    RETRY_PREFIX,
    WAITING_PREFIX,
    job_args,
    job_options,
    job_store,
    job_store_session,
    sync_cron_jobs,
)
from .review import send_review
from .schedules import RUN_DIGEST, crontab_triggers
from .sending import AwaitingApproval, NewIssue, NothingNew, execute, prepare_send
from .store import Store, open_store
from .store.drafts import APPROVED

SEND_IF_APPROVED = "newsletter.scheduler:send_if_approved"
FETCH_INBOUND = "newsletter.scheduler:fetch_inbound"
INBOUND_JOB = "inbound:fetch"
# `send --at` in another process adds jobs behind the daemon's back; it looks again this often.
POLL_SECONDS = 30.0
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
        "args": (*job_args(config, digest_name), attempt),
        "id": f"{RETRY_PREFIX}{digest_name}",
        "name": f"{digest_name} retry {attempt}",
        "replace_existing": True,
        **job_options(config),
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
            **job_options(config),
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
        **job_options(config),
    )


class Daemon:
    """`newsletter run`: the stored jobs, carried out in the foreground until stop()."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.triggers = crontab_triggers(config)
        self.scheduler = _PollingScheduler(
            jobstores={"default": job_store(config)},
            job_defaults=job_options(config),
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
