"""Store area: issues of each digest, the articles they carried, and their history.

`record` writes the issue, its articles and one `pending` delivery per recipient in one
transaction (recipients chosen by SQL, so memory does not grow with the list); from then
on the deliveries are the ledger's (ledger.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Select, case, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, StoreError
from .ledger import DeliveryCounts
from .records import CONFIRMED, DONE, FAILED, OUTSTANDING, PAUSED, PENDING, SENDING, SENT, SKIPPED
from .schema import carried_articles, deliveries, issue_articles, issues, memberships, subscribers
from .suppressions import address_suppressed

if TYPE_CHECKING:
    from . import Store


class IssueConflict(StoreError):
    """Another sender recorded the same issue number at the same moment."""


@dataclass(frozen=True)
class IssueRecord:
    id: int
    digest: str
    number: int
    list_id: int
    subject: str
    html: str
    text: str
    status: str
    paused_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    marker_nonce: str | None  # see personal.py

    @property
    def label(self) -> str:
        """Names the issue in outbox folders and Message-IDs: digest-number."""
        return f"{self.digest}-{self.number}"


@dataclass(frozen=True)
class ArticleEntry:
    article_id: str
    title: str
    url: str | None
    keys: frozenset[str]  # Article.identity(): what the digest remembers it by


@dataclass(frozen=True)
class IssueSummary:
    """One line of `newsletter history`."""

    digest: str
    number: int
    subject: str
    status: str
    paused_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    counts: DeliveryCounts

    def as_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "number": self.number,
            "subject": self.subject,
            "status": self.status,
            "paused_reason": self.paused_reason,
            "created": self.created_at.isoformat(),
            "finished": self.finished_at.isoformat() if self.finished_at else None,
            "recipients": self.counts.total,
            "pending": self.counts.pending,
            "sent": self.counts.sent,
            "failed": self.counts.failed,
            "skipped": self.counts.skipped,
        }


@dataclass(frozen=True)
class DeliveryLine:
    """One line of `newsletter deliveries`: a recipient of an issue and what became of it."""

    email: str | None  # None once the person was forgotten
    status: str  # pending (also while claimed) | sent | failed | skipped
    attempts: int
    sent_at: datetime | None
    reply: str | None  # the server's reply, or why it was skipped

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "status": self.status,
            "attempts": self.attempts,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "reply": self.reply,
        }


class Issues:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- composing -----------------------------------------------------------------------

    def carried_keys(self, digest: str) -> set[str]:
        """The identity keys of every article an earlier issue of this digest carried."""
        with self.store.read() as conn:
            rows = conn.execute(select(carried_articles.c.article_key).where(carried_articles.c.digest == digest))
            return set(rows.scalars())

    def next_number(self, digest: str) -> int:
        """The number the digest's next issue will carry (1 for the first)."""
        with self.store.read() as conn:
            latest = conn.execute(
                select(func.max(issues.c.number)).where(issues.c.digest == digest)
            ).scalar_one()
            return (latest or 0) + 1

    def recipient_count(self, list_id: int) -> int:
        """How many addresses an issue of this list would go to now."""
        with self.store.read() as conn:
            return conn.execute(
                select(func.count()).select_from(deliverable(list_id).subquery())
            ).scalar_one()

    def first_recipients(self, list_id: int, limit: int) -> list[str]:
        with self.store.read() as conn:
            return [row.email for row in conn.execute(deliverable(list_id).limit(limit))]

    def record(
        self,
        *,
        digest: str,
        number: int,
        list_id: int,
        subject: str,
        html: str,
        text: str,
        articles: Sequence[ArticleEntry],
        created_at: datetime,
        marker_nonce: str | None,
        guard: Callable[[Connection], None] | None = None,
    ) -> IssueRecord:
        """The issue, its articles and a pending delivery per recipient, all or nothing;
        its status is `sending`. `guard` runs first in the same transaction and may refuse
        by raising (the draft the issue comes from must not have changed meanwhile)."""
        try:
            with self.store.write() as conn:
                if guard is not None:
                    guard(conn)
                issue_id = conn.execute(
                    insert(issues).values(
                        digest=digest,
                        number=number,
                        list_id=list_id,
                        subject=subject,
                        html=html,
                        text=text,
                        status=SENDING,
                        created_at=created_at,
                        marker_nonce=marker_nonce,
                    )
                ).inserted_primary_key[0]
                if articles:
                    conn.execute(
                        insert(issue_articles),
                        [
                            {
                                "issue_id": issue_id,
                                "digest": digest,
                                "article_id": a.article_id,
                                "position": position,
                                "title": a.title,
                                "url": a.url,
                            }
                            for position, a in enumerate(articles, start=1)
                        ],
                    )
                    _remember_carried(conn, digest, issue_id, articles)
                recipients = deliverable(list_id).subquery()
                conn.execute(
                    insert(deliveries).from_select(
                        ["issue_id", "subscriber_id", "email", "status", "attempts"],
                        select(
                            literal(issue_id),
                            recipients.c.subscriber_id,
                            recipients.c.email,
                            literal(PENDING),
                            literal(0),
                        ).order_by(recipients.c.subscriber_id),
                    )
                )
        except IntegrityError:
            raise IssueConflict(
                f"issue #{number} of {digest} (or one of its articles) was just recorded by "
                f"another sender; run `newsletter send {digest}` again to resume it"
            ) from None
        return self.get(issue_id)

    # -- reading -------------------------------------------------------------------------

    def get(self, issue_id: int) -> IssueRecord:
        with self.store.read() as conn:
            row = conn.execute(select(issues).where(issues.c.id == issue_id)).first()
        if row is None:
            raise NotFound(f"no issue with id {issue_id}; see `newsletter history`")
        return _issue(row)

    def unfinished(self, digest: str) -> IssueRecord | None:
        """The digest's issue that is still sending or paused, if there is one."""
        with self.store.read() as conn:
            row = conn.execute(
                select(issues)
                .where(issues.c.digest == digest, issues.c.status.in_((SENDING, PAUSED)))
                .order_by(issues.c.number)
                .limit(1)
            ).first()
        return None if row is None else _issue(row)

    def being_sent(self) -> IssueRecord | None:
        """The oldest issue of any digest that is being sent: what a worker joins."""
        with self.store.read() as conn:
            row = conn.execute(
                select(issues).where(issues.c.status == SENDING).order_by(issues.c.id).limit(1)
            ).first()
        return None if row is None else _issue(row)

    def list_sent(self, digest: str, limit: int | None = None) -> list[IssueRecord]:
        """The digest's finished issues, newest first: the public archive (web)."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(issues)
                .where(issues.c.digest == digest, issues.c.status == DONE)
                .order_by(issues.c.number.desc())
                .limit(limit)
            ).all()
        return [_issue(row) for row in rows]

    def get_sent(self, digest: str, number: int) -> IssueRecord | None:
        """One finished issue of the digest, or None (unknown, or still being sent)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(issues).where(
                    issues.c.digest == digest, issues.c.number == number, issues.c.status == DONE
                )
            ).first()
        return None if row is None else _issue(row)

    def find(self, digest: str, number: int) -> IssueRecord:
        """Issue `number` of the digest, whatever its status; NotFound otherwise."""
        with self.store.read() as conn:
            row = conn.execute(
                select(issues).where(issues.c.digest == digest, issues.c.number == number)
            ).first()
        if row is None:
            raise NotFound(f"no issue #{number} of {digest}; see `newsletter history {digest}`")
        return _issue(row)

    def deliveries(self, issue_id: int, status: str | None = None) -> list[DeliveryLine]:
        """The issue's recipients in claim order, with their outcome (`pending` covers
        claimed ones too)."""
        query = select(
            deliveries.c.email,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.sent_at,
            deliveries.c.error,
        ).where(deliveries.c.issue_id == issue_id)
        if status is not None:
            query = query.where(
                deliveries.c.status.in_(OUTSTANDING if status == PENDING else (status,))
            )
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(deliveries.c.id)).all()
        return [
            DeliveryLine(
                email=row.email,
                status=PENDING if row.status in OUTSTANDING else row.status,
                attempts=row.attempts,
                sent_at=row.sent_at,
                reply=row.error,
            )
            for row in rows
        ]

    def history(self, digest: str | None = None) -> list[IssueSummary]:
        """Every issue (of one digest, or all), newest first, with its delivery counts."""

        def count(*statuses: str) -> Any:
            return func.coalesce(
                func.sum(case((deliveries.c.status.in_(statuses), 1), else_=0)), 0
            )

        query = (
            select(
                issues.c.id,
                issues.c.digest,
                issues.c.number,
                issues.c.subject,
                issues.c.status,
                issues.c.paused_reason,
                issues.c.created_at,
                issues.c.finished_at,
                count(*OUTSTANDING).label("n_pending"),
                count(SENT).label("n_sent"),
                count(FAILED).label("n_failed"),
                count(SKIPPED).label("n_skipped"),
            )
            .outerjoin(deliveries, deliveries.c.issue_id == issues.c.id)
            .group_by(issues.c.id)
            .order_by(issues.c.created_at.desc(), issues.c.id.desc())
        )
        if digest is not None:
            query = query.where(issues.c.digest == digest)
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [
            IssueSummary(
                digest=row.digest,
                number=row.number,
                subject=row.subject,
                status=row.status,
                paused_reason=row.paused_reason,
                created_at=row.created_at,
                finished_at=row.finished_at,
                counts=DeliveryCounts(row.n_pending, row.n_sent, row.n_failed, row.n_skipped),
            )
            for row in rows
        ]


