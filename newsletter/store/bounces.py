"""Store area: bounces, complaints and mailto unsubscribes, and THE bounce policy.

Every event is recorded with why (issue, status code, diagnostic, time, source) and what
was done about it, in the transaction that does it. The policy ([bounces], after Mailman):

- a hard bounce (5.x.x, or a 5xx reply at send time) counts; `hard_limit` of them set the
  member `bounced` on the list of the issue that bounced;
- a soft bounce (4.x.x) counts at most once a day; `soft_limit` counted ones within
  `soft_days` set `bounced`;
- only bounces since the member was last confirmed count, so resubscribing starts afresh;
- a complaint (ARF) unsubscribes the member from that list and blocks the address;
- a mailto unsubscribe unsubscribes the member from that list.

Setting `bounced`, a complaint and an unsubscribe are revocations (revocations.py). An
event whose fingerprint was seen before (the same message processed again) changes
nothing. Undo: `subscribers add EMAIL --list SLUG` (or the web's resubscribe) for
`bounced` and unsubscribed members, `subscribers unblock EMAIL` for a complaint's block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, insert, select, update

from ..bounce_settings import BounceSettings
from .events import log_event
from .records import BOUNCED, CONFIRMED, SUPPRESS_ADDRESS, UNSUBSCRIBED
from .revocations import record_revocation
from .schema import bounce_events, deliveries, issues, lists, memberships, subscribers, suppressions, utcnow
from .memberships import set_membership_status

if TYPE_CHECKING:
    from . import Store

# Event kinds and bounce severities.
BOUNCE = "bounce"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
HARD = "hard"
SOFT = "soft"

SOFT_BOUNCE_INTERVAL = timedelta(days=1)
DIAGNOSTIC_CHARS = 500
_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class MemberEvent:
    """What a message (or a send-time reply) proved about one member of one list."""

    kind: str  # bounce | complaint | unsubscribe
    subscriber_id: int
    list_id: int
    source: str
    issue_id: int | None = None
    severity: str | None = None  # bounces: hard | soft
    status: str | None = None
    diagnostic: str | None = None
    fingerprint: str | None = None  # None: never a duplicate


@dataclass(frozen=True)
class Applied:
    action: str
    changed: bool  # something was recorded (False: a duplicate, or nothing to act on)
    email: str | None


@dataclass(frozen=True)
class DeliveryRef:
    """A delivery (or, from an unsubscribe link, a membership) an inbound message is about."""

    subscriber_id: int
    list_id: int
    email: str  # the subscriber's address now
    issue_id: int | None = None
    delivery_id: int | None = None
    digest: str | None = None
    number: int | None = None
    created_at: datetime | None = None  # the issue's, which its Message-IDs carry


@dataclass(frozen=True)
class BounceEventRecord:
    """One line of `newsletter bounces`."""

    at: datetime
    kind: str
    severity: str | None
    email: str | None
    list_slug: str | None
    issue: str | None  # "digest #number"
    status: str | None
    diagnostic: str | None
    source: str
    action: str

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "severity": self.severity,
            "email": self.email,
            "list": self.list_slug,
            "issue": self.issue,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "source": self.source,
            "action": self.action,
        }


def enhanced_status(text: str | None) -> str | None:
    """The first enhanced status code (RFC 3463, e.g. 5.1.1) in `text`, or None."""
    found = _ENHANCED_STATUS.search(text or "")
    return found.group(0) if found else None


def status_of_reply(reply: str) -> str:
    """The status code of an SMTP reply: its enhanced code (5.1.1) if it has one, else
    the class of its basic code (550 -> 5.0.0)."""
    found = enhanced_status(reply)
    if found:
        return found
    basic = reply.strip()[:1]
    return f"{basic}.0.0" if basic in ("4", "5") else "5.0.0"


class Bounces:
    def __init__(self, store: Store, policy: BounceSettings | None = None) -> None:
        self.store = store
        self.policy = policy or BounceSettings()

    def apply(self, event: MemberEvent, now: datetime | None = None) -> Applied:
        """Record the event (as of `now`, default the present) and apply the policy, in one
        transaction; revocations wait for running senders to see them."""
        with self.store.write() as conn:
            applied, epoch = apply_event(conn, event, self.policy, now or utcnow())
        if epoch is not None:
            self.store.ledger.wait_until_seen(epoch)
        return applied

    # -- finding what a message is about (inbound/match.py) ---------------------------------

    def delivery_of(self, issue_id: int, subscriber_id: int) -> DeliveryRef | None:
        """The delivery of an issue to a subscriber (as a VERP token names it)."""
        return self._delivery(
            deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscriber_id
        )

    def delivery_by_id(self, delivery_id: int) -> DeliveryRef | None:
        return self._delivery(deliveries.c.id == delivery_id)

    def last_sent_to(self, email_key: str, since: datetime) -> DeliveryRef | None:
        """The newest delivery sent to this address since `since`."""
        return self._delivery(
            subscribers.c.email_key == email_key,
            deliveries.c.status == "sent",
            deliveries.c.sent_at >= since,
        )

    def membership(self, subscriber_id: int, list_id: int) -> DeliveryRef | None:
        """A subscriber's membership of a list (as an unsubscribe token names it)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(subscribers.c.email)
                .join(memberships, memberships.c.subscriber_id == subscribers.c.id)
                .where(subscribers.c.id == subscriber_id, memberships.c.list_id == list_id)
            ).first()
        return None if row is None else DeliveryRef(subscriber_id, list_id, row.email)

    def _delivery(self, *conditions: Any) -> DeliveryRef | None:
        query = (
            select(
                deliveries.c.id,
                deliveries.c.issue_id,
                deliveries.c.subscriber_id,
                issues.c.list_id,
                issues.c.digest,
                issues.c.number,
                issues.c.created_at,
                subscribers.c.email,
            )
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(*conditions)
            .order_by(deliveries.c.id.desc())
            .limit(1)
        )
        with self.store.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return DeliveryRef(
            subscriber_id=row.subscriber_id,
            list_id=row.list_id,
            email=row.email,
            issue_id=row.issue_id,
            delivery_id=row.id,
            digest=row.digest,
            number=row.number,
            created_at=row.created_at,
        )

    # -- reading -----------------------------------------------------------------------

    def recent(self, limit: int = 100) -> list[BounceEventRecord]:
        """The newest events first."""
        query = (
            select(
                bounce_events,
                lists.c.slug,
                issues.c.digest,
                issues.c.number,
            )
            .outerjoin(lists, lists.c.id == bounce_events.c.list_id)
            .outerjoin(issues, issues.c.id == bounce_events.c.issue_id)
            .order_by(bounce_events.c.at.desc(), bounce_events.c.id.desc())
            .limit(limit)
        )
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [
            BounceEventRecord(
                at=row.at,
                kind=row.kind,
                severity=row.severity,
                email=row.email,
                list_slug=row.slug,
                issue=None if row.digest is None else f"{row.digest} #{row.number}",
                status=row.status,
                diagnostic=row.diagnostic,
                source=row.source,
                action=row.action,
            )
            for row in rows
        ]


