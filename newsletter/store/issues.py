"""Store area: issues of each digest, the articles they carried, and their deliveries.

The deliveries table is the ledger that makes sending exactly-once:

- `record` writes the issue, its articles and one `pending` delivery per recipient in one
  transaction (recipients chosen by SQL, so memory does not grow with the list).
- One sender at a time works an issue: it holds the issue's lease (lease_owner,
  lease_expires), renewed while it runs. Every write a sender makes while sending starts
  by checking that lease, so a sender that lost it stops claiming.
- A sender claims a batch (status `claimed`, claimed_by, claimed_until) in one short
  transaction that re-checks membership and suppressions, so whoever unsubscribed or was
  blocked since the issue was recorded is `skipped`, never mailed.
- Results are recorded as they come: `sent`, `failed` (5xx, with the server's reply),
  back to `pending` with a `retry_at` (4xx), or released unsent.
- A claim whose lease ran out (its sender crashed) is claimable again.

Every write transaction here starts with a write statement: SQLite then takes its write
lock at once and a concurrent writer waits (busy timeout) instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, case, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, StoreError
from .records import CONFIRMED
from .schema import deliveries, issue_articles, issues, memberships, subscribers, utcnow
from .subscribers import address_suppressed, deliverable

if TYPE_CHECKING:
    from . import Store

# Issue statuses.
SENDING = "sending"
PAUSED = "paused"
DONE = "done"
# Delivery statuses.
PENDING = "pending"
CLAIMED = "claimed"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
OUTSTANDING = (PENDING, CLAIMED)


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
    lease_owner: str | None
    lease_expires: datetime | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def label(self) -> str:
        """Names the issue in outbox folders and Message-IDs: digest-number."""
        return f"{self.digest}-{self.number}"


@dataclass(frozen=True)
class ArticleEntry:
    article_id: str
    title: str
    url: str | None


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int  # attempts made before this one


@dataclass(frozen=True)
class Claim:
    deliveries: list[ClaimedDelivery]
    skipped: int  # unsubscribed or blocked since the issue was recorded


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery; written by `record_outcomes`."""

    delivery_id: int
    status: str  # sent | failed | skipped | pending (deferred, or released unsent)
    subscriber_id: int | None = None
    error: str | None = None
    retry_at: datetime | None = None
    attempted: bool = True  # False: released without a try (the run stopped)
    bounce: bool = False  # a permanent refusal: counts on the subscriber


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int = 0  # pending or claimed: not yet final
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.skipped


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


