"""Store area: memberships, a subscriber on a list (unconfirmed, confirmed, unsubscribed).

Every move is logged (events.py). A move away from `confirmed` is a revocation: it moves
the revocation clock on, and the call returns only once every running sender has seen it
(revocations.py), so nobody is mailed after their unsubscribe returned.
"""

from __future__ import annotations

import secrets as random_tokens
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Select, insert, select, update

from .. import addresses
from ..errors import NotFound, StoreError
from .events import log_event
from .records import (
    BOUNCED,
    CONFIRMED,
    UNCONFIRMED,
    UNSUBSCRIBED,
    AddResult,
    ListRecord,
    MembershipInfo,
)
from .revocations import record_revocation
from .schema import lists, memberships, subscribers, utcnow
from .suppressions import SuppressionLookup

if TYPE_CHECKING:
    from . import Store


def new_confirm_token() -> str:
    """The random token a confirmation link carries; the web side looks it up by value."""
    return random_tokens.token_urlsafe(24)


class Memberships:
    def __init__(self, store: Store) -> None:
        self.store = store

    def confirm(
        self, subscriber_id: int, list_id: int, token: str, ip: str | None = None
    ) -> MembershipInfo:
        """Confirm the membership a confirmation link names (idempotent): its subscriber,
        list and token must all match. NotFound for an unknown token, one that belongs
        to another membership, or one whose member has since unsubscribed."""
        with self.store.write() as conn:
            row = conn.execute(
                _info_select().where(
                    memberships.c.subscriber_id == subscriber_id,
                    memberships.c.list_id == list_id,
                    memberships.c.confirm_token == token,
                    memberships.c.status != UNSUBSCRIBED,
                )
            ).first()
            if row is None:
                raise NotFound("this confirmation link is unknown or no longer valid")
            if row.status == UNCONFIRMED:
                set_membership_status(conn, row.subscriber_id, row.list_id, CONFIRMED, utcnow())
                log_event(
                    conn, "confirmed", source="web", email=row.email,
                    subscriber_id=row.subscriber_id, list_id=row.list_id, ip=ip,
                )
            return _info(row, CONFIRMED)

    def resubscribe(
        self, subscriber_id: int, list_id: int, *, source: str, ip: str | None = None
    ) -> MembershipInfo:
        """Undo an unsubscribe from a link the subscriber received: confirmed again."""
        with self.store.write() as conn:
            row = _row(conn, subscriber_id, list_id)
            if row is None:
                raise NotFound("this subscription no longer exists")
            key = addresses.parse(row.email).key
            if SuppressionLookup(conn, None, check_forgotten=False).reason(key):
                raise StoreError(f"{row.email} is blocked: it is on the suppression list")
            if row.status != CONFIRMED:
                set_membership_status(conn, subscriber_id, list_id, CONFIRMED, utcnow())
                log_event(
                    conn, "subscribed", source=source, email=row.email,
                    subscriber_id=subscriber_id, list_id=list_id, ip=ip,
                )
            return _info(row, CONFIRMED)

    def unsubscribe(
        self, email: str, list_slug: str | None, *, source: str, ip: str | None = None
    ) -> list[str]:
        """Unsubscribe from one list, or from all; the slugs actually left (idempotent)."""
        key = addresses.parse(email).key
        with self.store.write() as conn:
            subscriber = conn.execute(
                select(subscribers.c.id, subscribers.c.email).where(subscribers.c.email_key == key)
            ).first()
            if subscriber is None:
                raise NotFound(f"no subscriber {email}; see `newsletter subscribers ls`")
            query = (
                select(lists.c.id, lists.c.slug, memberships.c.status)
                .join(memberships, memberships.c.list_id == lists.c.id)
                .where(memberships.c.subscriber_id == subscriber.id)
                .order_by(lists.c.slug)
            )
            if list_slug is not None:
                query = query.where(lists.c.id == self.store.lists.get_in(conn, list_slug).id)
            rows = conn.execute(query).all()
            if list_slug is not None and not rows:
                raise NotFound(f"{subscriber.email} is not on list {list_slug!r}")
            left = [row for row in rows if row.status != UNSUBSCRIBED]
            for row in left:
                _leave(conn, subscriber.id, row.id, subscriber.email, source, ip)
            epoch = record_revocation(conn) if left else None
        if epoch is not None:
            self.store.ledger.wait_until_seen(epoch)
        return [row.slug for row in left]

    def unsubscribe_member(
        self, subscriber_id: int, list_id: int, *, source: str, ip: str | None = None
    ) -> bool:
        """Unsubscribe by ids (from a signed link); False if there was nothing to do."""
        with self.store.write() as conn:
            row = _row(conn, subscriber_id, list_id)
            if row is None or row.status == UNSUBSCRIBED:
                return False
            _leave(conn, subscriber_id, list_id, row.email, source, ip)
            epoch = record_revocation(conn)
        self.store.ledger.wait_until_seen(epoch)
        return True

    def get(self, subscriber_id: int, list_id: int) -> MembershipInfo | None:
        with self.store.read() as conn:
            row = _row(conn, subscriber_id, list_id)
        return None if row is None else _info(row, row.status)

    def awaiting_confirmation(self, list_slug: str, since: datetime) -> list[AddResult]:
        """Unconfirmed members of the list who joined at or after `since`, as the
        confirmation mail needs them."""
        list_id = self.store.lists.get(list_slug).id
        # Imports stamp rows with the database clock in whole seconds, which SQLite stores
        # as text without a fraction ("… 04:55:01" sorts before "… 04:55:01.000000"):
        # start just below the second so both spellings compare as times.
        since = since.replace(microsecond=0) - timedelta(microseconds=1)
        with self.store.read() as conn:
            rows = conn.execute(
                select(memberships.c.subscriber_id, subscribers.c.email, memberships.c.confirm_token)
                .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
                .where(
                    memberships.c.list_id == list_id,
                    memberships.c.status == UNCONFIRMED,
                    memberships.c.confirm_token.is_not(None),
                    memberships.c.subscribed_at >= since,
                )
                .order_by(memberships.c.subscriber_id)
            ).all()
        return [
            AddResult(row.subscriber_id, list_id, row.email, UNCONFIRMED, row.confirm_token)
            for row in rows
        ]