def record_refusals(
    conn: Connection, refusals: list[tuple[int, int, str]], policy: BounceSettings
) -> None:
    """5xx replies at send time, (delivery id, subscriber id, reply): hard bounces, with
    the server's reply kept, inside the ledger's transaction. No wait for senders here:
    the sender recording this is one of them."""
    places = {
        row.id: row
        for row in conn.execute(
            select(deliveries.c.id, deliveries.c.issue_id, issues.c.list_id)
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .where(deliveries.c.id.in_([delivery_id for delivery_id, _, _ in refusals]))
        )
    }
    for delivery_id, subscriber_id, reply in refusals:
        place = places.get(delivery_id)
        if place is None:
            continue
        event = MemberEvent(
            BOUNCE, subscriber_id, place.list_id, "send", issue_id=place.issue_id,
            severity=HARD, status=status_of_reply(reply), diagnostic=reply,
            fingerprint=f"delivery:{delivery_id}",
        )
        apply_event(conn, event, policy, utcnow())


def apply_event(
    conn: Connection, event: MemberEvent, policy: BounceSettings, now: datetime
) -> tuple[Applied, int | None]:
    """Inside the caller's write transaction: record the event and do what the policy
    says; (what was done, the revocation epoch when someone was taken off the list)."""
    if event.fingerprint is not None and _seen(conn, event.fingerprint):
        return Applied("none: this message was processed before", False, None), None
    member = conn.execute(
        select(subscribers.c.email, subscribers.c.email_key, memberships.c.status, memberships.c.confirmed_at)
        .select_from(subscribers)
        .outerjoin(
            memberships,
            (memberships.c.subscriber_id == subscribers.c.id)
            & (memberships.c.list_id == event.list_id),
        )
        .where(subscribers.c.id == event.subscriber_id)
    ).first()
    if member is None:
        return Applied("none: the subscriber no longer exists", False, None), None
    slug = conn.execute(select(lists.c.slug).where(lists.c.id == event.list_id)).scalar()
    if event.kind == BOUNCE:
        counted = event.severity == HARD or not _soft_counted_since(conn, event, now - SOFT_BOUNCE_INTERVAL)
        action, revoked = _bounce(conn, event, member, slug, counted, policy, now)
    else:
        counted = True
        action, revoked = _leave(conn, event, member, slug, now)
    conn.execute(
        insert(bounce_events).values(
            at=now,
            kind=event.kind,
            severity=event.severity,
            counted=counted,
            subscriber_id=event.subscriber_id,
            list_id=event.list_id,
            issue_id=event.issue_id,
            email=member.email,
            status=event.status,
            diagnostic=(event.diagnostic or None) and event.diagnostic[:DIAGNOSTIC_CHARS],
            source=event.source,
            action=action,
            fingerprint=event.fingerprint,
        )
    )
    epoch = record_revocation(conn) if revoked else None
    return Applied(action, True, member.email), epoch


