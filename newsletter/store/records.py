"""Rows the store hands out: frozen, so a caller cannot mistake them for live objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

# Membership statuses, as stored.
UNCONFIRMED = "unconfirmed"
CONFIRMED = "confirmed"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"  # set by the bounce policy (store/bounces.py); undone by resubscribing
MEMBERSHIP_STATUSES = (UNCONFIRMED, CONFIRMED, UNSUBSCRIBED, BOUNCED)
# Not a membership status: a subscriber whose address or domain is on the suppression list.
BLOCKED = "blocked"

# Issue statuses.
SENDING = "sending"
PAUSED = "paused"
DONE = "done"

# Delivery statuses (the ledger's, store/ledger.py).
PENDING = "pending"
CLAIMED = "claimed"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
OUTSTANDING = (PENDING, CLAIMED)

# Suppression kinds (see store/suppressions.py for how each one matches an address).
SUPPRESS_ADDRESS = "address"
SUPPRESS_DOMAIN = "domain"
SUPPRESS_FORGOTTEN = "forgotten"


@dataclass(frozen=True)
class ListRecord:
    id: int
    slug: str
    name: str
    description: str
    double_opt_in: bool
    created_at: datetime


@dataclass(frozen=True)
class ListSummary:
    """A list with its member counts by membership status."""

    list: ListRecord
    counts: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "slug": self.list.slug,
            "name": self.list.name,
            "description": self.list.description,
            "double_opt_in": self.list.double_opt_in,
            "created": self.list.created_at.isoformat(),
            **{status: self.counts.get(status, 0) for status in MEMBERSHIP_STATUSES},
        }


@dataclass(frozen=True)
class SubscriberRecord:
    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    bounces: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AddResult:
    """What `subscribers.add` did. `previous_status` is None when the membership is new."""

    subscriber_id: int
    list_id: int
    email: str
    status: str
    confirm_token: str | None
    previous_status: str | None = None

    @property
    def changed(self) -> bool:
        return self.previous_status != self.status


@dataclass(frozen=True)
class MembershipInfo:
    """One subscriber on one list, as the web side needs it after a confirm or unsubscribe."""

    subscriber_id: int
    list_id: int
    list_slug: str
    list_name: str
    email: str
    status: str


@dataclass(frozen=True)
class SubscriberListing:
    """One line of `subscribers ls`: a subscriber with the lists it is a member of.

    `status` is the status on the list asked for, else the best over all lists
    (confirmed, then unconfirmed, bounced, unsubscribed; "none" without memberships);
    "blocked" wins over all when a suppression matches the address.
    """

    id: int
    email: str
    name: str
    status: str
    memberships: dict[str, str]
    attributes: dict[str, Any]
    created_at: datetime
    bounces: int = 0  # bounces counted (store/bounces.py), over all lists

    @property
    def lists(self) -> list[str]:
        """Slugs of the lists it receives or is waiting to confirm."""
        return [slug for slug, status in self.memberships.items() if status not in (UNSUBSCRIBED, BOUNCED)]

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "status": self.status,
            "lists": self.lists,
            "memberships": self.memberships,
            "attributes": self.attributes,
            "created": self.created_at.isoformat(),
            "bounces": self.bounces,
        }


@dataclass(frozen=True)
class Suppression:
    kind: str
    value: str
    reason: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "reason": self.reason,
            "created": self.created_at.isoformat(),
        }


@dataclass
class ImportReport:
    """Counts of an import; `skipped` holds (line number, email as written, reason)."""

    file: str
    list_slug: str | None
    dry_run: bool
    encoding: str = ""
    delimiter: str = ""
    format: str = ""
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "list": self.list_slug,
            "dry_run": self.dry_run,
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": [
                {"line": line, "email": email, "reason": reason}
                for line, email, reason in self.skipped
            ],
        }


class ImportRow(NamedTuple):
    """One data row of an import file, read but not yet validated against the store.

    `status` is the membership status the file asks for (confirmed for an active row);
    `suppress` marks an address its export calls undeliverable (cleaned, bounced, ...);
    `problem` is why the row cannot be imported, when the reader already knows.
    (A NamedTuple, not a dataclass: an import makes one per row, and this is cheaper.)
    """

    line: int
    email: str
    name: str
    status: str
    suppress: bool
    list_slug: str | None
    attributes: dict[str, Any]
    problem: str | None = None