class Issues:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- composing -----------------------------------------------------------------------

    def carried_article_ids(self, digest: str) -> set[str]:
        """Ids of every article an earlier issue of this digest already carried."""
        with self.store.begin() as conn:
            rows = conn.execute(
                select(issue_articles.c.article_id).where(issue_articles.c.digest == digest)
            )
            return {row.article_id for row in rows}

    def next_number(self, digest: str) -> int:
        """The number the digest's next issue will carry (1 for the first)."""
        with self.store.begin() as conn:
            latest = conn.execute(
                select(func.max(issues.c.number)).where(issues.c.digest == digest)
            ).scalar_one()
            return (latest or 0) + 1

    def recipient_count(self, list_id: int) -> int:
        """How many addresses an issue of this list would go to now."""
        with self.store.begin() as conn:
            return conn.execute(
                select(func.count()).select_from(deliverable(list_id).subquery())
            ).scalar_one()

    def first_recipients(self, list_id: int, limit: int) -> list[str]:
        with self.store.begin() as conn:
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
        owner: str,
        lease_until: datetime,
        created_at: datetime,
    ) -> IssueRecord:
        """The issue, its articles and a pending delivery per recipient, all or nothing;
        the new issue's lease is `owner`'s."""
        try:
            with self.store.begin() as conn:
                issue_id = conn.execute(
                    insert(issues).values(
                        digest=digest,
                        number=number,
                        list_id=list_id,
                        subject=subject,
                        html=html,
                        text=text,
                        status=SENDING,
                        lease_owner=owner,
                        lease_expires=lease_until,
                        created_at=created_at,
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
        with self.store.begin() as conn:
            row = conn.execute(select(issues).where(issues.c.id == issue_id)).first()
        if row is None:
            raise NotFound(f"no issue with id {issue_id}; see `newsletter history`")
        return _issue(row)

    def unfinished(self, digest: str) -> IssueRecord | None:
        """The digest's issue that is still sending or paused, if there is one."""
        with self.store.begin() as conn:
            row = conn.execute(
                select(issues)
                .where(issues.c.digest == digest, issues.c.status.in_((SENDING, PAUSED)))
                .order_by(issues.c.number)
                .limit(1)
            ).first()
        return None if row is None else _issue(row)

    def list_sent(self, digest: str, limit: int | None = None) -> list[IssueRecord]:
        """The digest's finished issues, newest first: the public archive (web)."""
        with self.store.begin() as conn:
            rows = conn.execute(
                select(issues)
                .where(issues.c.digest == digest, issues.c.status == DONE)
                .order_by(issues.c.number.desc())
                .limit(limit)
            ).all()
        return [_issue(row) for row in rows]

    def get_sent(self, digest: str, number: int) -> IssueRecord | None:
        """One finished issue of the digest, or None (unknown, or still being sent)."""
        with self.store.begin() as conn:
            row = conn.execute(
                select(issues).where(
                    issues.c.digest == digest, issues.c.number == number, issues.c.status == DONE
                )
            ).first()
        return None if row is None else _issue(row)

    def counts(self, issue_id: int) -> DeliveryCounts:
        with self.store.begin() as conn:
            rows = conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.issue_id == issue_id)
                .group_by(deliveries.c.status)
            ).all()
        by_status = {status: count for status, count in rows}
        return DeliveryCounts(
            pending=by_status.get(PENDING, 0) + by_status.get(CLAIMED, 0),
            sent=by_status.get(SENT, 0),
            failed=by_status.get(FAILED, 0),
            skipped=by_status.get(SKIPPED, 0),
        )

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
        with self.store.begin() as conn:
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

    def next_wakeup(self, issue_id: int) -> datetime | None:
        """When something of this issue may become claimable: the earliest retry of a
        deferred delivery or the end of a claim; None when nothing is outstanding."""
        now = utcnow()
        with self.store.begin() as conn:
            retry, pending = conn.execute(
                select(func.min(deliveries.c.retry_at), func.count()).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status == PENDING
                )
            ).one()
            claim_end = conn.execute(
                select(func.min(deliveries.c.claimed_until)).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status == CLAIMED
                )
            ).scalar_one()
        candidates = [] if claim_end is None else [claim_end]
        if pending:
            candidates.append(now if retry is None else retry)
        return min(candidates, default=None)

    # -- the lease -------------------------------------------------------------------------

    def take_lease(
        self,
        issue_id: int,
        owner: str,
        until: datetime,
        *,
        previous_owner: str | None,
        previous_dead: bool,
    ) -> bool:
        """Take the issue over from `previous_owner` (None: nobody holds it), only if that is
        still the holder; sets it sending again. Frees the claims of senders that are gone:
        expired ones, and all of the previous holder's when it is known to be dead."""
        now = utcnow()
        holder = (
            issues.c.lease_owner.is_(None)
            if previous_owner is None
            else issues.c.lease_owner == previous_owner
        )
        with self.store.begin() as conn:
            taken = conn.execute(
                update(issues)
                .where(issues.c.id == issue_id, issues.c.status != DONE, holder)
                .values(lease_owner=owner, lease_expires=until, status=SENDING, paused_reason=None)
            ).rowcount
            if not taken:
                return False
            stale = deliveries.c.claimed_until < now
            if previous_owner is not None and previous_dead:
                stale = or_(stale, deliveries.c.claimed_by == previous_owner)
            conn.execute(
                update(deliveries)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.status == CLAIMED, stale)
                .values(status=PENDING, claimed_by=None, claimed_until=None)
            )
        return True

    def renew(self, issue_id: int, owner: str, until: datetime) -> bool:
        """Extend the issue's lease and this owner's claims; False if the lease was lost."""
        with self.store.begin() as conn:
            held = _extend_lease(conn, issue_id, owner, until)
            if held:
                conn.execute(
                    update(deliveries)
                    .where(
                        *_claimed_by(issue_id, owner),
                    )
                    .values(claimed_until=until)
                )
        return bool(held)

    def reclaim_expired(self, issue_id: int, owner: str) -> int:
        """Claims of other senders that ran out become pending again (the lease holder's call)."""
        now = utcnow()
        with self.store.begin() as conn:
            if not _still_holds(conn, issue_id, owner):
                return 0
            return conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == CLAIMED,
                    deliveries.c.claimed_until < now,
                )
                .values(status=PENDING, claimed_by=None, claimed_until=None)
            ).rowcount

    def finish(self, issue_id: int, owner: str) -> bool:
        """Mark the issue done if nothing is outstanding; releases the lease."""
        outstanding = (
            select(deliveries.c.id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_(OUTSTANDING))
            .exists()
        )
        with self.store.begin() as conn:
            return bool(
                conn.execute(
                    update(issues)
                    .where(issues.c.id == issue_id, issues.c.lease_owner == owner, ~outstanding)
                    .values(
                        status=DONE, finished_at=utcnow(), lease_owner=None, lease_expires=None
                    )
                ).rowcount
            )

    def release(self, issue_id: int, owner: str, *, pause_reason: str | None = None) -> None:
        """Give up the lease, this owner's unsent claims back to pending; paused with a
        reason when one is given, else left sending (resumable at once)."""
        values: dict[str, Any] = {"lease_owner": None, "lease_expires": None}
        if pause_reason is not None:
            values.update(status=PAUSED, paused_reason=pause_reason)
        with self.store.begin() as conn:
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id, issues.c.lease_owner == owner)
                .values(**values)
            )
            conn.execute(
                update(deliveries)
                .where(
                    *_claimed_by(issue_id, owner),
                )
                .values(status=PENDING, claimed_by=None, claimed_until=None)
            )

    # -- claiming and recording ------------------------------------------------------------

    def claim(
        self, issue_id: int, list_id: int, owner: str, until: datetime, limit: int
    ) -> Claim | None:
        """Claim up to `limit` pending deliveries due now, in id order; None if the lease
        was lost. Who is no longer a confirmed member, or is now blocked, is skipped."""
        now = utcnow()
        with self.store.begin() as conn:
            held = _extend_lease(conn, issue_id, owner, until)
            if not held:
                return None
            rows = conn.execute(
                _with_recipient_state(list_id)
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status == PENDING,
                    or_(deliveries.c.retry_at.is_(None), deliveries.c.retry_at <= now),
                )
                .order_by(deliveries.c.id)
                .limit(limit)
            ).all()
            reasons = {row.id: _skip_reason(row) for row in rows}
            claimed = [row for row in rows if reasons[row.id] is None]
            skipped = [
                {"delivery_id": row.id, "reason": reasons[row.id]}
                for row in rows
                if reasons[row.id] is not None
            ]
            if skipped:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == bindparam("delivery_id"))
                    .values(status=SKIPPED, error=bindparam("reason")),
                    skipped,
                )
            if claimed:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([r.id for r in claimed]))
                    .values(status=CLAIMED, claimed_by=owner, claimed_until=until)
                )
        return Claim(
            [ClaimedDelivery(r.id, r.subscriber_id, r.email, r.name or "", r.attempts) for r in claimed],
            skipped=len(skipped),
        )

    def revoked_claims(self, issue_id: int, list_id: int, owner: str) -> dict[int, str]:
        """Deliveries this owner holds whose recipient left, was blocked or was forgotten
        since the claim: delivery id -> reason. The sender polls this so that nobody who
        leaves mid-send is mailed from a batch already claimed."""
        with self.store.begin() as conn:
            rows = conn.execute(
                _with_recipient_state(list_id).where(
                    *_claimed_by(issue_id, owner),
                )
            ).all()
        reasons = {row.id: _skip_reason(row) for row in rows}
        return {delivery_id: reason for delivery_id, reason in reasons.items() if reason}

    def record_outcomes(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        """Write what happened to claimed deliveries, in one transaction.

        `sent` is written whatever the claim's state: the message went out, and the row
        must say so or it would go out again. The other outcomes only touch rows this
        owner still holds.
        """
        now = utcnow()
        sent = [o.delivery_id for o in outcomes if o.status == SENT]
        others = [o for o in outcomes if o.status != SENT]
        bounced = [o.subscriber_id for o in outcomes if o.bounce and o.subscriber_id is not None]
        with self.store.begin() as conn:
            if sent:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(sent))
                    .values(
                        status=SENT,
                        sent_at=now,
                        attempts=deliveries.c.attempts + 1,
                        claimed_by=None,
                        claimed_until=None,
                        error=None,
                        retry_at=None,
                    )
                )
            if others:
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id == bindparam("delivery_id"),
                        deliveries.c.status == CLAIMED,
                        deliveries.c.claimed_by == owner,
                    )
                    .values(
                        status=bindparam("new_status"),
                        attempts=deliveries.c.attempts + bindparam("tried"),
                        error=bindparam("new_error"),
                        retry_at=bindparam("new_retry_at"),
                        claimed_by=None,
                        claimed_until=None,
                    ),
                    [
                        {
                            "delivery_id": o.delivery_id,
                            "new_status": o.status,
                            "tried": 1 if o.attempted else 0,
                            "new_error": o.error,
                            "new_retry_at": o.retry_at,
                        }
                        for o in others
                    ],
                )
            if bounced:
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == bindparam("bounced_id"))
                    .values(bounces=subscribers.c.bounces + 1),
                    [{"bounced_id": subscriber_id} for subscriber_id in bounced],
                )