def _bounce(
    conn: Connection,
    event: MemberEvent,
    member: Row[Any],
    slug: str | None,
    counted: bool,
    policy: BounceSettings,
    now: datetime,
) -> tuple[str, bool]:
    if not counted:
        return f"none: a soft bounce on {slug} was already counted today", False
    conn.execute(
        update(subscribers)
        .where(subscribers.c.id == event.subscriber_id)
        .values(bounces=subscribers.c.bounces + 1)
    )
    if member.status != CONFIRMED:
        return f"counted; not a confirmed member of {slug} ({member.status or 'not on it'})", False
    if event.severity == HARD:
        limit, since, what = policy.hard_limit, member.confirmed_at, "hard bounce"
    else:
        window_start = now - timedelta(days=policy.soft_days)
        since = max(window_start, member.confirmed_at) if member.confirmed_at else window_start
        limit, what = policy.soft_limit, f"soft bounce in {policy.soft_days} days"
    count = _counted_since(conn, event, since) + 1  # this one is not inserted yet
    if count < limit:
        return f"counted: {what} {count} of {limit} on {slug}", False
    set_membership_status(conn, event.subscriber_id, event.list_id, BOUNCED, now)
    log_event(
        conn, "bounced", source=event.source, email=member.email,
        subscriber_id=event.subscriber_id, list_id=event.list_id,
        detail=_why(event) | {"count": count, "limit": limit},
    )
    return f"bounced on {slug} ({what} {count} of {limit})", True


def _leave(
    conn: Connection, event: MemberEvent, member: Row[Any], slug: str | None, now: datetime
) -> tuple[str, bool]:
    """A complaint or a mailto unsubscribe: off the list (a complaint also blocks)."""
    done = []
    if member.status is not None and member.status != UNSUBSCRIBED:
        set_membership_status(conn, event.subscriber_id, event.list_id, UNSUBSCRIBED, now)
        log_event(
            conn, "unsubscribed", source=event.source, email=member.email,
            subscriber_id=event.subscriber_id, list_id=event.list_id, detail=_why(event),
        )
        done.append(f"unsubscribed from {slug}")
    if event.kind == COMPLAINT and not _blocked(conn, member.email_key):
        reason = f"complaint (spam report) about {_issue_name(conn, event.issue_id) or slug}"
        conn.execute(
            insert(suppressions).values(kind=SUPPRESS_ADDRESS, value=member.email_key, reason=reason)
        )
        log_event(
            conn, "blocked", source=event.source, email=member.email,
            subscriber_id=event.subscriber_id,
            detail={"kind": SUPPRESS_ADDRESS, "value": member.email_key, "reason": reason},
        )
        done.append("blocked")
    if not done:
        return f"none: already unsubscribed from {slug}", False
    return " and ".join(done), True


def _why(event: MemberEvent) -> dict[str, Any]:
    return {
        "issue_id": event.issue_id,
        "kind": event.kind,
        "severity": event.severity,
        "status": event.status,
        "diagnostic": (event.diagnostic or "")[:DIAGNOSTIC_CHARS],
    }


def _seen(conn: Connection, fingerprint: str) -> bool:
    return (
        conn.execute(
            select(bounce_events.c.id).where(bounce_events.c.fingerprint == fingerprint)
        ).first()
        is not None
    )


def _member_bounces(event: MemberEvent, severity: str) -> tuple[Any, ...]:
    return (
        bounce_events.c.subscriber_id == event.subscriber_id,
        bounce_events.c.list_id == event.list_id,
        bounce_events.c.kind == BOUNCE,
        bounce_events.c.severity == severity,
        bounce_events.c.counted.is_(True),
    )


def _soft_counted_since(conn: Connection, event: MemberEvent, since: datetime) -> bool:
    return bool(
        conn.execute(
            select(func.count()).where(*_member_bounces(event, SOFT), bounce_events.c.at > since)
        ).scalar_one()
    )


def _counted_since(conn: Connection, event: MemberEvent, since: datetime | None) -> int:
    query = select(func.count()).where(*_member_bounces(event, event.severity or HARD))
    if since is not None:
        query = query.where(bounce_events.c.at >= since)
    return int(conn.execute(query).scalar_one())


def _blocked(conn: Connection, key: str) -> bool:
    return (
        conn.execute(
            select(suppressions.c.id).where(
                suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value == key
            )
        ).first()
        is not None
    )


def _issue_name(conn: Connection, issue_id: int | None) -> str | None:
    if issue_id is None:
        return None
    row = conn.execute(
        select(issues.c.digest, issues.c.number).where(issues.c.id == issue_id)
    ).first()
    return None if row is None else f"{row.digest} #{row.number}"