def join(
    conn: Connection,
    subscriber_id: int,
    target: ListRecord,
    email: str,
    status: str,
    source: str,
    ip: str | None,
) -> AddResult:
    """Put a subscriber on a list as `status` (inside the caller's write transaction).

    A confirmed member stays confirmed; an unconfirmed one keeps its confirm token; one
    who had unsubscribed joins again (an explicit add is consent given anew).
    """
    current = conn.execute(
        select(memberships.c.status, memberships.c.confirm_token).where(
            memberships.c.subscriber_id == subscriber_id,
            memberships.c.list_id == target.id,
        )
    ).first()
    previous = None if current is None else current.status
    token = None if current is None else current.confirm_token
    if previous == CONFIRMED or (previous == UNCONFIRMED and status == UNCONFIRMED):
        status = previous
    else:
        if status == UNCONFIRMED:
            token = token if previous == UNCONFIRMED and token else new_confirm_token()
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "confirm_token": token,
            "confirmed_at": now if status == CONFIRMED else None,
            "unsubscribed_at": None,
        }
        if current is None:
            conn.execute(
                insert(memberships).values(
                    subscriber_id=subscriber_id, list_id=target.id, subscribed_at=now, **values
                )
            )
        else:
            if previous == UNSUBSCRIBED:
                values["subscribed_at"] = now
            conn.execute(
                update(memberships)
                .where(
                    memberships.c.subscriber_id == subscriber_id,
                    memberships.c.list_id == target.id,
                )
                .values(values)
            )
        kind = "confirmed" if previous == UNCONFIRMED else "subscribed"
        log_event(
            conn, kind, source=source, email=email, subscriber_id=subscriber_id,
            list_id=target.id, ip=ip, detail={"status": status},
        )
    return AddResult(
        subscriber_id=subscriber_id,
        list_id=target.id,
        email=email,
        status=status,
        confirm_token=token if status == UNCONFIRMED else None,
        previous_status=previous,
    )


def set_membership_status(
    conn: Connection, subscriber_id: int, list_id: int, status: str, now: Any
) -> None:
    """Move one membership to `status`, stamping when it happened. A move away from
    confirmed is a revocation: the caller records it (record_revocation) once."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == CONFIRMED:
        values.update(confirmed_at=now, unsubscribed_at=None)
    if status == UNSUBSCRIBED:
        # The confirm token goes too: an old confirmation link must not undo the unsubscribe.
        values.update(unsubscribed_at=now, confirm_token=None)
    if status == BOUNCED:
        values.update(confirm_token=None)  # nor a bounce
    conn.execute(
        update(memberships)
        .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
        .values(values)
    )


def _leave(
    conn: Connection, subscriber_id: int, list_id: int, email: str, source: str, ip: str | None
) -> None:
    set_membership_status(conn, subscriber_id, list_id, UNSUBSCRIBED, utcnow())
    log_event(
        conn, "unsubscribed", source=source, email=email, subscriber_id=subscriber_id,
        list_id=list_id, ip=ip,
    )


def _info_select() -> Select[Any]:
    return (
        select(
            memberships.c.subscriber_id,
            memberships.c.list_id,
            memberships.c.status,
            lists.c.slug,
            lists.c.name,
            subscribers.c.email,
        )
        .join(lists, lists.c.id == memberships.c.list_id)
        .join(subscribers, subscribers.c.id == memberships.c.subscriber_id)
    )


def _row(conn: Connection, subscriber_id: int, list_id: int) -> Row[Any] | None:
    return conn.execute(
        _info_select().where(
            memberships.c.subscriber_id == subscriber_id,
            memberships.c.list_id == list_id,
        )
    ).first()


def _info(row: Row[Any], status: str) -> MembershipInfo:
    return MembershipInfo(
        subscriber_id=row.subscriber_id,
        list_id=row.list_id,
        list_slug=row.slug,
        list_name=row.name,
        email=row.email,
        status=status,
    )
