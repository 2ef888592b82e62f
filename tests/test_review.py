"""Review by mail: the draft reaches each reviewer over SMTP with an Approve link that
works over real HTTP (uvicorn), approves only its own version, and is refused when stale,
tampered with, or for an issue already sent. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from conftest import BASE_URL
from desk import clear_articles, cli, draft, ids, ok, one_error_line, set_digest, write_article
from newsletter.config import Config
from newsletter.store import Store
from newsletter.web import create_app
from smtp_server import SmtpTestServer, configure
from web_server import WebServer

BACKENDS = ("sqlite", "postgres")

SECRET = "review-test-secret"
REVIEWERS = ["rev1@example.org", "rev2@example.org"]
_APPROVE_LINE = re.compile(r"Approve this issue \(exactly this version\): (\S+)")


@dataclass
class Newsroom:
    project: Path
    config: Config
    store: Store
    smtp: SmtpTestServer
    web: WebServer
    http: httpx.Client

    def reviews(self, since: int = 0) -> dict[str, EmailMessage]:
        """Reviewer -> the review mail they got (of the messages after the first `since`)."""
        found = {}
        for received in self.smtp.messages[since:]:
            [to] = received.rcpt_tos
            if to in REVIEWERS:
                found[to] = received.message
        return found

    def local(self, link: str) -> str:
        """The path of a link at base_url, as the HTTPS proxy hands it to `serve`."""
        assert link.startswith(f"{BASE_URL}/approve/"), link
        return link.removeprefix(BASE_URL)

    def approve_over_http(self, link: str) -> httpx.Response:
        """What a reviewer does: open the link, press the button."""
        page = self.http.get(self.local(link))
        assert page.status_code == 200, page.text
        token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert token, page.text
        return self.http.post(self.local(link), data={"form_token": token.group(1)}, headers={"Origin": self.web.url})


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr,no-any-return]


def approve_link(message: EmailMessage) -> str:
    text = plain(message)
    match = _APPROVE_LINE.search(text)
    assert match, text
    return match.group(1)


@pytest.fixture
def newsroom(
    project: Path, smtp_server: SmtpTestServer, web_server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Newsroom]:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    clear_articles(project)
    write_article(project, "a", "Alpha", hours_ago=1)
    write_article(project, "b", "Bravo", hours_ago=5)
    set_digest(project, subject="{{ articles[0].title }} and more", approval="required", reviewers=REVIEWERS)
    config = configure(project, smtp_server.config_toml())
    ok(project, "lists", "add", "weekly")
    ok(project, "subscribers", "add", "reader@example.org", "--list", "weekly")
    store = Store(config.database.url)
    web_server.start(create_app(config, store))
    with httpx.Client(base_url=web_server.url, timeout=10) as client:
        yield Newsroom(project, config, store, smtp_server, web_server, client)
    store.close()


def test_the_review_mail_reaches_each_reviewer_and_its_link_approves_over_http(newsroom: Newsroom) -> None:
    project = newsroom.project
    draft(project)
    draft(project, "--note", "-", input="Welcome to *this* issue.\n")

    said = ok(project, "review", "weekly").stdout

    assert said == f"Mailed the draft of weekly to {', '.join(REVIEWERS)}.\n"
    reviews = newsroom.reviews()
    assert sorted(reviews) == REVIEWERS
    message = reviews["rev1@example.org"]
    assert message["Subject"] == "[DRAFT] Alpha and more"
    assert message["Auto-Submitted"] == "auto-generated"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.index("Draft for review: issue #1 of weekly") < html.index("Welcome to <em>this</em> issue.")
    assert html.index("Approve this issue") < html.index("The story of Alpha.")  # the issue, below the banner
    text = plain(message)
    assert "1. Alpha [" in text and "2. Bravo [" in text
    links = {reviewer: approve_link(m) for reviewer, m in reviews.items()}
    assert links["rev1@example.org"] != links["rev2@example.org"]

    page = newsroom.http.get(newsroom.local(links["rev2@example.org"]))
    assert page.status_code == 200 and "Approve as rev2@example.org" in page.text
    assert draft(project)["status"] == "draft"  # a GET approves nothing

    approved = newsroom.approve_over_http(links["rev2@example.org"])
    assert approved.status_code == 200 and "<h1>Approved</h1>" in approved.text
    entry = draft(project)
    assert (entry["status"], entry["approved_by"]) == ("approved", "rev2@example.org")
    assert [h["action"] for h in entry["history"]][-2:] == ["review mailed", "approved"]

    before = len(newsroom.smtp.messages)
    ok(project, "send", "weekly", "--yes")
    [issue] = [m.message for m in newsroom.smtp.messages[before:]]
    assert issue["Subject"] == "Alpha and more"
    archived = newsroom.http.get("/archive/weekly/1")
    assert "Welcome to <em>this</em> issue." in archived.text  # the note, in the web archive too


def test_an_edit_after_the_review_mail_mails_the_new_version_and_the_old_link_approves_nothing(
    newsroom: Newsroom,
) -> None:
    project = newsroom.project
    known = ids(draft(project))
    ok(project, "review", "weekly")
    old_link = approve_link(newsroom.reviews()["rev1@example.org"])
    before = len(newsroom.smtp.messages)

    edit = cli(project, "edit", "weekly", "--exclude", known["Bravo"])

    assert edit.exit_code == 0
    assert f"mailed this one to {', '.join(REVIEWERS)}" in edit.stderr
    again = newsroom.reviews(since=before)
    assert sorted(again) == REVIEWERS
    text = plain(again["rev1@example.org"])
    assert f"Changed since the last review mail:\n- excluded: {known['Bravo']} (Bravo)" in text
    stale_page = newsroom.http.get(newsroom.local(old_link))
    assert stale_page.status_code == 409
    assert "This link is for an older version of issue #1 of weekly" in stale_page.text
    assert "approves nothing" in stale_page.text
    assert draft(project)["status"] == "draft"

    assert newsroom.approve_over_http(approve_link(again["rev1@example.org"])).status_code == 200
    assert draft(project)["approved_by"] == "rev1@example.org"


def test_a_stale_link_posted_approves_nothing(newsroom: Newsroom) -> None:
    project = newsroom.project
    known = ids(draft(project))
    ok(project, "review", "weekly")
    link = approve_link(newsroom.reviews()["rev1@example.org"])
    page = newsroom.http.get(newsroom.local(link))  # opened while it was current
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token
    ok(project, "edit", "weekly", "--move", f"{known['Bravo']}:1")

    posted = newsroom.http.post(
        newsroom.local(link), data={"form_token": token.group(1)}, headers={"Origin": newsroom.web.url}
    )

    assert posted.status_code == 409 and "older version" in posted.text
    assert draft(project)["status"] == "draft"


def test_a_tampered_link_or_one_for_an_issue_already_sent_approves_nothing(newsroom: Newsroom) -> None:
    project = newsroom.project
    draft(project)
    ok(project, "review", "weekly")
    link = approve_link(newsroom.reviews()["rev1@example.org"])
    payload, mac = link.rsplit("/", 1)[1].split(".")

    tampered = newsroom.http.get(newsroom.local(f"{BASE_URL}/approve/{payload}.{mac[:-2]}AA"))
    assert tampered.status_code == 400 and "This approval link is not valid" in tampered.text

    ok(project, "approve", "weekly", "--by", "Ann")
    ok(project, "send", "weekly", "--yes")
    sent = newsroom.http.get(newsroom.local(link))
    assert sent.status_code == 409
    assert "Issue #1 of weekly is already sent; this link approves nothing" in sent.text


def test_review_needs_reviewers_and_a_draft(newsroom: Newsroom) -> None:
    project = newsroom.project
    assert "weekly has no draft to review" in one_error_line(cli(project, "review", "weekly"))
    set_digest(project, reviewers=[])
    draft(project)

    assert "[digests.weekly] has no reviewers" in one_error_line(cli(project, "review", "weekly"))
