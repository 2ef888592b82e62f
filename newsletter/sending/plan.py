"""What a send will do, decided before anything is recorded: one of three plans.

- `NothingNew`: no unfinished issue, and too few new articles for a new one.
- `ResumeIssue`: the digest has an unfinished issue (sending, or paused): send the rest
  of it, exactly as it was recorded (its content and list, whatever the config says now).
- `NewIssue`: the next issue, to be recorded and sent: the digest's draft exactly as it
  stands when there is one, else composed from the sources now. With `approval =
  "required"` only an approved draft may be sent (`check_sendable`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Config, DigestSettings
from ..errors import DeliveryError
from ..store.drafts import APPROVED, DraftRecord, unchanged_draft
from ..store.issues import ArticleEntry, IssueRecord
from ..store.records import ListRecord
from .template import issue_template, message_template

if TYPE_CHECKING:
    from ..message import MessageTemplate
    from ..models import IssueContent
    from ..render import RenderedIssue
    from ..store import Store


REQUIRED = "required"  # [digests.NAME] approval


def ignore_warnings(_: str) -> None:
    """The `warn` of a caller that shows no warnings."""


class AwaitingApproval(DeliveryError):
    """Approval is required and the issue's draft is not approved: nothing was sent."""


@dataclass(frozen=True)
class NothingNew:
    digest: DigestSettings
    draft_number: int | None = None  # the draft that carries too few articles

    @property
    def reason(self) -> str:
        if self.draft_number is not None:
            return (
                f"the draft of issue #{self.draft_number} of {self.digest.name} carries fewer "
                f"than min_articles ({max(1, self.digest.min_articles)}); bring excluded ones "
                f"back with `newsletter edit {self.digest.name} --include ID`"
            )
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

    def template(self, config: Config, *, subject_prefix: str = "") -> MessageTemplate:
        return issue_template(config, self.list, self.issue, subject_prefix=subject_prefix)

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
    draft: DraftRecord | None = None  # the draft it is, as it stood when planned

    @property
    def number(self) -> int:
        return self.content.number

    @property
    def subject(self) -> str:
        return self.content.subject

    @property
    def article_count(self) -> int:
        return len(self.content.articles)

    @property
    def needs_approval(self) -> bool:
        return self.digest.approval == REQUIRED and (self.draft is None or self.draft.status != APPROVED)

    def check_sendable(self) -> None:
        """DeliveryError when the issue would go to nobody, AwaitingApproval when it needs
        an approval it does not have (nothing is recorded then)."""
        name = self.digest.name
        if self.needs_approval and self.draft is None:
            raise AwaitingApproval(
                f"issue #{self.number} of {name} needs approval (approval = \"required\") and "
                f"has no draft; nothing was sent: compose it with `newsletter draft {name}`, "
                f"then approve it with `newsletter approve {name}`"
            )
        if self.needs_approval:
            raise AwaitingApproval(
                f"issue #{self.number} of {name} is not approved (approval = \"required\"); "
                f"nothing was sent: check it with `newsletter draft {name}`, then approve it "
                f"with `newsletter approve {name}`"
            )
        if self.recipients == 0:
            raise DeliveryError(
                f"list {self.list.slug!r} has no confirmed subscribers; add some with "
                f"`newsletter subscribers add EMAIL --list {self.list.slug}`"
            )

    def template(self, config: Config, *, subject_prefix: str = "") -> MessageTemplate:
        return message_template(
            config, self.list, self.digest.name, self.number, self.content.created,
            subject_prefix + self.subject, self.rendered.html, self.rendered.text, self.rendered.markers,
        )

    def take(self, store: Store) -> IssueRecord:
        """Record the issue: content, articles and a pending delivery per recipient; if
        its draft changed since it was planned (or a draft appeared), nothing."""
        draft_hash = None if self.draft is None else self.draft.content_hash
        guard = unchanged_draft(
            self.digest.name, self.number, draft_hash, approved=self.digest.approval == REQUIRED
        )
        return store.issues.record(
            digest=self.digest.name,
            number=self.number,
            list_id=self.list.id,
            subject=self.subject,
            html=self.rendered.html,
            text=self.rendered.text,
            articles=[ArticleEntry(a.id, a.title, a.url, a.identity()) for a in self.content.articles],
            created_at=self.content.created,
            marker_nonce=self.rendered.markers.nonce,
            guard=guard,
        )


SendPlan = NothingNew | ResumeIssue | NewIssue


def prepare_send(
    config: Config, store: Store, digest_name: str, warn: Callable[[str], None] = ignore_warnings
) -> SendPlan:
    """Find the unfinished issue, or take the draft or compose the next issue, and render
    it; records nothing."""
    # Composing and rendering pull in the feed parser, Jinja2, MJML and premailer: only
    # here, not for every process that merely sends (a worker joining an issue).
    from ..drafting import current_issue
    from ..render import render_issue

    digest = config.digest(digest_name)
    issue = store.issues.unfinished(digest.name)
    if issue is not None:
        list_record = store.lists.get_by_id(issue.list_id)
        return ResumeIssue(digest, list_record, issue, store.ledger.counts(issue.id).pending)
    list_record = store.lists.get(digest.list)
    content, draft = current_issue(config, digest, store, warn)
    if len(content.articles) < max(1, digest.min_articles):
        return NothingNew(digest, None if draft is None else draft.number)
    rendered = render_issue(config, digest, content)
    for message in rendered.warnings:
        warn(message)
    recipients = store.issues.recipient_count(list_record.id)
    return NewIssue(digest, list_record, content, rendered, recipients, draft)
