"""What a send will do, decided before anything is recorded: one of three plans.

- `NothingNew`: no unfinished issue, and too few new articles for a new one.
- `ResumeIssue`: the digest has an unfinished issue (sending, or paused): send the rest
  of it, exactly as it was recorded (its content and list, whatever the config says now).
- `NewIssue`: the next issue, composed and rendered, to be recorded and sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..compose import next_issue
from ..config import Config, DigestSettings
from ..errors import DeliveryError
from ..message import MessageTemplate, feedback_id, issue_label
from ..models import IssueContent
from ..render import RenderedIssue, render_issue
from ..signing import load_signer
from ..store import Store
from ..store.issues import ArticleEntry, IssueRecord
from ..store.records import ListRecord


def _ignore(_: str) -> None:
    pass


@dataclass(frozen=True)
class NothingNew:
    digest: DigestSettings

    @property
    def reason(self) -> str:
        return (
            f"no new articles for {self.digest.name} in the last "
            f"{self.digest.lookback_days} days"
        )


@dataclass(frozen=True)
class ResumeIssue:
    digest: DigestSettings
    list: ListRecord
    issue: IssueRecord
    recipients: int  # deliveries still outstanding

    @property
    def number(self) -> int:
        return self.issue.number

    @property
    def subject(self) -> str:
        return self.issue.subject

    def template(self, config: Config) -> MessageTemplate:
        """The message exactly as the issue was recorded."""
        return _template(
            config, self.list, self.digest.name, self.number, self.issue.created_at,
            self.subject, self.issue.html, self.issue.text,
        )

    def take(self, store: Store) -> IssueRecord:
        """The issue, sending again if it was paused."""
        store.ledger.resume(self.issue.id)
        return store.issues.get(self.issue.id)


@dataclass(frozen=True)
class NewIssue:
    digest: DigestSettings
    list: ListRecord
    content: IssueContent
    rendered: RenderedIssue
    recipients: int

    @property
    def number(self) -> int:
        return self.content.number

    @property
    def subject(self) -> str:
        return self.content.subject

    @property
    def article_count(self) -> int:
        return len(self.content.articles)

    def check_sendable(self) -> None:
        """DeliveryError when the issue would go to nobody (nothing is recorded then)."""
        if self.recipients == 0:
            raise DeliveryError(
                f"list {self.list.slug!r} has no confirmed subscribers; add some with "
                f"`newsletter subscribers add EMAIL --list {self.list.slug}`"
            )

    def template(self, config: Config) -> MessageTemplate:
        return _template(
            config, self.list, self.digest.name, self.number, self.content.created,
            self.subject, self.rendered.html, self.rendered.text,
        )

    def take(self, store: Store) -> IssueRecord:
        """Record the issue: content, articles and a pending delivery per recipient."""
        return store.issues.record(
            digest=self.digest.name,
            number=self.number,
            list_id=self.list.id,
            subject=self.subject,
            html=self.rendered.html,
            text=self.rendered.text,
            articles=[ArticleEntry(a.id, a.title, a.url) for a in self.content.articles],
            created_at=self.content.created,
        )


SendPlan = NothingNew | ResumeIssue | NewIssue


def prepare_send(
    config: Config, store: Store, digest_name: str, warn: Callable[[str], None] = _ignore
) -> SendPlan:
    """Find the unfinished issue, or compose and render the next one; records nothing."""
    digest = config.digest(digest_name)
    issue = store.issues.unfinished(digest.name)
    if issue is not None:
        list_record = store.lists.get_by_id(issue.list_id)
        return ResumeIssue(digest, list_record, issue, store.ledger.counts(issue.id).pending)
    list_record = store.lists.get(digest.list)
    content = next_issue(config, digest, store, warn)
    if len(content.articles) < max(1, digest.min_articles):
        return NothingNew(digest)
    rendered = render_issue(config, digest, content)
    for message in rendered.warnings:
        warn(message)
    return NewIssue(digest, list_record, content, rendered, store.issues.recipient_count(list_record.id))


def _template(
    config: Config,
    list_record: ListRecord,
    digest_name: str,
    number: int,
    created: datetime,
    subject: str,
    html_part: str,
    text_part: str,
) -> MessageTemplate:
    return MessageTemplate(
        config,
        list_id=list_record.id,
        list_slug=list_record.slug,
        label=issue_label(digest_name, number, created),
        subject=subject,
        html_part=html_part,
        text_part=text_part,
        signer=load_signer(config),
        feedback_id=feedback_id(config, number, digest_name, list_record.slug),
    )
