"""Store area: the delivery ledger, which makes sending exactly-once.

An issue has one delivery row per recipient (written when the issue is recorded, see
issues.py). Sender processes work on it side by side:

- A sender `join`s the issue: it registers in `senders` with a lease, and frees what
  senders that are gone left behind (claims whose lease ran out, and at once those of
  a dead process on this host).
- It `claim`s a batch of due pending deliveries (status `claimed`, claimed_by,
  claimed_until) in one short transaction, skipping whoever is no longer a confirmed
  member or is now suppressed. On PostgreSQL the rows are taken `FOR UPDATE SKIP LOCKED`,
  so senders never wait on each other's claims.
- Its `heartbeat` extends its lease and its claims; a claim whose lease ran out (its
  sender died) is claimable by anyone.
- Outcomes are written as the server answers (`record_outcomes`): `sent`, `failed`
  (with the server's reply), back to `pending` with a `retry_at` (deferred), `skipped`, or
  released unsent.
- Revocations (revocations.py): a sender re-checks its claims when the revocation clock
  moves (`revoked_claims`) and then `acknowledge`s the epoch; `wait_until_seen` is how an
  unsubscribe waits for that.
- The issue is `finish`ed (done) when nothing is outstanding, or `pause`d with a reason.

Every write here is a short `store.write(serial=False)` transaction: the write lock up
front on SQLite, row locks on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from .bounces import record_refusals
from .records import (
    CLAIMED,
    CONFIRMED,
    DONE,
    FAILED,
    OUTSTANDING,
    PAUSED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
)
from .revocations import current_epoch
from .schema import (
    UtcDateTime,
    deliveries,
    driver_timestamp,
    issues,
    memberships,
    senders,
    subscribers,
    utcnow,
)
from .suppressions import address_suppressed

if TYPE_CHECKING:
    from . import Store


# How long an unsubscribe waits for running senders to see it, and how often it looks.
REVOCATION_WAIT_SECONDS = 10.0
_REVOCATION_WAIT_POLL = 0.01


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
    bounce: bool = False  # a permanent refusal: a hard bounce (store/bounces.py)


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int = 0  # pending or claimed: not yet final
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sent + self.failed + self.skipped


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- senders -----------------------------------------------------------------------

    def join(
        self, issue_id: int, owner: str, until: datetime, is_dead: Callable[[str], bool]
    ) -> int | None:
        """Register `owner` as a sender of the issue, freeing what gone senders left
        behind; the revocation epoch it starts from (its claims are checked against
        everything up to it), or None (nothing changed) when the issue is not sending."""
        now = utcnow()
        with self.store.write(serial=False) as conn:
            status = conn.execute(select(issues.c.status).where(issues.c.id == issue_id)).scalar()
            if status != SENDING:
                return None
            _free_what_gone_senders_left(conn, issue_id, now, is_dead)
            epoch = current_epoch(conn)
            conn.execute(
                insert(senders).values(
                    owner=owner,
                    issue_id=issue_id,
                    started_at=now,
                    lease_until=until,
                    revocations_seen=epoch,
                )
            )
        return epoch

    def reap(self, issue_id: int, is_dead: Callable[[str], bool]) -> None:
        """Free the claims of the issue's senders that are gone (lease run out, or a dead
        process on this host), so that the living take them over."""
        now = utcnow()
        with self.store.read() as conn:
            suspects = conn.execute(
                select(senders.c.owner, senders.c.lease_until).where(senders.c.issue_id == issue_id)
            ).all()
        if any(row.lease_until < now or is_dead(row.owner) for row in suspects):
            with self.store.write(serial=False) as conn:
                _free_what_gone_senders_left(conn, issue_id, now, is_dead)

    def heartbeat(self, issue_id: int, owner: str, until: datetime) -> bool:
        """Extend this sender's lease and claims; False when it must stop: the issue is
        no longer sending, or others found its lease expired and took over."""
        with self.store.write(serial=False) as conn:
            registered = conn.execute(
                update(senders).where(senders.c.owner == owner).values(lease_until=until)
            ).rowcount
            status = conn.execute(select(issues.c.status).where(issues.c.id == issue_id)).scalar()
            if not registered or status != SENDING:
                return False
            conn.execute(
                update(deliveries).where(*_claimed_by(issue_id, owner)).values(claimed_until=until)
            )
        return True

    def leave(self, issue_id: int, owner: str) -> None:
        """Unregister; this sender's unsent claims go back to pending."""
        with self.store.write(serial=False) as conn:
            _release_claims(conn, issue_id, owner)
            conn.execute(delete(senders).where(senders.c.owner == owner))

    # -- claiming --------------------------------------------------------------------

    def claim(
        self, issue_id: int, list_id: int, owner: str, until: datetime, limit: int
    ) -> Claim | None:
        """Claim up to `limit` due deliveries in id order (pending ones, then claims whose
        lease ran out); None when this sender must stop (see heartbeat). Whoever is no
        longer a confirmed member, or is now suppressed, is skipped instead."""
        now = utcnow()
        dialect = self.store.dialect
        with self.store.write(serial=False) as conn:
            if not _may_claim(conn, issue_id, owner):
                return None
            due = _claimable(conn, list_id, issue_id, now, limit)
            reasons = {row.id: skip_reason(row) for row in due}
            claimed = [row for row in due if reasons[row.id] is None]
            skipped = [(reasons[row.id], row.id) for row in due if reasons[row.id] is not None]
            if skipped:
                conn.exec_driver_sql(_driver_sql(_SKIP, dialect), skipped)
            if claimed:
                claimed_until = driver_timestamp(until, dialect)
                conn.exec_driver_sql(
                    _driver_sql(_CLAIM, dialect), [(owner, claimed_until, row.id) for row in claimed]
                )
        return Claim(
            [ClaimedDelivery(r.id, r.subscriber_id, r.email, r.name or "", r.attempts) for r in claimed],
            skipped=len(skipped),
        )

    # -- revocations -------------------------------------------------------------------

    def revocation_epoch(self) -> int:
        with self.store.read() as conn:
            return current_epoch(conn)

    def revoked_claims(self, issue_id: int, list_id: int, owner: str) -> tuple[int, dict[int, str]]:
        """(epoch, delivery id -> reason) for this owner's claims whose recipient left, was
        blocked or was forgotten: every revocation up to `epoch` is reflected."""
        with self.store.read() as conn:
            # The clock first: whatever moved it is committed, so the read below sees it.
            epoch = current_epoch(conn)
            rows = conn.execute(
                with_recipient_state(list_id).where(*_claimed_by(issue_id, owner))
            ).all()
        reasons = {row.id: skip_reason(row) for row in rows}
        return epoch, {delivery_id: reason for delivery_id, reason in reasons.items() if reason}

    def acknowledge(self, owner: str, epoch: int) -> None:
        """This sender will start no message to anyone revoked up to `epoch`."""
        with self.store.write(serial=False) as conn:
            conn.execute(
                update(senders)
                .where(senders.c.owner == owner, senders.c.revocations_seen < epoch)
                .values(revocations_seen=epoch)
            )

    def wait_until_seen(self, epoch: int, timeout: float = REVOCATION_WAIT_SECONDS) -> bool:
        """Wait until every live sender has seen revocation `epoch`; False on timeout (a
        sender that stalls for that long stops by itself when its lease runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.read() as conn:
                behind = conn.execute(
                    select(func.count())
                    .select_from(senders)
                    .where(senders.c.lease_until > utcnow(), senders.c.revocations_seen < epoch)
                ).scalar_one()
            if not behind:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(_REVOCATION_WAIT_POLL)

    # -- outcomes and the issue's end ----------------------------------------------------

    def record_outcomes(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        """Write what happened to claimed deliveries, in one transaction.

        `sent` is written whatever the claim's state: the message went out, and the row
        must say so or it would go out again. The other outcomes only touch rows this
        owner still holds. This runs for every few messages: two plain statements sent
        straight to the driver, not SQLAlchemy constructs compiled each time.
        """
        dialect = self.store.dialect
        now = driver_timestamp(utcnow(), dialect)
        sent = [(now, o.delivery_id) for o in outcomes if o.status == SENT]
        others = [
            (o.status, 1 if o.attempted else 0, o.error, driver_timestamp(o.retry_at, dialect), o.delivery_id, owner)
            for o in outcomes
            if o.status != SENT
        ]
        bounced = [
            (o.delivery_id, o.subscriber_id, o.error or "")
            for o in outcomes
            if o.bounce and o.subscriber_id is not None
        ]
        with self.store.write(serial=False) as conn:
            if sent:
                conn.exec_driver_sql(_driver_sql(_RECORD_SENT, dialect), sent)
            if others:
                conn.exec_driver_sql(_driver_sql(_RECORD_OTHER, dialect), others)
            if bounced:
                record_refusals(conn, bounced, self.store.bounces.policy)

    def next_wakeup(self, issue_id: int) -> datetime | None:
        """When something of this issue may become claimable: the earliest retry of a
        deferred delivery or the end of a claim; None when nothing is outstanding."""
        now = utcnow()
        with self.store.read() as conn:
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

    def finish(self, issue_id: int) -> bool:
        """Mark the issue done if nothing is outstanding (whether it is done now)."""
        outstanding = (
            select(deliveries.c.id)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_(OUTSTANDING))
            .exists()
        )
        with self.store.write(serial=False) as conn:
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id, issues.c.status == SENDING, ~outstanding)
                .values(status=DONE, finished_at=utcnow())
            )
            return conn.execute(select(issues.c.status).where(issues.c.id == issue_id)).scalar() == DONE

    def pause(self, issue_id: int, reason: str) -> None:
        """Stop every sender of the issue (they see it at their next claim or heartbeat)."""
        with self.store.write(serial=False) as conn:
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id, issues.c.status == SENDING)
                .values(status=PAUSED, paused_reason=reason)
            )

    def resume(self, issue_id: int) -> None:
        """A paused issue is sending again (`newsletter send` on it)."""
        with self.store.write(serial=False) as conn:
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id, issues.c.status == PAUSED)
                .values(status=SENDING, paused_reason=None)
            )

    def counts(self, issue_id: int) -> DeliveryCounts:
        with self.store.read() as conn:
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


_RECORD_SENT = (
    f"UPDATE deliveries SET status = '{SENT}', sent_at = ?, attempts = attempts + 1, "
    "claimed_by = NULL, claimed_until = NULL, error = NULL, retry_at = NULL WHERE id = ?"
)
_RECORD_OTHER = (
    "UPDATE deliveries SET status = ?, attempts = attempts + ?, error = ?, retry_at = ?, "
    f"claimed_by = NULL, claimed_until = NULL WHERE id = ? AND status = '{CLAIMED}' AND claimed_by = ?"
)


def _driver_sql(statement: str, dialect: str) -> str:
    """A statement written with `?` markers in the driver's own parameter style."""
    return statement.replace("?", "%s") if dialect == "postgresql" else statement


