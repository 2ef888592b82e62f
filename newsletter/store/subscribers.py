"""Store area: subscribers (an address, a name, attributes): adding, reading, forgetting.

A subscriber's lists are memberships (memberships.py); whether an address may be mailed
at all is the suppression list's rule (suppressions.py); bulk imports are imports.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, insert, or_, select, update

from .. import addresses
from ..addresses import Address
from ..errors import NotFound
from .events import log_event
from .imports import run_import
from .memberships import join
from .records import (
    BLOCKED,
    BOUNCED,
    CONFIRMED,
    UNCONFIRMED,
    UNSUBSCRIBED,
    AddResult,
    ImportReport,
    ImportRow,
    ListRecord,
    SubscriberListing,
    SubscriberRecord,
)
from .revocations import record_revocation
from .schema import bounce_events, deliveries, events, lists, memberships, subscribers
from .suppressions import SuppressionLookup, address_suppressed, forget_address, refusal

if TYPE_CHECKING:
    from . import Store

_LISTING_PAGE = 1000
# Order of preference when one status must stand for several memberships.
_STATUS_RANK = {CONFIRMED: 0, UNCONFIRMED: 1, BOUNCED: 2, UNSUBSCRIBED: 3}


class Subscribers:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        email: str,
        list_slug: str,
        name: str = "",
        *,
        confirmed: bool = False,
        source: str = "cli",
        ip: str | None = None,
        attributes: dict[str, Any] | None = None,
        secret: bytes | None = None,
    ) -> AddResult:
        """Put an address on a list (creating the subscriber if new).

        Single opt-in lists, and `confirmed=True` (consent recorded elsewhere), give a
        confirmed member; a double opt-in list gives an unconfirmed one with a confirm
        token. A member who had unsubscribed joins again. Refused (StoreError) when the
        address is blocked or was forgotten (`secret` recognises forgotten addresses);
        AddressError for a name with control characters.
        """
        address = addresses.parse(email)
        addresses.check_name(name)
        with self.store.write() as conn:
            target = self.store.lists.get_in(conn, list_slug)
            reason = SuppressionLookup(conn, secret).reason(address.key)
            if reason is not None:
                raise refusal(address.email, reason)
            subscriber_id, stored_email = _upsert(conn, address, name, attributes or {})
            status = CONFIRMED if confirmed or not target.double_opt_in else UNCONFIRMED
            return join(conn, subscriber_id, target, stored_email, status, source, ip)

    def import_rows(
        self,
        rows: Iterable[ImportRow],
        report: ImportReport,
        *,
        list_slug: str | None,
        source: str,
        secret: bytes | None = None,
        dry_run: bool = False,
        active_status: str = CONFIRMED,
    ) -> ImportReport:
        """Import rows in one transaction: all of them, or (on an error, or `dry_run`)
        nothing. Fills and returns `report`.

        Rows go to `list_slug`, or to the list each row names when it is None. An active
        row becomes `active_status` (confirmed: consent given where the file came from;
        unconfirmed when confirmations are to be sent). Skipped, with the reason in the
        report: invalid addresses, duplicates within the file, blocked and forgotten
        addresses, and members who unsubscribed here (an import never resubscribes).
        """
        epoch = run_import(
            self.store, rows, report, list_slug, source, secret, dry_run, active_status
        )
        if epoch is not None:
            self.store.ledger.wait_until_seen(epoch)
        return report

    def forget(self, email: str, *, secret: bytes, source: str = "cli") -> bool:
        """Erase a person: subscriber row, memberships, their address in the events log and
        deliveries; keep only a keyed hash so the address cannot silently come back.
        True if there was a subscriber to erase (the hash is kept either way)."""
        address = addresses.parse(email)
        with self.store.write() as conn:
            row = conn.execute(
                select(subscribers.c.id, subscribers.c.email).where(
                    subscribers.c.email_key == address.key
                )
            ).first()
            if row is not None:
                mentions = or_(
                    events.c.subscriber_id == row.id,
                    events.c.email.in_({row.email, address.email, address.key}),
                )
                conn.execute(update(events).where(mentions).values(email=None, ip=None))
                conn.execute(
                    update(deliveries).where(deliveries.c.subscriber_id == row.id).values(email=None)
                )
                # A diagnostic often quotes the address: it goes with it.
                conn.execute(
                    update(bounce_events)
                    .where(bounce_events.c.subscriber_id == row.id)
                    .values(email=None, diagnostic=None)
                )
                conn.execute(delete(memberships).where(memberships.c.subscriber_id == row.id))
                conn.execute(delete(subscribers).where(subscribers.c.id == row.id))
            forget_address(conn, address.key, secret)
            log_event(conn, "forgotten", source=source)
            epoch = record_revocation(conn)
        self.store.ledger.wait_until_seen(epoch)
        return row is not None

    def get(self, email: str) -> SubscriberRecord:
        address = addresses.parse(email)
        with self.store.read() as conn:
            row = conn.execute(
                select(subscribers).where(subscribers.c.email_key == address.key)
            ).first()
        if row is None:
            raise NotFound(f"no subscriber {address.email}; see `newsletter subscribers ls`")
        return _subscriber(row)

    def get_by_id(self, subscriber_id: int) -> SubscriberRecord | None:
        with self.store.read() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return None if row is None else _subscriber(row)

    def listing(
        self, list_slug: str | None = None, status: str | None = None
    ) -> Iterator[SubscriberListing]:
        """Subscribers in id order, a page at a time (memory stays flat on big lists).

        With a list: its members, `status` being their status there. `status` filters on
        the status shown (see SubscriberListing), "blocked" included.
        """
        target = self.store.lists.get(list_slug) if list_slug is not None else None
        after = 0
        while True:
            with self.store.read() as conn:
                page = _listing_page(conn, target, status, after)
            if not page:
                return
            yield from (item for item in page if status is None or item.status == status)
            after = page[-1].id


def _upsert(
    conn: Connection, address: Address, name: str, attributes: dict[str, Any]
) -> tuple[int, str]:
    """(id, email as stored) of a new subscriber, or of the old one with a new name and
    its attributes merged (the address keeps the case it was first stored with)."""
    row = conn.execute(
        select(
            subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.attributes
        ).where(subscribers.c.email_key == address.key)
    ).first()
    if row is None:
        inserted = conn.execute(
            insert(subscribers).values(
                email=address.email, email_key=address.key, name=name, attributes=attributes
            )
        )
        return inserted.inserted_primary_key[0], address.email  # type: ignore[index]
    merged = {**row.attributes, **attributes}
    new_name = name or row.name
    if new_name != row.name or merged != row.attributes:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == row.id)
            .values(name=new_name, attributes=merged)
        )
    return int(row.id), row.email


def _listing_page(
    conn: Connection, target: ListRecord | None, status: str | None, after: int
) -> list[SubscriberListing]:
    query = select(
        subscribers, address_suppressed(subscribers.c.email_key).label("blocked")
    ).where(subscribers.c.id > after)
    if target is not None:
        query = query.join(memberships, memberships.c.subscriber_id == subscribers.c.id).where(
            memberships.c.list_id == target.id
        )
        if status in _STATUS_RANK:
            query = query.where(memberships.c.status == status)
    rows = conn.execute(query.order_by(subscribers.c.id).limit(_LISTING_PAGE)).all()
    if not rows:
        return []
    by_subscriber: dict[int, dict[str, str]] = {row.id: {} for row in rows}
    for subscriber_id, slug, member_status in conn.execute(
        select(memberships.c.subscriber_id, lists.c.slug, memberships.c.status)
        .join(lists, lists.c.id == memberships.c.list_id)
        .where(memberships.c.subscriber_id.in_(list(by_subscriber)))
        .order_by(lists.c.slug)
    ):
        by_subscriber[subscriber_id][slug] = member_status
    return [_listing(row, by_subscriber[row.id], target.slug if target else None) for row in rows]


def _subscriber(row: Row[Any]) -> SubscriberRecord:
    return SubscriberRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        attributes=dict(row.attributes),
        bounces=row.bounces,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _listing(row: Row[Any], memberships_by_slug: dict[str, str], slug: str | None) -> SubscriberListing:
    if row.blocked:
        status = BLOCKED
    elif slug is not None:
        status = memberships_by_slug[slug]
    elif memberships_by_slug:
        status = min(memberships_by_slug.values(), key=_STATUS_RANK.__getitem__)
    else:
        status = "none"
    return SubscriberListing(
        id=row.id,
        email=row.email,
        name=row.name,
        status=status,
        memberships=memberships_by_slug,
        attributes=dict(row.attributes),
        created_at=row.created_at,
        bounces=row.bounces,
    )