def _issue(row: Row[Any]) -> IssueRecord:
    return IssueRecord(
        id=row.id,
        digest=row.digest,
        number=row.number,
        list_id=row.list_id,
        subject=row.subject,
        html=row.html,
        text=row.text,
        status=row.status,
        paused_reason=row.paused_reason,
        created_at=row.created_at,
        finished_at=row.finished_at,
        marker_nonce=row.marker_nonce,
    )


def deliverable(list_id: int) -> Select[Any]:
    """(subscriber_id, email, name) of every confirmed member of a list that no suppression
    matches, in subscriber id order: who an issue of that list goes to."""
    return (
        select(subscribers.c.id.label("subscriber_id"), subscribers.c.email, subscribers.c.name)
        .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
        .where(
            memberships.c.list_id == list_id,
            memberships.c.status == CONFIRMED,
            ~address_suppressed(subscribers.c.email_key),
        )
        .order_by(subscribers.c.id)
    )


def _remember_carried(conn: Connection, digest: str, issue_id: int, articles: Sequence[ArticleEntry]) -> None:
    """Every identity key of the issue's articles, once (a key an earlier issue already
    holds stays with that issue)."""
    keys = frozenset().union(*(article.keys for article in articles))
    held = set(
        conn.execute(
            select(carried_articles.c.article_key).where(
                carried_articles.c.digest == digest, carried_articles.c.article_key.in_(keys)
            )
        ).scalars()
    )
    rows = [{"digest": digest, "article_key": key, "issue_id": issue_id} for key in sorted(keys - held)]
    if rows:
        conn.execute(insert(carried_articles), rows)
