"""The scheduled side of review and approval, with APScheduler's real triggers and job
store: the review mail `review_before` ahead, the send at the scheduled time of exactly
the approved draft, "not sent: waiting for approval", and the send soon after a later
approval within `approval_grace` (and not after it). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger

from conftest import BASE_URL
from desk import clear_articles, draft, ids, ok, set_digest, titles, write_article
from newsletter import scheduler
from newsletter.config import Config, load_config
from newsletter.jobstore import job_store_session
from newsletter.scheduler import Daemon
from newsletter.schedules import ReviewTrigger
from newsletter.store import Store
from newsletter.web import create_app
from smtp_server import SmtpTestServer, configure
from test_scheduler import move_next_run, running, stored_cron_job, stored_next_run, wait_until
from web_server import WebServer

BACKENDS = ("sqlite", "postgres")

SECRET = "approval-test-secret"
REVIEWERS = ["rev1@example.org", "rev2@example.org"]
READERS = ["ann@example.org", "bob@example.org"]
FAR = timedelta(days=30)
# As shipped (the tests below shorten them): how soon a waiting send sees an approval.
APPROVAL_POLL, DAEMON_POLL = scheduler.APPROVAL_POLL_SECONDS, scheduler.POLL_SECONDS


@dataclass
class Newsroom:
    project: Path
    config: Config
    smtp: SmtpTestServer
    web: WebServer

    def mails_to(self, people: list[str]) -> list[EmailMessage]:
        return [m.message for m in self.smtp.messages if m.rcpt_tos[0] in people]

    def at(self, job: str, when: datetime) -> None:
        move_next_run(self.config, job, when)

    def approve_over_http(self, message: EmailMessage) -> None:
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        link = re.search(r"Approve this issue \(exactly this version\): (\S+)", text)
        assert link, text
        path = link.group(1).removeprefix(BASE_URL)
        with httpx.Client(base_url=self.web.url, timeout=10) as http:
            page = http.get(path)
            token = re.search(r'name="form_token" value="([^"]+)"', page.text)
            assert token, page.text
            done = http.post(path, data={"form_token": token.group(1)}, headers={"Origin": self.web.url})
        assert done.status_code == 200, done.text


@pytest.fixture
def newsroom(
    project: Path, smtp_server: SmtpTestServer, web_server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Newsroom]:
    """A daily 08:00 digest whose approval is required, reviewed a day ahead; the jobs stored
    with every run far off until a test brings one near; the daemon looking often."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.setattr(scheduler, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(scheduler, "APPROVAL_POLL_SECONDS", 0.3)
    clear_articles(project)
    write_article(project, "a", "Alpha", hours_ago=1)
    write_article(project, "b", "Bravo", hours_ago=5)
    write_article(project, "c", "Charlie", hours_ago=9)
    set_digest(
        project,
        subject="{{ articles[0].title }} and more",
        schedule="0 8 * * *",
        approval="required",
        reviewers=REVIEWERS,
        review_before="24h",
    )
    config = configure(project, smtp_server.config_toml())
    ok(project, "lists", "add", "weekly")
    for reader in READERS:
        ok(project, "subscribers", "add", reader, "--list", "weekly")
    store = Store(config.database.url)
    web_server.start(create_app(config, store))
    room = Newsroom(project, config, smtp_server, web_server)
    stored_cron_job(config)
    later = datetime.now(timezone.utc) + FAR
    room.at("digest:weekly", later)
    room.at("review:weekly", later)
    yield room
    store.close()


def test_a_waiting_send_sees_an_approval_within_a_minute() -> None:
    # The daemon finds the waiting job within DAEMON_POLL of its creation; the job then
    # looks every APPROVAL_POLL: an approval is sent at most APPROVAL_POLL later.
    assert APPROVAL_POLL <= 30 and DAEMON_POLL <= 30


def test_the_review_trigger_fires_review_before_ahead_of_each_send() -> None:
    send = CronTrigger.from_crontab("0 8 * * mon", timezone="Europe/Berlin")
    review = ReviewTrigger(send, timedelta(hours=24))

    first = review.get_next_fire_time(None, datetime(2026, 3, 1, 6, tzinfo=timezone.utc))  # a Sunday
    assert first == datetime(2026, 3, 1, 7, tzinfo=timezone.utc)  # Sunday 08:00 in Berlin
    assert review.get_next_fire_time(first, first) == datetime(2026, 3, 8, 7, tzinfo=timezone.utc)
    late = review.get_next_fire_time(None, datetime(2026, 3, 1, 12, tzinfo=timezone.utc))
    assert late == datetime(2026, 3, 8, 7, tzinfo=timezone.utc)  # this week's review time has passed