def _still_holds(conn: Any, issue_id: int, owner: str) -> bool:
    """Take the write lock by touching the issue, and say whether `owner` holds its lease."""
    return _update_if_held(conn, issue_id, owner, lease_owner=owner)


def _claimed_by(issue_id: int, owner: str) -> tuple[Any, ...]:
    """WHERE terms: the issue's deliveries this owner holds claimed."""
    return (
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == CLAIMED,
        deliveries.c.claimed_by == owner,
    )


def _with_recipient_state(list_id: int) -> Select[Any]:
    """Deliveries with what decides whether their recipient may still be mailed."""
    return select(
        deliveries.c.id,
        deliveries.c.subscriber_id,
        deliveries.c.email,
        deliveries.c.attempts,
        subscribers.c.name,
        memberships.c.status.label("membership"),
        address_suppressed(subscribers.c.email_key).label("suppressed"),
    ).select_from(
        deliveries.outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id).outerjoin(
            memberships,
            and_(
                memberships.c.subscriber_id == deliveries.c.subscriber_id,
                memberships.c.list_id == list_id,
            ),
        )
    )


def _skip_reason(row: Row[Any]) -> str | None:
    if row.subscriber_id is None or row.email is None:
        return "subscriber forgotten"
    if row.suppressed:
        return "blocked"
    if row.membership != CONFIRMED:
        return "unsubscribed" if row.membership else "no longer on the list"
    return None


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
        lease_owner=row.lease_owner,
        lease_expires=row.lease_expires,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _extend_lease(conn: Connection, issue_id: int, owner: str, until: datetime) -> bool:
    """Push the issue's lease to `until` if `owner` still holds it."""
    return _update_if_held(conn, issue_id, owner, lease_expires=until)


def _update_if_held(conn: Connection, issue_id: int, owner: str, **values: Any) -> bool:
    """Update the issue row only while `owner` holds its lease; whether it did."""
    return bool(
        conn.execute(
            update(issues)
            .where(issues.c.id == issue_id, issues.c.lease_owner == owner)
            .values(**values)
        ).rowcount
    )
