"""Store area: subscribers, their memberships, the suppression list and the events log.

How a suppression matches (the sending side builds its recipients the same way; see
`deliverable`):

- kind "address":   value == subscribers.email_key (the lower-cased normalized address).
- kind "domain":    value == the part of email_key after its '@' (lower-cased Unicode
                    domain, as `addresses.normalize_domain` gives it). Exact: blocking
                    @example.com does not block @mail.example.com. In SQL:
                    `email_key LIKE '%@' || value` (a valid domain holds no % or _).
- kind "forgotten": value == tokens.keyed_hash(secret, email_key), secret being the
                    config's token secret. A forgotten person has no subscriber row left,
                    so this one never matters at send time; it is checked when an address
                    comes back (add, import), and that needs the secret: those calls take
                    `secret=` and refuse to go on without it once anyone was forgotten.

Every change of a membership is written to the events log with its source ("cli",
"import:FILE", "web") and, when the web supplies it, the IP address.
"""

from __future__ import annotations

import secrets as random_tokens
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from .. import addresses, tokens
from ..addresses import Address
from ..errors import NotFound, StoreError
from .records import (
    BLOCKED,
    CONFIRMED,
    SUPPRESS_ADDRESS,
    SUPPRESS_DOMAIN,
    SUPPRESS_FORGOTTEN,
    UNCONFIRMED,
    UNSUBSCRIBED,
    AddResult,
    ImportReport,
    ImportRow,
    ListRecord,
    MembershipInfo,
    SubscriberListing,
    SubscriberRecord,
    Suppression,
)
from .schema import deliveries, events, lists, memberships, subscribers, suppressions, utcnow

if TYPE_CHECKING:
    from . import Store

_LISTING_PAGE = 1000
# Order of preference when one status must stand for several memberships.
_STATUS_RANK = {CONFIRMED: 0, UNCONFIRMED: 1, UNSUBSCRIBED: 2}


def new_confirm_token() -> str:
    """The random token a confirmation link carries; the web side looks it up by value."""
    return random_tokens.token_urlsafe(24)


