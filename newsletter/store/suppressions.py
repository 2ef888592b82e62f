"""Store area: the suppression list, and THE rule of who it suppresses.

How a suppression matches an address (its `email_key`, the lower-cased normalized form):

- kind "address":   value == email_key.
- kind "domain":    value == the part of email_key after its '@' (the lower-cased Unicode
                    domain, as `addresses.normalize_domain` gives it). Exact: blocking
                    @example.com does not block @mail.example.com.
- kind "forgotten": value == tokens.keyed_hash(secret, email_key). A forgotten person has
                    no subscriber row left, so this kind never matters at send time; it is
                    checked when an address comes back (add, import), and that needs the
                    secret: those calls refuse to go on without it once anyone was forgotten.

The rule has two forms: `address_suppressed` in SQL, for choosing recipients and checking
claims inside one statement, and `SuppressionLookup` in Python, for checking the addresses
of an add or an import batch. tests/test_suppressions.py checks that they agree.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, delete, exists, func, insert, literal, or_, select

from .. import addresses, tokens
from ..errors import StoreError
from .events import log_event
from .records import BLOCKED, SUPPRESS_ADDRESS, SUPPRESS_DOMAIN, SUPPRESS_FORGOTTEN, Suppression
from .revocations import record_revocation
from .schema import subscribers, suppressions

if TYPE_CHECKING:
    from . import Store

FORGOTTEN = "forgotten"


def address_suppressed(key_column: Any) -> Any:
    """SQL condition: an address or domain suppression matches this email_key column."""
    domain_of_key = func.substr(key_column, func.length(key_column) - func.length(suppressions.c.value))
    return exists().where(
        or_(
            and_(suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value == key_column),
            and_(
                suppressions.c.kind == SUPPRESS_DOMAIN,
                domain_of_key == literal("@") + suppressions.c.value,
            ),
        )
    )


class SuppressionLookup:
    """The rule in Python, for many addresses checked inside one transaction.

    Most stores meet an empty suppression list, or one kind only: the kinds present are
    read once, and there is nothing to look up for a kind that is absent.
    """

    def __init__(
        self, conn: Connection, secret: bytes | None, *, check_forgotten: bool = True
    ) -> None:
        self.conn = conn
        self.secret = secret
        kinds = set(conn.execute(select(suppressions.c.kind).distinct()).scalars())
        self.any_address = SUPPRESS_ADDRESS in kinds
        self.domains: set[str] = set()
        if SUPPRESS_DOMAIN in kinds:
            self.domains = set(
                conn.execute(
                    select(suppressions.c.value).where(suppressions.c.kind == SUPPRESS_DOMAIN)
                ).scalars()
            )
        self.any_forgotten = check_forgotten and SUPPRESS_FORGOTTEN in kinds
        if self.any_forgotten and secret is None:
            require_secret_if_forgotten(conn)

    def domain_blocked(self, key: str) -> bool:
        return key.rpartition("@")[2] in self.domains

    def reasons(self, keys: Collection[str]) -> dict[str, str]:
        """email_key -> "blocked" or "forgotten", for those of `keys` that are suppressed."""
        found = {key: BLOCKED for key in keys if self.domain_blocked(key)}
        if self.any_address:
            for key in self.conn.execute(
                select(suppressions.c.value).where(
                    suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value.in_(set(keys))
                )
            ).scalars():
                found[key] = BLOCKED
        if self.any_forgotten and self.secret is not None:
            by_hash = {tokens.keyed_hash(self.secret, key): key for key in keys}
            for value in self.conn.execute(
                select(suppressions.c.value).where(
                    suppressions.c.kind == SUPPRESS_FORGOTTEN,
                    suppressions.c.value.in_(set(by_hash)),
                )
            ).scalars():
                found.setdefault(by_hash[value], FORGOTTEN)
        return found

    def reason(self, key: str) -> str | None:
        return self.reasons([key]).get(key)

    def add_blocks(self, keys: Collection[str], reason: str) -> None:
        """Suppress these addresses (new ones only; the caller logs and revokes)."""
        self.conn.execute(
            insert(suppressions),
            [{"kind": SUPPRESS_ADDRESS, "value": key, "reason": reason} for key in keys],
        )
        self.any_address = True


class Suppressions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def block(self, email_or_domain: str, reason: str = "", *, source: str = "cli") -> Suppression:
        """Never mail this address (or, for "@domain", any address there) again."""
        kind, value = suppression_target(email_or_domain)
        with self.store.write() as conn:
            existing = _find(conn, kind, value)
            if existing is not None:
                return _suppression(existing)
            conn.execute(insert(suppressions).values(kind=kind, value=value, reason=reason))
            log_event(
                conn,
                "blocked",
                email=value if kind == SUPPRESS_ADDRESS else None,
                subscriber_id=_id_for_key(conn, value) if kind == SUPPRESS_ADDRESS else None,
                source=source,
                detail={"kind": kind, "value": value, "reason": reason},
            )
            epoch = record_revocation(conn)
            row = _find(conn, kind, value)
            assert row is not None
        self.store.ledger.wait_until_seen(epoch)
        return _suppression(row)

    def unblock(
        self, email_or_domain: str, *, source: str = "cli", secret: bytes | None = None
    ) -> bool:
        """Lift a block (and, given the secret, a forget); False if none matched."""
        kind, value = suppression_target(email_or_domain)
        matches = [and_(suppressions.c.kind == kind, suppressions.c.value == value)]
        if kind == SUPPRESS_ADDRESS and secret is not None:
            hashed = tokens.keyed_hash(secret, value)
            matches.append(
                and_(suppressions.c.kind == SUPPRESS_FORGOTTEN, suppressions.c.value == hashed)
            )
        with self.store.write() as conn:
            removed = conn.execute(delete(suppressions).where(or_(*matches))).rowcount
            if removed:
                log_event(
                    conn,
                    "unblocked",
                    email=value if kind == SUPPRESS_ADDRESS else None,
                    subscriber_id=_id_for_key(conn, value) if kind == SUPPRESS_ADDRESS else None,
                    source=source,
                    detail={"kind": kind, "value": value},
                )
            return bool(removed)

    def is_suppressed(self, email: str, secret: bytes | None = None) -> bool:
        """Whether an address is blocked (itself or its domain) or was forgotten."""
        address = addresses.parse(email)
        with self.store.read() as conn:
            return SuppressionLookup(conn, secret).reason(address.key) is not None

    def all(self) -> list[Suppression]:
        with self.store.read() as conn:
            rows = conn.execute(
                select(suppressions).order_by(suppressions.c.kind, suppressions.c.value)
            ).all()
        return [_suppression(row) for row in rows]


def forget_address(conn: Connection, key: str, secret: bytes) -> None:
    """Replace the address's block (if any) by the keyed hash a forget leaves behind."""
    conn.execute(
        delete(suppressions).where(
            suppressions.c.kind == SUPPRESS_ADDRESS, suppressions.c.value == key
        )
    )
    hashed = tokens.keyed_hash(secret, key)
    if _find(conn, SUPPRESS_FORGOTTEN, hashed) is None:
        conn.execute(insert(suppressions).values(kind=SUPPRESS_FORGOTTEN, value=hashed, reason=""))


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


def refusal(email: str, reason: str) -> StoreError:
    """The error for adding back an address that is blocked or was forgotten."""
    return StoreError(
        f"{email} is {reason}: it is on the suppression list "
        f"(`newsletter subscribers unblock {email}` lifts it)"
    )


def suppression_target(value: str) -> tuple[str, str]:
    """("domain", d) for "@domain" or a bare domain, else ("address", email_key)."""
    text = value.strip()
    if "@" not in text or text.startswith("@"):
        return SUPPRESS_DOMAIN, addresses.normalize_domain(text)
    return SUPPRESS_ADDRESS, addresses.parse(text).key


def _find(conn: Connection, kind: str, value: str) -> Row[Any] | None:
    return conn.execute(
        select(suppressions).where(suppressions.c.kind == kind, suppressions.c.value == value)
    ).first()


def _id_for_key(conn: Connection, key: str) -> int | None:
    return conn.execute(
        select(subscribers.c.id).where(subscribers.c.email_key == key)
    ).scalar_one_or_none()


def _suppression(row: Row[Any]) -> Suppression:
    return Suppression(kind=row.kind, value=row.value, reason=row.reason, created_at=row.created_at)
