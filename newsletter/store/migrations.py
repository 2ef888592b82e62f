"""The schema's history: numbered, named steps, each applied in one transaction.

A released step is never edited; a change is a new step at the end. Each step is plain
DDL written out for both stores; `{timestamp}`, `{blob}` and `{serial}` stand for the
types that differ between SQLite and PostgreSQL. `schema.py` describes the result for the
queries, and a test checks that a fresh database, an upgraded one and `schema.py` agree.

Two processes that start at once never apply a step twice: each step runs in a write
transaction (SQLite's write lock, PostgreSQL's writer lock) that first re-reads what is
applied. A step that fails rolls back whole and is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from ..errors import StoreError
from .schema import utcnow

if TYPE_CHECKING:
    from . import Store

_TYPES = {
    "sqlite": {"timestamp": "DATETIME", "blob": "BLOB", "serial": "INTEGER"},
    "postgresql": {"timestamp": "TIMESTAMP WITH TIME ZONE", "blob": "BYTEA", "serial": "SERIAL"},
}

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # statements separated by ";" at the end of a line

    def statements(self, dialect: str) -> list[str]:
        try:
            types = _TYPES[dialect]
        except KeyError:
            raise StoreError(
                f"the {dialect} database is not supported; use SQLite or PostgreSQL"
            ) from None
        filled = self.sql.format(**types)
        return [part.strip() for part in filled.split(";\n") if part.strip()]


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied_at: str | None

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "name": self.name, "applied_at": self.applied_at}


# The schema of the first release, as metadata.create_all wrote it then.
_INITIAL = """
CREATE TABLE feed_cache (
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    body {blob},
    fetched_at {timestamp} NOT NULL,
    PRIMARY KEY (url)
);
CREATE TABLE first_seen (
    article_id VARCHAR(64) NOT NULL,
    seen_at {timestamp} NOT NULL,
    PRIMARY KEY (article_id)
);
CREATE TABLE lists (
    id {serial} NOT NULL,
    slug VARCHAR(100) NOT NULL,
    name VARCHAR(200) NOT NULL,
    description TEXT NOT NULL,
    double_opt_in BOOLEAN NOT NULL,
    created_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (slug)
);
CREATE TABLE subscribers (
    id {serial} NOT NULL,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(200) NOT NULL,
    attributes JSON NOT NULL,
    bounces INTEGER NOT NULL,
    created_at {timestamp} NOT NULL,
    updated_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (email_key)
);
CREATE TABLE suppressions (
    id {serial} NOT NULL,
    kind VARCHAR(20) NOT NULL,
    value VARCHAR(320) NOT NULL,
    reason TEXT NOT NULL,
    created_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_suppressions_kind_value UNIQUE (kind, value)
);
CREATE TABLE events (
    id {serial} NOT NULL,
    at {timestamp} NOT NULL,
    kind VARCHAR(40) NOT NULL,
    email VARCHAR(320),
    subscriber_id INTEGER,
    list_id INTEGER,
    source VARCHAR(200) NOT NULL,
    ip VARCHAR(64),
    detail JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL,
    FOREIGN KEY(list_id) REFERENCES lists (id) ON DELETE SET NULL
);
CREATE INDEX ix_events_subscriber ON events (subscriber_id);
CREATE TABLE issues (
    id {serial} NOT NULL,
    digest VARCHAR(100) NOT NULL,
    number INTEGER NOT NULL,
    list_id INTEGER NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL,
    status VARCHAR(20) NOT NULL,
    paused_reason TEXT,
    lease_owner VARCHAR(100),
    lease_expires {timestamp},
    created_at {timestamp} NOT NULL,
    finished_at {timestamp},
    PRIMARY KEY (id),
    CONSTRAINT uq_issues_digest_number UNIQUE (digest, number),
    FOREIGN KEY(list_id) REFERENCES lists (id) ON DELETE RESTRICT
);
CREATE TABLE memberships (
    list_id INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    confirm_token VARCHAR(100),
    subscribed_at {timestamp} NOT NULL,
    confirmed_at {timestamp},
    unsubscribed_at {timestamp},
    updated_at {timestamp} NOT NULL,
    PRIMARY KEY (list_id, subscriber_id),
    FOREIGN KEY(list_id) REFERENCES lists (id) ON DELETE CASCADE,
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
);
CREATE INDEX ix_memberships_list_status ON memberships (list_id, status);
CREATE TABLE deliveries (
    id {serial} NOT NULL,
    issue_id INTEGER NOT NULL,
    subscriber_id INTEGER,
    email VARCHAR(320),
    status VARCHAR(20) NOT NULL,
    attempts INTEGER NOT NULL,
    claimed_by VARCHAR(100),
    claimed_until {timestamp},
    sent_at {timestamp},
    error TEXT,
    retry_at {timestamp},
    PRIMARY KEY (id),
    CONSTRAINT uq_deliveries_issue_subscriber UNIQUE (issue_id, subscriber_id),
    FOREIGN KEY(issue_id) REFERENCES issues (id) ON DELETE CASCADE,
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL
);
CREATE INDEX ix_deliveries_issue_status ON deliveries (issue_id, status);
CREATE TABLE issue_articles (
    issue_id INTEGER NOT NULL,
    digest VARCHAR(100) NOT NULL,
    article_id VARCHAR(64) NOT NULL,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    CONSTRAINT uq_issue_articles_digest_article UNIQUE (digest, article_id),
    FOREIGN KEY(issue_id) REFERENCES issues (id) ON DELETE CASCADE
);
"""

# Append-only.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _INITIAL),
    Migration(
        2,
        "senders register for the issue they work on",
        """