def with_recipient_state(list_id: Any) -> Select[Any]:
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


def skip_reason(row: Row[Any]) -> str | None:
    """Why a delivery's recipient may no longer be mailed (None: they may)."""
    if row.subscriber_id is None or row.email is None:
        return "subscriber forgotten"
    if row.suppressed:
        return "blocked"
    if row.membership != CONFIRMED:
        return row.membership or "no longer on the list"  # unsubscribed, bounced, ...
    return None


def _free_what_gone_senders_left(
    conn: Connection, issue_id: int, now: datetime, is_dead: Callable[[str], bool]
) -> None:
    """Unregister the issue's gone senders; their claims, and any claim whose lease ran
    out, become pending again."""
    others = conn.execute(
        select(senders.c.owner, senders.c.lease_until).where(senders.c.issue_id == issue_id)
    ).all()
    gone = [o.owner for o in others if o.lease_until < now or is_dead(o.owner)]
    stale = deliveries.c.claimed_until < now
    if gone:
        stale = or_(stale, deliveries.c.claimed_by.in_(gone))
        conn.execute(delete(senders).where(senders.c.owner.in_(gone)))
    conn.execute(
        update(deliveries)
        .where(deliveries.c.issue_id == issue_id, deliveries.c.status == CLAIMED, stale)
        .values(status=PENDING, claimed_by=None, claimed_until=None)
    )


