"""Store area: feed state across runs.

Two things outlive one read of a feed: the validators of its last HTTP answer (ETag,
Last-Modified) with the body they belong to, so that a 304 Not Modified can be answered
from the store; and the moment an undated entry was first seen, which stands in for its
publication date so the entry keeps one date across runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from .schema import feed_cache, first_seen, utcnow

if TYPE_CHECKING:
    from . import Store


@dataclass(frozen=True)
class FeedCache:
    """What the last 200 answer for a feed URL said, to ask "has it changed?" next time."""

    url: str
    etag: str | None
    last_modified: str | None
    body: bytes | None
    fetched_at: datetime


class Feeds:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get_cache(self, url: str) -> FeedCache | None:
        with self.store.read() as conn:
            row = conn.execute(select(feed_cache).where(feed_cache.c.url == url)).first()
        if row is None:
            return None
        return FeedCache(
            url=row.url,
            etag=row.etag,
            last_modified=row.last_modified,
            body=row.body,
            fetched_at=row.fetched_at,
        )

    def save_cache(
        self, url: str, etag: str | None, last_modified: str | None, body: bytes
    ) -> None:
        """Remember the validators and body of a 200 answer (replacing the previous ones)."""
        values = {
            "etag": etag,
            "last_modified": last_modified,
            "body": body,
            "fetched_at": utcnow(),
        }
        with self.store.write() as conn:
            changed = conn.execute(
                update(feed_cache).where(feed_cache.c.url == url).values(**values)
            ).rowcount
            if not changed and not _insert_if_absent(conn, feed_cache, {"url": url, **values}):
                # Another reader inserted the row between our update and insert: theirs is
                # as fresh as ours, so overwrite it with ours and move on.
                conn.execute(update(feed_cache).where(feed_cache.c.url == url).values(**values))

    def first_seen(self, article_id: str, now: datetime) -> datetime:
        """When the article was first seen; `now` is recorded (and returned) the first time."""
        with self.store.read() as conn:  # the usual case: no write lock needed
            seen = _seen_at(conn, article_id)
        if seen is not None:
            return seen
        with self.store.write() as conn:
            if _insert_if_absent(conn, first_seen, {"article_id": article_id, "seen_at": now}):
                return now
            # A concurrent reader recorded it first; its moment is the one that counts.
            seen = _seen_at(conn, article_id)
            assert seen is not None
            return seen


def _seen_at(conn: Connection, article_id: str) -> datetime | None:
    return conn.execute(
        select(first_seen.c.seen_at).where(first_seen.c.article_id == article_id)
    ).scalar_one_or_none()


def _insert_if_absent(conn: Connection, table: Table, values: dict[str, object]) -> bool:
    """Insert the row; False if its primary key already exists (the transaction goes on).

    The savepoint keeps a unique violation from aborting the whole transaction, which
    PostgreSQL would otherwise do; this is the portable form of "ON CONFLICT DO NOTHING".
    """
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True