def address_suppressed(key_column: Any) -> Any:
    """SQL condition: an address or domain suppression matches this email_key column."""
    return exists().where(
        or_(
            and_(suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value == key_column),
            and_(
                suppressions.c.kind == SUPPRESS_DOMAIN,
                key_column.like(literal("%@") + suppressions.c.value),
            ),
        )
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


class Subscribers:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- subscribing ---------------------------------------------------------------------

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
        address is blocked or was forgotten (see module docstring for `secret`).
        """
        address = addresses.parse(email)
        with self.store.begin() as conn:
            target = self.store.lists.get_in(conn, list_slug)
            reason = self._suppression_reason(conn, address, secret)
            if reason is not None:
                raise StoreError(
                    f"{address.email} is {reason}: it is on the suppression list "
                    f"(`newsletter subscribers unblock {address.email}` lifts it)"
                )
            subscriber_id, stored_email = self._upsert(conn, address, name, attributes or {})
            status = CONFIRMED if confirmed or not target.double_opt_in else UNCONFIRMED
            return self._join(conn, subscriber_id, target, stored_email, status, source, ip)

    def confirm_by_token(self, token: str, ip: str | None = None) -> MembershipInfo:
        """Confirm the membership a confirmation link names (idempotent); NotFound for an
        unknown token or one whose member has since unsubscribed."""
        with self.store.begin() as conn:
            row = conn.execute(
                _membership_info_select().where(
                    memberships.c.confirm_token == token,
                    memberships.c.status != UNSUBSCRIBED,
                )
            ).first()
            if row is None:
                raise NotFound("this confirmation link is unknown or no longer valid")
            if row.status == UNCONFIRMED:
                set_membership_status(conn, row.subscriber_id, row.list_id, CONFIRMED, utcnow())
                _event(conn, "confirmed", row.email, row.subscriber_id, row.list_id, "web", ip)
            return _membership_info(row, CONFIRMED)

    def resubscribe_member(
        self, subscriber_id: int, list_id: int, *, source: str, ip: str | None = None
    ) -> MembershipInfo:
        """Undo an unsubscribe from a link the subscriber received: confirmed again."""
        with self.store.begin() as conn:
            row = _membership_row(conn, subscriber_id, list_id)
            if row is None:
                raise NotFound("this subscription no longer exists")
            address = addresses.parse(row.email)
            if self._suppression_reason(conn, address, None, check_forgotten=False):
                raise StoreError(f"{row.email} is blocked: it is on the suppression list")
            if row.status != CONFIRMED:
                set_membership_status(conn, subscriber_id, list_id, CONFIRMED, utcnow())
                _event(conn, "subscribed", row.email, subscriber_id, list_id, source, ip)
            return _membership_info(row, CONFIRMED)

    # -- leaving ---------------------------------------------------------------------

    def unsubscribe(
        self, email: str, list_slug: str | None, *, source: str, ip: str | None = None
    ) -> list[str]:
        """Unsubscribe from one list, or from all; the slugs actually left (idempotent)."""
        address = addresses.parse(email)
        with self.store.begin() as conn:
            subscriber = self._get_in(conn, address)
            query = (
                select(lists.c.id, lists.c.slug, memberships.c.status)
                .join(memberships, memberships.c.list_id == lists.c.id)
                .where(memberships.c.subscriber_id == subscriber.id)
                .order_by(lists.c.slug)
            )
            if list_slug is not None:
                target = self.store.lists.get_in(conn, list_slug)
                query = query.where(lists.c.id == target.id)
            rows = conn.execute(query).all()
            if list_slug is not None and not rows:
                raise NotFound(f"{subscriber.email} is not on list {list_slug!r}")
            left = []
            for row in rows:
                if row.status != UNSUBSCRIBED:
                    self._leave(conn, subscriber.id, row.id, subscriber.email, source, ip)
                    left.append(row.slug)
            return left

    def unsubscribe_member(
        self, subscriber_id: int, list_id: int, *, source: str, ip: str | None = None
    ) -> bool:
        """Unsubscribe by ids (from a signed link); False if there was nothing to do."""
        with self.store.begin() as conn:
            row = _membership_row(conn, subscriber_id, list_id)
            if row is None or row.status == UNSUBSCRIBED:
                return False
            self._leave(conn, subscriber_id, list_id, row.email, source, ip)
            return True

    def membership(self, subscriber_id: int, list_id: int) -> MembershipInfo | None:
        with self.store.begin() as conn:
            row = _membership_row(conn, subscriber_id, list_id)
        return None if row is None else _membership_info(row, row.status)

    def awaiting_confirmation(self, list_slug: str, since: datetime) -> list[AddResult]:
        """Unconfirmed members of the list who joined at or after `since`, as the
        confirmation mail needs them."""
        list_id = self.store.lists.get(list_slug).id
        # Imports stamp rows with the database clock in whole seconds, which SQLite stores
        # as text without a fraction ("… 04:55:01" sorts before "… 04:55:01.000000"):
        # start just below the second so both spellings compare as times.
        since = since.replace(microsecond=0) - timedelta(microseconds=1)
        with self.store.begin() as conn:
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

    # -- the suppression list ----------------------------------------------------------

    def block(self, email_or_domain: str, reason: str = "", *, source: str = "cli") -> Suppression:
        """Never mail this address (or, for "@domain", any address there) again."""
        kind, value = _suppression_target(email_or_domain)
        with self.store.begin() as conn:
            existing = conn.execute(
                select(suppressions).where(
                    suppressions.c.kind == kind, suppressions.c.value == value
                )
            ).first()
            if existing is not None:
                return _suppression(existing)
            conn.execute(insert(suppressions).values(kind=kind, value=value, reason=reason))
            subscriber_id = self._id_for_key(conn, value) if kind == SUPPRESS_ADDRESS else None
            _event(
                conn,
                "blocked",
                value if kind == SUPPRESS_ADDRESS else None,
                subscriber_id,
                None,
                source,
                None,
                {"kind": kind, "value": value, "reason": reason},
            )
            row = conn.execute(
                select(suppressions).where(
                    suppressions.c.kind == kind, suppressions.c.value == value
                )
            ).one()
            return _suppression(row)

    def unblock(
        self, email_or_domain: str, *, source: str = "cli", secret: bytes | None = None
    ) -> bool:
        """Lift a block (and, given the secret, a forget); False if none matched."""
        kind, value = _suppression_target(email_or_domain)
        matches = [and_(suppressions.c.kind == kind, suppressions.c.value == value)]
        if kind == SUPPRESS_ADDRESS and secret is not None:
            hashed = tokens.keyed_hash(secret, value)
            matches.append(
                and_(suppressions.c.kind == SUPPRESS_FORGOTTEN, suppressions.c.value == hashed)
            )
        with self.store.begin() as conn:
            removed = conn.execute(delete(suppressions).where(or_(*matches))).rowcount
            if removed:
                _event(
                    conn,
                    "unblocked",
                    value if kind == SUPPRESS_ADDRESS else None,
                    self._id_for_key(conn, value) if kind == SUPPRESS_ADDRESS else None,
                    None,
                    source,
                    None,
                    {"kind": kind, "value": value},
                )
            return bool(removed)

    def is_suppressed(self, email: str, secret: bytes | None = None) -> bool:
        """Whether an address is blocked (itself or its domain) or was forgotten."""
        address = addresses.parse(email)
        with self.store.begin() as conn:
            return self._suppression_reason(conn, address, secret) is not None

    def suppressions(self) -> list[Suppression]:
        with self.store.begin() as conn:
            rows = conn.execute(
                select(suppressions).order_by(suppressions.c.kind, suppressions.c.value)
            ).all()
        return [_suppression(row) for row in rows]

    def forget(self, email: str, *, secret: bytes, source: str = "cli") -> bool:
        """Erase a person: subscriber row, memberships, their address in the events log and
        deliveries; keep only a keyed hash so the address cannot silently come back.
        True if there was a subscriber to erase (the hash is kept either way)."""
        address = addresses.parse(email)
        hashed = tokens.keyed_hash(secret, address.key)
        with self.store.begin() as conn:
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
                    update(deliveries)
                    .where(deliveries.c.subscriber_id == row.id)
                    .values(email=None)
                )
                conn.execute(delete(memberships).where(memberships.c.subscriber_id == row.id))
                conn.execute(delete(subscribers).where(subscribers.c.id == row.id))
            conn.execute(
                delete(suppressions).where(
                    suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value == address.key
                )
            )
            known = conn.execute(
                select(suppressions.c.id).where(
                    suppressions.c.kind == SUPPRESS_FORGOTTEN, suppressions.c.value == hashed
                )
            ).first()
            if known is None:
                conn.execute(
                    insert(suppressions).values(kind=SUPPRESS_FORGOTTEN, value=hashed, reason="")
                )
            _event(conn, "forgotten", None, None, None, source, None)
            return row is not None

    # -- importing ---------------------------------------------------------------------

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
        from .imports import run_import  # it builds on this module

        return run_import(
            self.store, rows, report, list_slug, source, secret, dry_run, active_status
        )

    # -- reading -----------------------------------------------------------------------

    def get(self, email: str) -> SubscriberRecord:
        address = addresses.parse(email)
        with self.store.begin() as conn:
            return self._get_in(conn, address)

    def get_by_id(self, subscriber_id: int) -> SubscriberRecord | None:
        with self.store.begin() as conn:
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
            with self.store.begin() as conn:
                page = self._listing_page(conn, target, status, after)
            if not page:
                return
            yield from (item for item in page if status is None or item.status == status)
            after = page[-1].id

    def record_event(
        self,
        kind: str,
        *,
        email: str | None = None,
        subscriber_id: int | None = None,
        list_id: int | None = None,
        source: str,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.store.begin() as conn:
            _event(conn, kind, email, subscriber_id, list_id, source, ip, detail)

    def events_for(self, subscriber_id: int) -> list[dict[str, Any]]:
        """The events log of one subscriber, oldest first."""
        with self.store.begin() as conn:
            rows = conn.execute(
                select(events).where(events.c.subscriber_id == subscriber_id).order_by(events.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    # -- inside a transaction ------------------------------------------------------------

    def _get_in(self, conn: Connection, address: Address) -> SubscriberRecord:
        row = conn.execute(select(subscribers).where(subscribers.c.email_key == address.key)).first()
        if row is None:
            raise NotFound(f"no subscriber {address.email}; see `newsletter subscribers ls`")
        return _subscriber(row)

    def _id_for_key(self, conn: Connection, key: str) -> int | None:
        return conn.execute(
            select(subscribers.c.id).where(subscribers.c.email_key == key)
        ).scalar_one_or_none()

    def _suppression_reason(
        self,
        conn: Connection,
        address: Address,
        secret: bytes | None,
        *,
        check_forgotten: bool = True,
    ) -> str | None:
        """"blocked", "forgotten" or None."""
        blocked = conn.execute(
            select(suppressions.c.id).where(
                or_(
                    and_(
                        suppressions.c.kind == SUPPRESS_ADDRESS,
                        suppressions.c.value == address.key,
                    ),
                    and_(
                        suppressions.c.kind == SUPPRESS_DOMAIN,
                        suppressions.c.value == address.domain,
                    ),
                )
            )
        ).first()
        if blocked is not None:
            return BLOCKED
        if not check_forgotten:
            return None
        if secret is None:
            require_secret_if_forgotten(conn)
            return None
        forgotten = conn.execute(
            select(suppressions.c.id).where(
                suppressions.c.kind == SUPPRESS_FORGOTTEN,
                suppressions.c.value == tokens.keyed_hash(secret, address.key),
            )
        ).first()
        return "forgotten" if forgotten is not None else None

    def _upsert(
        self, conn: Connection, address: Address, name: str, attributes: dict[str, Any]
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

    def _join(
        self,
        conn: Connection,
        subscriber_id: int,
        target: ListRecord,
        email: str,
        status: str,
        source: str,
        ip: str | None,
    ) -> AddResult:
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
            values = {
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
            _event(conn, kind, email, subscriber_id, target.id, source, ip, {"status": status})
        return AddResult(
            subscriber_id=subscriber_id,
            list_id=target.id,
            email=email,
            status=status,
            confirm_token=token if status == UNCONFIRMED else None,
            previous_status=previous,
        )

    def _leave(
        self,
        conn: Connection,
        subscriber_id: int,
        list_id: int,
        email: str,
        source: str,
        ip: str | None,
    ) -> None:
        set_membership_status(conn, subscriber_id, list_id, UNSUBSCRIBED, utcnow())
        _event(conn, "unsubscribed", email, subscriber_id, list_id, source, ip)

    def _listing_page(
        self, conn: Connection, target: ListRecord | None, status: str | None, after: int
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
        return [
            _listing(row, by_subscriber[row.id], target.slug if target else None) for row in rows
        ]


def require_secret_if_forgotten(conn: Connection) -> None:
    """Forgotten addresses can only be recognised with the secret: refuse to guess."""
    count = conn.execute(
        select(func.count()).select_from(suppressions).where(
            suppressions.c.kind == SUPPRESS_FORGOTTEN
        )
    ).scalar_one()
    if count:
        raise StoreError(
            f"{count} forgotten address(es) can only be recognised with the token secret; "
            "set the environment variable that [newsletter].secret_env names"
        )


def _suppression_target(value: str) -> tuple[str, str]:
    """("domain", d) for "@domain" or a bare domain, else ("address", email_key)."""
    text = value.strip()
    if "@" not in text or text.startswith("@"):
        return SUPPRESS_DOMAIN, addresses.normalize_domain(text)
    return SUPPRESS_ADDRESS, addresses.parse(text).key


def _event(
    conn: Connection,
    kind: str,
    email: str | None,
    subscriber_id: int | None,
    list_id: int | None,
    source: str,
    ip: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(events).values(
            kind=kind,
            email=email,
            subscriber_id=subscriber_id,
            list_id=list_id,
            source=source,
            ip=ip,
            detail=detail or {},
        )
    )


def _membership_info_select() -> Select[Any]:
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


def _membership_row(conn: Connection, subscriber_id: int, list_id: int) -> Row[Any] | None:
    return conn.execute(
        _membership_info_select().where(
            memberships.c.subscriber_id == subscriber_id,
            memberships.c.list_id == list_id,
        )
    ).first()


def _membership_info(row: Row[Any], status: str) -> MembershipInfo:
    return MembershipInfo(
        subscriber_id=row.subscriber_id,
        list_id=row.list_id,
        list_slug=row.slug,
        list_name=row.name,
        email=row.email,
        status=status,
    )


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


def _suppression(row: Row[Any]) -> Suppression:
    return Suppression(
        kind=row.kind, value=row.value, reason=row.reason, created_at=row.created_at
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
    )


def set_membership_status(
    conn: Connection, subscriber_id: int, list_id: int, status: str, now: Any
) -> None:
    """Move one membership to `status`, stamping when it happened."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == CONFIRMED:
        values.update(confirmed_at=now, unsubscribed_at=None)
    if status == UNSUBSCRIBED:
        # The confirm token goes too: an old confirmation link must not undo the unsubscribe.
        values.update(unsubscribed_at=now, confirm_token=None)
    conn.execute(
        update(memberships)
        .where(memberships.c.subscriber_id == subscriber_id, memberships.c.list_id == list_id)
        .values(values)
    )