def _due(*where: Any) -> Select[Any]:
    """A claim's query: the first `limit` deliveries of the issue that match, in id order,
    skipping rows another sender holds locked (PostgreSQL; on SQLite the write lock keeps
    claims apart). Built once: only the parameters change from claim to claim."""
    return (
        with_recipient_state(bindparam("list_id"))
        .where(deliveries.c.issue_id == bindparam("issue_id"), *where)
        .order_by(deliveries.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=deliveries)
    )


_DUE_PENDING = _due(
    deliveries.c.status == PENDING,
    or_(deliveries.c.retry_at.is_(None), deliveries.c.retry_at <= bindparam("now", type_=UtcDateTime)),
)
_DUE_EXPIRED = _due(
    deliveries.c.status == CLAIMED, deliveries.c.claimed_until < bindparam("now", type_=UtcDateTime)
)
_CLAIM = f"UPDATE deliveries SET status = '{CLAIMED}', claimed_by = ?, claimed_until = ? WHERE id = ?"
_SKIP = (
    f"UPDATE deliveries SET status = '{SKIPPED}', error = ?, claimed_by = NULL, "
    "claimed_until = NULL WHERE id = ?"
)


def _claimable(
    conn: Connection, list_id: int, issue_id: int, now: datetime, limit: int
) -> list[Row[Any]]:
    """Due pending deliveries, then claims whose lease ran out; locked for this claim."""
    params = {"list_id": list_id, "issue_id": issue_id, "now": now, "limit": limit}
    rows = list(conn.execute(_DUE_PENDING, params).all())
    if len(rows) < limit:
        rows += conn.execute(_DUE_EXPIRED, {**params, "limit": limit - len(rows)}).all()
    return rows


def _may_claim(conn: Connection, issue_id: int, owner: str) -> bool:
    """Whether `owner` is a sender of the issue whose lease runs, and it is still sending."""
    return bool(
        conn.execute(
            select(func.count())
            .select_from(senders.join(issues, issues.c.id == senders.c.issue_id))
            .where(
                senders.c.owner == owner,
                senders.c.lease_until > utcnow(),
                issues.c.id == issue_id,
                issues.c.status == SENDING,
            )
        ).scalar_one()
    )


def _claimed_by(issue_id: int, owner: str) -> tuple[Any, ...]:
    """WHERE terms: the issue's deliveries this owner holds claimed."""
    return (
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == CLAIMED,
        deliveries.c.claimed_by == owner,
    )


def _release_claims(conn: Connection, issue_id: int, owner: str) -> None:
    conn.execute(
        update(deliveries)
        .where(*_claimed_by(issue_id, owner))
        .values(status=PENDING, claimed_by=None, claimed_until=None)
    )
