"""Store area: the draft of each digest's next issue, as editors shape and approve it.

A draft carries the number of the issue it becomes (the digest's next number) and a
snapshot of everything that issue needs: its articles as they were selected (each an
opaque JSON object, see drafting.py), in order, with the pinned one and the excluded ones
(kept in their place, so that a refresh does not bring them back and `--include` can),
the subject, the editor's note and the issue's date. `send` sends that snapshot, whatever
the sources say later.

One rule decides whether a draft may still change: no issue with its number has been
recorded. Every change runs in one write transaction that reads the draft, checks that
rule, applies the caller's change and appends the history, all or nothing. An approval is
for one version, named by its content hash: a change that alters the hash voids it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, insert, select, update

from ..errors import NotFound, StoreError
from .records import DONE, PAUSED
from .schema import draft_history, drafts, issues, utcnow

if TYPE_CHECKING:
    from . import Store

DRAFT = "draft"
APPROVED = "approved"

# History actions that are not changes of content (see `changes_since_review`).
APPROVED_ACTION = "approved"
REVIEW_ACTION = "review mailed"
VOIDED_ACTION = "approval voided"


class DraftLocked(StoreError):
    """The draft's issue is already being sent, or was sent: it cannot change any more."""


class StaleApproval(StoreError):
    """An approval (an Approve link) names a version of the draft that is no longer current."""


class DraftChanged(StoreError):
    """The draft changed between preparing a send and recording the issue."""


@dataclass(frozen=True)
class DraftArticle:
    id: str
    article: dict[str, Any]  # the snapshot of the article, as drafting.py writes it
    excluded: bool = False
    pinned: bool = False

    def as_stored(self) -> dict[str, Any]:
        return {"id": self.id, "excluded": self.excluded, "pinned": self.pinned, "article": self.article}


@dataclass(frozen=True)
class DraftContent:
    """What a draft holds; `articles` is the issue's order (excluded ones keep their place)."""

    articles: tuple[DraftArticle, ...]
    subject: str
    subject_override: str | None
    note: str
    issue_date: datetime

    @property
    def included(self) -> list[DraftArticle]:
        return [entry for entry in self.articles if not entry.excluded]

    @property
    def excluded(self) -> list[DraftArticle]:
        return [entry for entry in self.articles if entry.excluded]

    def content_hash(self, digest: str, number: int) -> str:
        """Names this version: everything subscribers would receive, and nothing else."""
        payload = {
            "digest": digest,
            "number": number,
            "subject": self.subject,
            "note": self.note,
            "date": self.issue_date.isoformat(),
            "articles": [{**entry.article, "pinned": entry.pinned} for entry in self.included],
        }
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DraftRecord:
    id: int
    digest: str
    number: int
    content: DraftContent
    content_hash: str
    approved_by: str | None
    approved_at: datetime | None
    approved_hash: str | None
    reviewed_hash: str | None
    reviewed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def status(self) -> str:
        return APPROVED if self.approved_hash == self.content_hash else DRAFT

    @property
    def label(self) -> str:
        return f"issue #{self.number} of {self.digest}"


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"when": self.at.isoformat(), "who": self.actor, "action": self.action, "what": self.detail}


@dataclass(frozen=True)
class DraftChange:
    """A caller's change: the new content, and a (action, detail) history line per step."""

    content: DraftContent
    steps: Sequence[tuple[str, str]]


# A change function gets the current draft (None: there is none yet) and the number the
# draft carries; it returns the change, or None when there is nothing to change.
ChangeFunction = Callable[[DraftRecord | None, int], DraftChange | None]