CREATE TABLE senders (
    owner VARCHAR(100) NOT NULL,
    issue_id INTEGER NOT NULL,
    started_at {timestamp} NOT NULL,
    lease_until {timestamp} NOT NULL,
    revocations_seen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner),
    FOREIGN KEY(issue_id) REFERENCES issues (id) ON DELETE CASCADE
);
CREATE INDEX ix_senders_issue ON senders (issue_id);
""",
    ),
    Migration(
        3,
        "a clock that counts revocations (unsubscribes, blocks, forgets)",
        """
CREATE TABLE revocation_clock (
    id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    PRIMARY KEY (id)
);
INSERT INTO revocation_clock (id, epoch) VALUES (1, 0);
""",
    ),
    Migration(
        4,
        "issues lose their single-sender lease (claims carry the leases)",
        """
ALTER TABLE issues DROP COLUMN lease_owner;
ALTER TABLE issues DROP COLUMN lease_expires;
""",
    ),
    Migration(
        5,
        "drafts that editors shape and approve, and their history",
        """
CREATE TABLE drafts (
    id {serial} NOT NULL,
    digest VARCHAR(100) NOT NULL,
    number INTEGER NOT NULL,
    articles JSON NOT NULL,
    subject TEXT NOT NULL,
    subject_override TEXT,
    note TEXT NOT NULL,
    issue_date {timestamp} NOT NULL,
    content_hash VARCHAR(64) NOT NULL,
    approved_by VARCHAR(200),
    approved_at {timestamp},
    approved_hash VARCHAR(64),
    reviewed_hash VARCHAR(64),
    reviewed_at {timestamp},
    created_at {timestamp} NOT NULL,
    updated_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_drafts_digest_number UNIQUE (digest, number)
);
CREATE TABLE draft_history (
    id {serial} NOT NULL,
    draft_id INTEGER NOT NULL,
    at {timestamp} NOT NULL,
    actor VARCHAR(200) NOT NULL,
    action VARCHAR(40) NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(draft_id) REFERENCES drafts (id) ON DELETE CASCADE
);
CREATE INDEX ix_draft_history_draft ON draft_history (draft_id);
""",
    ),
    Migration(
        6,
        "issues keep the nonce of their personal markers",
        """
ALTER TABLE issues ADD COLUMN marker_nonce VARCHAR(32);
""",
    ),
    Migration(
        7,
        "bounce, complaint and mailto unsubscribe events",
        """
