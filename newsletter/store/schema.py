"""Every table of the store, as the migrations leave it. Only the store package speaks SQL.

This describes the schema for the queries; it never creates anything (see migrations.py,
and the test that compares the two).

Timestamps are aware UTC datetimes (see UtcDateTime); emails are stored normalized,
and `email_key` (lower-cased) carries the case-insensitive uniqueness.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no zone: it stores naive UTC.
    PostgreSQL's timestamptz gets the aware value (a naive one would be read in the
    session's time zone, which need not be UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        utc = value.astimezone(timezone.utc)
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def driver_timestamp(value: datetime | None, dialect: str) -> object:
    """An aware datetime as the database driver takes it in a raw statement: what
    UtcDateTime stores (SQLite: naive UTC in SQLAlchemy's text format)."""
    if value is None or dialect == "postgresql":
        return value
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


metadata = MetaData()

lists = Table(
    "lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("double_opt_in", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),  # lower(email)
    Column("name", String(200), nullable=False, default=""),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("bounces", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

# status: unconfirmed | confirmed | unsubscribed | bounced
memberships = Table(
    "memberships",
    metadata,
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(20), nullable=False),
    Column("confirm_token", String(100), nullable=True),
    Column("subscribed_at", UtcDateTime, nullable=False, default=utcnow),
    Column("confirmed_at", UtcDateTime, nullable=True),
    Column("unsubscribed_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    Index("ix_memberships_list_status", "list_id", "status"),
)

# kind: address (an email_key) | domain | forgotten (a keyed hash of an email_key)
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("value", String(320), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    UniqueConstraint("kind", "value", name="uq_suppressions_kind_value"),
)

# The consent and events log: what happened to whom, when, and from where.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=False, default=utcnow),
    Column("kind", String(40), nullable=False),  # subscribed, confirmed, unsubscribed, ...
    Column("email", String(320), nullable=True),  # erased by `forget`
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="SET NULL")),
    Column("source", String(200), nullable=False),  # cli | import:FILE | web | send
    Column("ip", String(64), nullable=True),
    Column("detail", JSON, nullable=False, default=dict),
    Index("ix_events_subscriber", "subscriber_id"),
)

# status: sending | paused | done
issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(100), nullable=False),
    Column("number", Integer, nullable=False),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="RESTRICT"), nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),  # rendered, with personal placeholders
    Column("text", Text, nullable=False),
    Column("status", String(20), nullable=False, default="sending"),
    Column("paused_reason", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("finished_at", UtcDateTime, nullable=True),
    # The random part of the markers its html and text carry (personal.py); None for
    # issues recorded before markers had one.
    Column("marker_nonce", String(32), nullable=True),
    UniqueConstraint("digest", "number", name="uq_issues_digest_number"),
)

# Which articles each issue carried: an article goes into one issue of a digest only once.
issue_articles = Table(
    "issue_articles",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(100), nullable=False),
    Column("article_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=True),
    UniqueConstraint("digest", "article_id", name="uq_issue_articles_digest_article"),
)

# Every identity key (Article.identity: id, canonical URL, feed guid, content fingerprint)
# of every article a digest's issues carried: an article with any of them is not new.
carried_articles = Table(
    "carried_articles",
    metadata,
    Column("digest", String(100), primary_key=True),
    Column("article_key", String(200), primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
)

# Each sender process working on an issue: its lease, and the revocations it has seen
# (an unsubscribe waits until every live sender has seen it; see ledger.py).
senders = Table(
    "senders",
    metadata,
    Column("owner", String(100), primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime, nullable=False),
    Column("revocations_seen", Integer, nullable=False, server_default="0"),
    Index("ix_senders_issue", "issue_id"),
)

# One row: how many revocations (unsubscribes, blocks, forgets) have been committed.
revocation_clock = Table(
    "revocation_clock",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", Integer, nullable=False),
)

# status: pending | claimed | sent | failed | skipped
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),  # also the claim order
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True),
    Column("email", String(320), nullable=True),  # erased by `forget`
    Column("status", String(20), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("retry_at", UtcDateTime, nullable=True),  # a deferred (4xx) delivery waits until then
    Index("ix_deliveries_issue_status", "issue_id", "status"),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
)

# Bounces, complaints and mailto unsubscribes, each with why and what was done about it.
# kind: bounce | complaint | unsubscribe; severity (bounces): hard | soft; `counted`: it
# counts toward [bounces] limits (a soft bounce counts at most once a day). `fingerprint`
# names the message (and the delivery) so that the same message processed twice counts once.
bounce_events = Table(
    "bounce_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=False, default=utcnow),
    Column("kind", String(20), nullable=False),
    Column("severity", String(10), nullable=True),
    Column("counted", Boolean, nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="SET NULL"), nullable=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="SET NULL"), nullable=True),
    Column("email", String(320), nullable=True),  # erased by `forget`, as is the diagnostic
    Column("status", String(20), nullable=True),  # the DSN status code, e.g. 5.1.1
    Column("diagnostic", Text, nullable=True),  # the server's reply or the DSN's diagnostic
    Column("source", String(200), nullable=False),  # send | inbound:FILE | imap | lmtp
    Column("action", Text, nullable=False),
    Column("fingerprint", String(100), nullable=True),
    UniqueConstraint("fingerprint", name="uq_bounce_events_fingerprint"),
    Index("ix_bounce_events_member", "subscriber_id", "list_id", "at"),
    Index("ix_bounce_events_at", "at"),
)

# Feed state across runs: conditional GET validators, and when an undated entry was first seen.
feed_cache = Table(
    "feed_cache",
    metadata,
    Column("url", Text, primary_key=True),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("body", LargeBinary, nullable=True),  # the last 200 answer, reparsed on a 304
    Column("fetched_at", UtcDateTime, nullable=False, default=utcnow),
)

first_seen = Table(
    "first_seen",
    metadata,
    Column("article_id", String(64), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False, default=utcnow),
)

# The next issue of a digest as editors shape it before it is sent: a snapshot of the
# articles it carries (in order, with the excluded ones kept for --include), its subject
# and note, and who approved which version (content_hash) of it. See store/drafts.py.
drafts = Table(
    "drafts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(100), nullable=False),
    Column("number", Integer, nullable=False),
    Column("articles", JSON, nullable=False),
    Column("subject", Text, nullable=False),  # as rendered over the articles, or the override
    Column("subject_override", Text, nullable=True),
    Column("note", Text, nullable=False, default=""),  # Markdown
    Column("issue_date", UtcDateTime, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("approved_by", String(200), nullable=True),
    Column("approved_at", UtcDateTime, nullable=True),
    Column("approved_hash", String(64), nullable=True),
    Column("reviewed_hash", String(64), nullable=True),  # the version last mailed to reviewers
    Column("reviewed_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("digest", "number", name="uq_drafts_digest_number"),
)

# Every change, approval and review mail of a draft: who, when, what.
draft_history = Table(
    "draft_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("draft_id", Integer, ForeignKey("drafts.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime, nullable=False, default=utcnow),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),  # composed, refreshed, edited, approved, ...
    Column("detail", Text, nullable=False),
    Index("ix_draft_history_draft", "draft_id"),
)