class Drafts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def current(self, digest: str) -> DraftRecord | None:
        """The draft of the digest's next issue, if there is one."""
        with self.store.read() as conn:
            return _current(conn, digest)

    def history(self, draft_id: int) -> list[HistoryEntry]:
        """Every change, approval and review mail of a draft, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(draft_history)
                .where(draft_history.c.draft_id == draft_id)
                .order_by(draft_history.c.id)
            ).all()
        return [HistoryEntry(row.at, row.actor, row.action, row.detail) for row in rows]

    def save(self, digest: str, change: ChangeFunction, *, actor: str, create: bool) -> DraftRecord | None:
        """Apply `change` to the digest's current draft in one write transaction.

        With `create`, a digest without a draft gets one (when `change` returns one);
        without it, NotFound or DraftLocked name what there is instead. A change of
        content voids an approval. Returns the draft as it now stands (None: none made).
        """
        with self.store.write() as conn:
            number = _next_number(conn, digest)
            record = _draft(conn, digest, number)
            if record is None and not create:
                raise _no_draft(conn, digest, number)
            result = change(record, number)
            if result is None:
                return record
            draft_id = _write(conn, digest, number, record, result.content)
            steps = list(result.steps)
            new_hash = result.content.content_hash(digest, number)
            if record is not None and record.approved_hash not in (None, new_hash):
                conn.execute(
                    update(drafts)
                    .where(drafts.c.id == draft_id)
                    .values(approved_by=None, approved_at=None, approved_hash=None)
                )
                steps.append(
                    (VOIDED_ACTION, f"the draft changed after {record.approved_by} approved it")
                )
            _log(conn, draft_id, actor, steps)
            return _draft(conn, digest, number)

    def approvable(self, digest: str, number: int, content_hash: str) -> DraftRecord:
        """The draft an Approve link names, if that version is still the current draft;
        else StaleApproval, DraftLocked or NotFound saying why it approves nothing."""
        with self.store.read() as conn:
            return _approvable(conn, digest, number, content_hash)

    def approve(
        self, digest: str, by: str, *, number: int | None = None, content_hash: str | None = None
    ) -> tuple[DraftRecord, bool]:
        """Approve the current draft as it stands, or only the version that `number` and
        `content_hash` name (an Approve link). Returns the draft and whether this call
        approved it (False: that version was approved already)."""
        with self.store.write() as conn:
            if number is not None and content_hash is not None:
                record = _approvable(conn, digest, number, content_hash)
            else:
                next_number = _next_number(conn, digest)
                found = _draft(conn, digest, next_number)
                if found is None:
                    raise _no_draft(conn, digest, next_number)
                record = found
            if record.status == APPROVED:
                return record, False
            conn.execute(
                update(drafts)
                .where(drafts.c.id == record.id)
                .values(approved_by=by, approved_at=utcnow(), approved_hash=record.content_hash)
            )
            _log(conn, record.id, by, [(APPROVED_ACTION, f"approved version {record.content_hash[:12]}")])
            approved = _draft(conn, digest, record.number)
            assert approved is not None
            return approved, True

    def mark_reviewed(self, record: DraftRecord, reviewers: Sequence[str], *, actor: str, what: str) -> None:
        """Note that this version of the draft was mailed to the reviewers."""
        with self.store.write() as conn:
            conn.execute(
                update(drafts)
                .where(drafts.c.id == record.id)
                .values(reviewed_hash=record.content_hash, reviewed_at=utcnow())
            )
            _log(conn, record.id, actor, [(REVIEW_ACTION, f"{what} to {', '.join(reviewers)}")])


def unchanged_draft(
    digest: str, number: int, content_hash: str | None, *, approved: bool
) -> Callable[[Connection], None]:
    """A guard for `issues.record` of issue `number`: inside that transaction, the draft
    is still the version the send was prepared from (`content_hash`; None: there was no
    draft), approved if `approved`. DraftChanged otherwise, and nothing is recorded."""

    def check(conn: Connection) -> None:
        record = _draft(conn, digest, number)
        found = None if record is None else record.content_hash
        if found != content_hash or (approved and (record is None or record.status != APPROVED)):
            raise DraftChanged(
                f"the draft of issue #{number} of {digest} changed while the send was being "
                f"prepared; nothing was sent: check it with `newsletter draft {digest}` and send again"
            )

    return check


def changes_since_review(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """The changes of content after the last review mail (all of them if none was sent)."""
    last = max((i for i, entry in enumerate(history) if entry.action == REVIEW_ACTION), default=-1)
    return [
        entry
        for entry in history[last + 1 :]
        if entry.action not in (REVIEW_ACTION, APPROVED_ACTION, VOIDED_ACTION)
    ]


def _next_number(conn: Connection, digest: str) -> int:
    latest = conn.execute(select(func.max(issues.c.number)).where(issues.c.digest == digest)).scalar_one()
    return (latest or 0) + 1


def _current(conn: Connection, digest: str) -> DraftRecord | None:
    return _draft(conn, digest, _next_number(conn, digest))


def _draft(conn: Connection, digest: str, number: int) -> DraftRecord | None:
    row = conn.execute(select(drafts).where(drafts.c.digest == digest, drafts.c.number == number)).first()
    return None if row is None else _record(row)


def _approvable(conn: Connection, digest: str, number: int, content_hash: str) -> DraftRecord:
    if number != _next_number(conn, digest):
        raise _gone(conn, digest, number)
    record = _draft(conn, digest, number)
    if record is None:
        raise _gone(conn, digest, number)
    if content_hash != record.content_hash:
        raise StaleApproval(
            f"this link is for an older version of {record.label}: the draft changed after "
            "this review mail was sent, so the link approves nothing; use the link in the "
            "newest review mail"
        )
    return record


def _no_draft(conn: Connection, digest: str, number: int) -> StoreError:
    """Why the digest's next issue (`number`) has no draft to change: the one before it
    is still going out or went out, or there never was a draft."""
    previous = _issue_status(conn, digest, number - 1)
    if previous is not None:
        return DraftLocked(
            f"issue #{number - 1} of {digest} is already {_being(previous)} and cannot change; "
            f"there is no draft of issue #{number} yet: compose it with `newsletter draft {digest}`"
        )
    return NotFound(f"{digest} has no draft; compose one with `newsletter draft {digest}`")


def _gone(conn: Connection, digest: str, number: int) -> StoreError:
    """Why an Approve link's issue `number` (not the next one) approves nothing."""
    status = _issue_status(conn, digest, number)
    if status is None:
        return NotFound(f"issue #{number} of {digest} has no draft; this link approves nothing")
    return DraftLocked(f"issue #{number} of {digest} is already {_being(status)}; this link approves nothing")


