"""Store area: importing subscriber rows in bulk (reached through Subscribers.import_rows).

One import is one transaction. Rows are taken a batch at a time: validated and decided in
Python, then written with a few set-based statements. Every row that passed validation is
staged in a temporary table keyed by list and address; that table finds duplicates within
the file (and the line where the address first appeared) without holding the file in
memory, and it feeds the INSERT ... SELECTs that create memberships and log events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    case,
    func,
    insert,
    literal,
    null,
    select,
    update,
)

from .. import addresses
from ..addresses import Address
from ..errors import AddressError
from .lists import list_record
from .memberships import new_confirm_token, set_membership_status
from .records import (
    BLOCKED,
    BOUNCED,
    CONFIRMED,
    MEMBERSHIP_STATUSES,
    SUPPRESS_ADDRESS,
    UNCONFIRMED,
    UNSUBSCRIBED,
    ImportReport,
    ImportRow,
    ListRecord,
)
from .revocations import record_revocation
from .schema import events, lists, memberships, subscribers, utcnow
from .suppressions import SuppressionLookup

if TYPE_CHECKING:
    from . import Store

BATCH_ROWS = 2000
ADD = "add"
CHANGE = "change"

# Bulk rows take their timestamps from the database clock (UTC, as utcnow): a value bound
# per row would go through the UtcDateTime conversion once per row and column.
_DB_NOW = func.current_timestamp()

_stage = Table(
    "import_stage",
    MetaData(),
    Column("key", String(400), primary_key=True),  # list id ":" email_key
    Column("line", Integer, nullable=False),  # where the file first had this key
    Column("batch", Integer, nullable=False),
    Column("list_id", Integer, nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("new_subscriber", Boolean, nullable=False),  # this row creates the subscriber
    Column("status", String(20), nullable=False),
    Column("confirm_token", String(100), nullable=True),
    Column("action", String(10), nullable=True),  # add | change | None (nothing to write)
    Column("event", String(40), nullable=True),
    Index("ix_import_stage_batch", "batch"),
    prefixes=["TEMPORARY"],
)

_JOIN_EVENT = {CONFIRMED: "subscribed", UNCONFIRMED: "subscribed", UNSUBSCRIBED: "unsubscribed"}
_CHANGE_EVENT = {CONFIRMED: "confirmed", UNSUBSCRIBED: "unsubscribed"}


class _RollBack(Exception):
    """Raised inside the import transaction to undo a dry run."""


def run_import(
    store: Store,
    rows: Iterable[ImportRow],
    report: ImportReport,
    list_slug: str | None,
    source: str,
    secret: bytes | None,
    dry_run: bool,
    active_status: str,
) -> int | None:
    """Fill `report`; the revocation epoch when the import unsubscribed or blocked anyone."""
    try:
        with store.write() as conn:
            default_list = store.lists.get_in(conn, list_slug) if list_slug is not None else None
            job = _Import(conn, report, default_list, source, secret, active_status)
            job.run(rows)
            if dry_run:
                raise _RollBack
            return record_revocation(conn) if job.revoked else None
    except _RollBack:
        return None


@dataclass(slots=True)
class _Candidate:
    """A row that passed validation, on its way into the store."""

    row: ImportRow
    address: Address
    target: ListRecord
    stage: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.target.id}:{self.address.key}"


class _Import:
    def __init__(
        self,
        conn: Connection,
        report: ImportReport,
        default_list: ListRecord | None,
        source: str,
        secret: bytes | None,
        active_status: str,
    ) -> None:
        self.conn = conn
        self.report = report
        self.default_list = default_list
        self.source = source
        self.secret = secret
        self.active_status = active_status
        self.batch = 0
        self.lists: dict[str, ListRecord | None] = {}
        self.suppressions = SuppressionLookup(conn, secret)
        self.revoked = False  # someone was unsubscribed or blocked: senders must hear of it

    def run(self, rows: Iterable[ImportRow]) -> None:
        _stage.drop(self.conn, checkfirst=True)
        _stage.create(self.conn)
        iterator = iter(rows)
        while batch := list(islice(iterator, BATCH_ROWS)):
            self.batch += 1
            self.report.rows += len(batch)
            self.import_batch(batch)
        _stage.drop(self.conn)
        self.report.skipped.sort()  # a batch finds invalid rows before duplicates

    def skip(self, row: ImportRow, reason: str) -> None:
        self.report.skipped.append((row.line, row.email.strip(), reason))

    def import_batch(self, rows: list[ImportRow]) -> None:
        candidates = self.first_sightings(self.valid(rows))
        if not candidates:
            return
        existing = self.existing_subscribers(candidates)
        current = self.memberships_of([row.id for row in existing.values()])
        refused = self.suppressions.reasons({c.address.key for c in candidates})
        new_subscribers: set[str] = set()
        changed_subscribers: dict[int, dict[str, Any]] = {}
        changes: list[tuple[int, int, str]] = []
        blocks: dict[str, _Candidate] = {}
        for candidate in candidates:
            subscriber = existing.get(candidate.address.key)
            before = None if subscriber is None else current.get((candidate.target.id, subscriber.id))
            refusal = refused.get(candidate.address.key)
            # A row that itself says "blocked" (our export, once per list) is no refusal.
            already_blocked = refusal == BLOCKED and candidate.row.suppress
            reason = None if already_blocked else refusal or _resubscribing(candidate, before)
            if reason is not None:
                self.skip(candidate.row, reason)
                continue
            if subscriber is None:
                if candidate.address.key not in new_subscribers:
                    new_subscribers.add(candidate.address.key)
                    candidate.stage["new_subscriber"] = True
                subscriber_changed = False
            else:
                subscriber_changed = _merge_into(changed_subscribers, subscriber, candidate.row)
            if candidate.row.suppress and not already_blocked:
                blocks.setdefault(candidate.address.key, candidate)
            action = self.decide(candidate, before, subscriber_changed)
            if action == CHANGE and subscriber is not None:
                changes.append((subscriber.id, candidate.target.id, candidate.stage["status"]))
        self.conn.execute(insert(_stage), [candidate.stage for candidate in candidates])
        self.write(bool(new_subscribers), changed_subscribers, changes, blocks)

    def valid(self, rows: list[ImportRow]) -> list[_Candidate]:
        candidates = []
        for row in rows:
            if row.problem is not None:
                self.skip(row, row.problem)
                continue
            try:
                address = addresses.parse(row.email)
            except AddressError as exc:
                self.skip(row, f"invalid address ({str(exc).split(': ', 1)[-1]})")
                continue
            target = self.target(row)
            if target is None:
                continue
            if self.suppressions.domain_blocked(address.key):
                self.skip(row, "blocked")
                continue
            candidates.append(_Candidate(row, address, target))
        return candidates

    def target(self, row: ImportRow) -> ListRecord | None:
        if self.default_list is not None:
            return self.default_list
        if row.list_slug is None:
            self.skip(row, "no list: pass --list SLUG or fill the file's list column")
            return None
        if row.list_slug not in self.lists:
            found = self.conn.execute(select(lists).where(lists.c.slug == row.list_slug)).first()
            self.lists[row.list_slug] = None if found is None else list_record(found)
        record = self.lists[row.list_slug]
        if record is None:
            self.skip(row, f"no list {row.list_slug!r}")
        return record

    def first_sightings(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """Drop rows whose list and address an earlier row of the file already had."""
        if not candidates:
            return []
        seen = dict(
            self.conn.execute(
                select(_stage.c.key, _stage.c.line).where(
                    _stage.c.key.in_({candidate.key for candidate in candidates})
                )
            ).all()
        )
        first = []
        for candidate in candidates:
            key = candidate.key
            if key in seen:
                self.skip(candidate.row, f"duplicate within the file (first on line {seen[key]})")
                continue
            seen[key] = candidate.row.line
            candidate.stage = {
                "key": key,
                "line": candidate.row.line,
                "batch": self.batch,
                "list_id": candidate.target.id,
                "email_key": candidate.address.key,
                "email": candidate.address.email,
                "name": candidate.row.name,
                "attributes": candidate.row.attributes,
                "new_subscriber": False,
                "status": self.active_status
                if candidate.row.status == CONFIRMED
                else candidate.row.status,
                "confirm_token": None,
                "action": None,
                "event": None,
            }
            first.append(candidate)
        return first

    def existing_subscribers(self, candidates: list[_Candidate]) -> dict[str, Any]:
        """email_key -> (id, email_key, name, attributes) of the batch's known subscribers."""
        keys = {candidate.address.key for candidate in candidates}
        rows = self.conn.execute(
            select(
                subscribers.c.id, subscribers.c.email_key, subscribers.c.name, subscribers.c.attributes
            ).where(subscribers.c.email_key.in_(keys))
        )
        return {row.email_key: row for row in rows}

    def memberships_of(self, subscriber_ids: list[int]) -> dict[tuple[int, int], str]:
        if not subscriber_ids:
            return {}
        rows = self.conn.execute(
            select(memberships.c.list_id, memberships.c.subscriber_id, memberships.c.status).where(
                memberships.c.subscriber_id.in_(subscriber_ids)
            )
        )
        return {(list_id, subscriber_id): status for list_id, subscriber_id, status in rows}

    def decide(self, candidate: _Candidate, before: str | None, subscriber_changed: bool) -> str | None:
        """Fill the candidate's staged action and event, count it; the action."""
        stage = candidate.stage
        wanted = stage["status"]
        if before is None:
            stage.update(action=ADD, event=_JOIN_EVENT[wanted])
            if wanted == UNCONFIRMED:
                stage["confirm_token"] = new_confirm_token()
            self.report.added += 1
        elif _import_changes(before, wanted):
            stage.update(action=CHANGE, event=_CHANGE_EVENT[wanted])
            self.report.updated += 1
        elif candidate.row.suppress or subscriber_changed:
            self.report.updated += 1
        else:
            self.report.unchanged += 1
        return stage["action"]

    def write(
        self,
        new_subscribers: bool,
        changed_subscribers: dict[int, dict[str, Any]],
        changes: list[tuple[int, int, str]],
        blocks: dict[str, _Candidate],
    ) -> None:
        if new_subscribers:
            self.conn.execute(self.new_subscribers())
        for subscriber_id, values in changed_subscribers.items():
            self.conn.execute(
                update(subscribers).where(subscribers.c.id == subscriber_id).values(values)
            )
        self.conn.execute(self.new_memberships())
        now = utcnow()
        for subscriber_id, list_id, status in changes:
            set_membership_status(self.conn, subscriber_id, list_id, status, now)
            self.revoked = self.revoked or status != CONFIRMED
        for status in MEMBERSHIP_STATUSES:
            self.conn.execute(self.staged_events(status))
        if blocks:
            self.block(blocks)

    def new_subscribers(self) -> Any:
        staged = (
            select(
                _stage.c.email,
                _stage.c.email_key,
                _stage.c.name,
                _stage.c.attributes,
                literal(0),
                _DB_NOW,
                _DB_NOW,
            )
            .where(_stage.c.batch == self.batch, _stage.c.new_subscriber)
            .order_by(_stage.c.line)
        )
        return insert(subscribers).from_select(
            ["email", "email_key", "name", "attributes", "bounces", "created_at", "updated_at"],
            staged,
        )

    def new_memberships(self) -> Any:
        staged = self.staged().where(_stage.c.action == ADD)
        return insert(memberships).from_select(
            [
                "subscriber_id",
                "list_id",
                "status",
                "confirm_token",
                "subscribed_at",
                "confirmed_at",
                "unsubscribed_at",
                "updated_at",
            ],
            staged.with_only_columns(
                subscribers.c.id,
                _stage.c.list_id,
                _stage.c.status,
                _stage.c.confirm_token,
                _DB_NOW,
                case((_stage.c.status == CONFIRMED, _DB_NOW), else_=null()),
                case((_stage.c.status == UNSUBSCRIBED, _DB_NOW), else_=null()),
                _DB_NOW,
            ),
        )

    def staged_events(self, status: str) -> Any:
        """The events of this batch's rows that moved to `status`."""
        staged = (
            self.staged()
            .where(_stage.c.event.is_not(None), _stage.c.status == status)
            .order_by(_stage.c.line)
        )
        return insert(events).from_select(
            ["at", "kind", "email", "subscriber_id", "list_id", "source", "detail"],
            staged.with_only_columns(
                _DB_NOW,
                _stage.c.event,
                subscribers.c.email,
                subscribers.c.id,
                _stage.c.list_id,
                literal(self.source),
                literal({"status": status}, JSON),
            ),
        )

    def staged(self) -> Any:
        """This batch's staged rows joined to their subscribers (columns chosen later)."""
        return (
            select(_stage.c.key)
            .join(subscribers, subscribers.c.email_key == _stage.c.email_key)
            .where(_stage.c.batch == self.batch)
        )

    def block(self, blocks: dict[str, _Candidate]) -> None:
        """Suppress the addresses the file marks undeliverable (cleaned, bounced, ...)."""
        reason = f"marked undeliverable in {self.report.file}"
        self.suppressions.add_blocks(blocks, reason)
        self.revoked = True
        self.conn.execute(
            insert(events).values(at=_DB_NOW),
            [
                {
                    "kind": "blocked",
                    "email": candidate.address.email,
                    "subscriber_id": None,
                    "list_id": candidate.target.id,
                    "source": self.source,
                    "ip": None,
                    "detail": {"kind": SUPPRESS_ADDRESS, "reason": reason, "line": candidate.row.line},
                }
                for candidate in blocks.values()
            ],
        )