CREATE TABLE bounce_events (
    id {serial} NOT NULL,
    at {timestamp} NOT NULL,
    kind VARCHAR(20) NOT NULL,
    severity VARCHAR(10),
    counted BOOLEAN NOT NULL,
    subscriber_id INTEGER,
    list_id INTEGER,
    issue_id INTEGER,
    email VARCHAR(320),
    status VARCHAR(20),
    diagnostic TEXT,
    source VARCHAR(200) NOT NULL,
    action TEXT NOT NULL,
    fingerprint VARCHAR(100),
    PRIMARY KEY (id),
    CONSTRAINT uq_bounce_events_fingerprint UNIQUE (fingerprint),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL,
    FOREIGN KEY(list_id) REFERENCES lists (id) ON DELETE SET NULL,
    FOREIGN KEY(issue_id) REFERENCES issues (id) ON DELETE SET NULL
);
CREATE INDEX ix_bounce_events_member ON bounce_events (subscriber_id, list_id, at);
CREATE INDEX ix_bounce_events_at ON bounce_events (at);
""",
    ),
    Migration(
        8,
        "digests remember the articles they carried by every identity key",
        """
CREATE TABLE carried_articles (
    digest VARCHAR(100) NOT NULL,
    article_key VARCHAR(200) NOT NULL,
    issue_id INTEGER NOT NULL,
    PRIMARY KEY (digest, article_key),
    FOREIGN KEY(issue_id) REFERENCES issues (id) ON DELETE CASCADE
);
INSERT INTO carried_articles (digest, article_key, issue_id)
    SELECT digest, 'id:' || article_id, MIN(issue_id) FROM issue_articles GROUP BY digest, article_id;
INSERT INTO carried_articles (digest, article_key, issue_id)
    SELECT digest, 'url:' || url, MIN(issue_id) FROM issue_articles
    WHERE url IS NOT NULL AND url <> '' AND LENGTH(url) <= 190 GROUP BY digest, url;
""",
    ),
)


class Migrations:
    def __init__(self, store: Store) -> None:
        self.store = store

    def status(self) -> list[MigrationState]:
        """Every known step, with when it was applied (None: pending)."""
        with self.store.read() as conn:
            applied = _applied(conn)
        _refuse_newer(applied)
        return [MigrationState(m.version, m.name, applied.get(m.version)) for m in MIGRATIONS]

    def pending(self) -> list[Migration]:
        return [m for m, state in zip(MIGRATIONS, self.status()) if state.applied_at is None]

    def upgrade(self) -> list[Migration]:
        """Apply the pending steps, each in its own transaction; the steps applied now."""
        done = []
        for migration in self.pending():
            if self._apply(migration):
                done.append(migration)
        return done

    def _apply(self, migration: Migration) -> bool:
        """Apply one step unless another process just did; whether this call applied it."""
        with self.store.write() as conn:
            conn.execute(text(_BOOKKEEPING))
            if migration.version in _applied(conn):
                return False
            try:
                for statement in migration.statements(self.store.dialect):
                    conn.execute(text(statement))
            except DBAPIError as exc:
                detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise StoreError(
                    f"migration {migration.version} ({migration.name}) failed on "
                    f"{self.store.where}: {detail}; nothing of it was applied"
                ) from exc
            conn.execute(
                text("INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :at)"),
                {"v": migration.version, "at": utcnow().isoformat()},
            )
        return True


def _applied(conn: Connection) -> dict[int, str]:
    if not inspect(conn).has_table("schema_migrations"):
        return {}
    rows = conn.execute(text("SELECT version, applied_at FROM schema_migrations"))
    return {int(version): str(applied_at) for version, applied_at in rows}


def _refuse_newer(applied: dict[int, str]) -> None:
    newest = max(applied, default=0)
    if newest > MIGRATIONS[-1].version:
        raise StoreError(
            f"the database was migrated by a newer version of newsletter (schema {newest}, "
            f"this one knows {MIGRATIONS[-1].version}); upgrade newsletter"
        )