def _issue_status(conn: Connection, digest: str, number: int) -> str | None:
    return conn.execute(
        select(issues.c.status).where(issues.c.digest == digest, issues.c.number == number)
    ).scalar()


def _being(issue_status: str) -> str:
    if issue_status == DONE:
        return "sent"
    return "paused mid-send" if issue_status == PAUSED else "being sent"


def _write(
    conn: Connection, digest: str, number: int, record: DraftRecord | None, content: DraftContent
) -> int:
    values = {
        "articles": [entry.as_stored() for entry in content.articles],
        "subject": content.subject,
        "subject_override": content.subject_override,
        "note": content.note,
        "issue_date": content.issue_date,
        "content_hash": content.content_hash(digest, number),
        "updated_at": utcnow(),
    }
    if record is None:
        inserted = conn.execute(
            insert(drafts).values(digest=digest, number=number, created_at=utcnow(), **values)
        )
        return int(inserted.inserted_primary_key[0])
    conn.execute(update(drafts).where(drafts.c.id == record.id).values(**values))
    return record.id


def _log(conn: Connection, draft_id: int, actor: str, steps: Sequence[tuple[str, str]]) -> None:
    if steps:
        at = utcnow()
        conn.execute(
            insert(draft_history),
            [
                {"draft_id": draft_id, "at": at, "actor": actor, "action": action, "detail": detail}
                for action, detail in steps
            ],
        )


def _record(row: Row[Any]) -> DraftRecord:
    content = DraftContent(
        articles=tuple(
            DraftArticle(item["id"], item["article"], bool(item["excluded"]), bool(item["pinned"]))
            for item in row.articles
        ),
        subject=row.subject,
        subject_override=row.subject_override,
        note=row.note,
        issue_date=row.issue_date,
    )
    return DraftRecord(
        id=row.id,
        digest=row.digest,
        number=row.number,
        content=content,
        content_hash=row.content_hash,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        approved_hash=row.approved_hash,
        reviewed_hash=row.reviewed_hash,
        reviewed_at=row.reviewed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