def _resubscribing(candidate: _Candidate, before: str | None) -> str | None:
    """Consent: whoever unsubscribed here stays unsubscribed, whatever the file says; and
    an address that bounced stays `bounced` (an old export must not bring it back)."""
    if before == UNSUBSCRIBED and candidate.stage["status"] != UNSUBSCRIBED:
        return f"unsubscribed from {candidate.target.slug}; an import does not resubscribe"
    if before == BOUNCED and candidate.stage["status"] != UNSUBSCRIBED:
        return (
            f"bounced on {candidate.target.slug}; an import does not resubscribe "
            "(`newsletter subscribers add` does)"
        )
    return None


def _import_changes(before: str, wanted: str) -> bool:
    """Whether an import moves a membership: it confirms the unconfirmed and unsubscribes;
    it never demotes a confirmed member to unconfirmed."""
    return before != wanted and wanted != UNCONFIRMED


def _merge_into(changed: dict[int, dict[str, Any]], subscriber: Row[Any], row: ImportRow) -> bool:
    """Fold a row's name and attributes into an existing subscriber's pending update;
    whether the subscriber ends up different from what is stored."""
    before = changed.get(subscriber.id) or {
        "name": subscriber.name,
        "attributes": subscriber.attributes,
    }
    after = {
        "name": row.name or before["name"],
        "attributes": {**before["attributes"], **row.attributes},
    }
    if after == {"name": subscriber.name, "attributes": subscriber.attributes}:
        return False
    changed[subscriber.id] = after
    return True