def test_the_review_mail_goes_out_ahead_and_the_scheduled_send_sends_exactly_the_approved_edit(
    newsroom: Newsroom,
) -> None:
    project, config = newsroom.project, newsroom.config
    newsroom.at("review:weekly", datetime.now(timezone.utc) + timedelta(seconds=0.3))

    with running(Daemon(config)):
        wait_until(lambda: len(newsroom.mails_to(REVIEWERS)) == 2, "the review mails")
    [review, _] = newsroom.mails_to(REVIEWERS)
    assert review["Subject"] == "[DRAFT] Alpha and more"
    next_review = stored_next_run(config, "review:weekly")
    assert next_review is not None and next_review.hour == 8 and next_review > datetime.now(timezone.utc)
    assert "It is scheduled for " in review.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert draft(project)["history"][-1]["who"] == "scheduler"

    known = ids(draft(project))
    edited = draft(project, "--pin", known["Charlie"], "--exclude", known["Bravo"], "--note", "-", input="The editor *speaks*.\n")
    assert titles(edited) == ["Charlie", "Alpha"]
    [newest, _] = newsroom.mails_to(REVIEWERS)[2:]  # the edit mailed the new version
    newsroom.approve_over_http(newest)
    assert draft(project)["status"] == "approved"

    newsroom.at("digest:weekly", datetime.now(timezone.utc) + timedelta(seconds=0.3))
    with running(Daemon(config)):
        wait_until(lambda: len(newsroom.mails_to(READERS)) == 2, "the issue")

    issue = newsroom.mails_to(READERS)[0]
    assert issue["Subject"] == "Charlie and more"
    html = issue.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.index("The editor <em>speaks</em>.") < html.index("The story of Charlie.") < html.index("The story of Alpha.")
    assert "Bravo" not in html
    assert len(newsroom.mails_to(REVIEWERS)) == 4  # nobody was told it waits: it did not


def test_without_approval_the_scheduled_send_waits_tells_the_reviewers_and_goes_out_soon_after_approval(
    newsroom: Newsroom,
) -> None:
    project, config = newsroom.project, newsroom.config
    newsroom.at("digest:weekly", datetime.now(timezone.utc) + timedelta(seconds=0.3))

    with running(Daemon(config)):
        wait_until(lambda: len(newsroom.mails_to(REVIEWERS)) == 2, "the not-sent mails")
        [told, _] = newsroom.mails_to(REVIEWERS)
        assert told["Subject"] == "[DRAFT] Not sent, waiting for approval: Alpha and more"
        body = told.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "NOT SENT: issue #1 of weekly waits for approval." in body
        assert newsroom.mails_to(READERS) == []
        planned = json.loads(ok(project, "schedule", "--json").stdout)
        assert [run["kind"] for run in planned if run["kind"] == "waiting"] == ["waiting"]
        time.sleep(1.0)  # the waiting job looks a few times and sends nothing
        assert newsroom.mails_to(READERS) == []

        newsroom.approve_over_http(told)
        approved_at = time.time()
        wait_until(lambda: len(newsroom.mails_to(READERS)) == 2, "the issue after the approval")

    first = min(m.accepted_at for m in newsroom.smtp.messages if m.rcpt_tos[0] in READERS)
    assert first - approved_at < 60
    with job_store_session(config) as session:
        assert session.get_job("waiting:weekly") is None
    history = json.loads(ok(project, "history", "--json").stdout)
    assert [(h["number"], h["sent"]) for h in history] == [(1, 2)]


def test_an_approval_after_the_grace_waits_for_the_next_scheduled_run(newsroom: Newsroom) -> None:
    project, config = newsroom.project, newsroom.config
    set_digest(project, approval_grace="2s")
    config = load_config(config.path)
    newsroom.at("digest:weekly", datetime.now(timezone.utc) + timedelta(seconds=0.3))

    with running(Daemon(config)):
        wait_until(lambda: len(newsroom.mails_to(REVIEWERS)) == 2, "the not-sent mails")
        with job_store_session(config) as session:
            assert session.get_job("waiting:weekly") is not None
        wait_until(lambda: _gone(config, "waiting:weekly"), "the end of the grace time")
        ok(project, "approve", "weekly", "--by", "Late Larry")
        time.sleep(1.5)
        assert newsroom.mails_to(READERS) == []

    newsroom.at("digest:weekly", datetime.now(timezone.utc) + timedelta(seconds=0.3))
    with running(Daemon(config)):
        wait_until(lambda: len(newsroom.mails_to(READERS)) == 2, "the next run's send")


def _gone(config: Config, job_id: str) -> bool:
    with job_store_session(config) as session:
        return session.get_job(job_id) is None
