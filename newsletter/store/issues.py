"""Store area: issues of each digest, the articles they carried, and their deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from .schema import issue_articles, issues

if TYPE_CHECKING:
    from . import Store


class Issues:
    def __init__(self, store: Store) -> None:
        self.store = store

    def carried_article_ids(self, digest: str) -> set[str]:
        """Ids of every article an earlier issue of this digest already carried."""
        with self.store.begin() as conn:
            rows = conn.execute(
                select(issue_articles.c.article_id).where(issue_articles.c.digest == digest)
            )
            return {row.article_id for row in rows}

    def next_number(self, digest: str) -> int:
        """The number the digest's next issue will carry (1 for the first)."""
        with self.store.begin() as conn:
            latest = conn.execute(
                select(func.max(issues.c.number)).where(issues.c.digest == digest)
            ).scalar_one()
            return (latest or 0) + 1
