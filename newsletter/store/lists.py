"""Store area: lists (slug, name, description, double opt-in) and their member counts."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, StoreError
from .records import ListRecord, ListSummary
from .schema import issues, lists, memberships

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from . import Store

# A slug goes into URLs, List-Id headers and config files: keep it plain.
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")


class Lists:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        slug: str,
        name: str | None = None,
        description: str = "",
        double_opt_in: bool = False,
    ) -> ListRecord:
        """A new list; StoreError if the slug is malformed or taken."""
        if not _SLUG.fullmatch(slug):
            raise StoreError(
                f"invalid list slug {slug!r}: use lower-case letters, digits, '-' and '_' "
                "(at most 100, starting with a letter or digit)"
            )
        values = {
            "slug": slug,
            "name": name or slug,
            "description": description,
            "double_opt_in": double_opt_in,
        }
        try:
            with self.store.write() as conn:
                conn.execute(insert(lists).values(values))
        except IntegrityError:
            raise StoreError(
                f"list {slug!r} already exists; pick another slug "
                f"(or remove it first with `newsletter lists rm {slug}`)"
            ) from None
        return self.get(slug)

    def get(self, slug: str) -> ListRecord:
        with self.store.read() as conn:
            return self.get_in(conn, slug)

    def get_in(self, conn: Connection, slug: str) -> ListRecord:
        """`get` inside a transaction the caller holds."""
        row = conn.execute(select(lists).where(lists.c.slug == slug)).first()
        if row is None:
            raise NotFound(f"no list {slug!r}; create it with `newsletter lists add {slug}`")
        return list_record(row)

    def get_by_id(self, list_id: int) -> ListRecord:
        with self.store.read() as conn:
            row = conn.execute(select(lists).where(lists.c.id == list_id)).first()
        if row is None:
            raise NotFound(f"no list with id {list_id}; see `newsletter lists ls`")
        return list_record(row)

    def all(self) -> list[ListSummary]:
        """Every list, by slug, with its member counts by status."""
        with self.store.read() as conn:
            rows = conn.execute(select(lists).order_by(lists.c.slug)).all()
            counts = _member_counts(conn)
        return [ListSummary(list_record(row), counts.get(row.id, {})) for row in rows]

    def summary(self, slug: str) -> ListSummary:
        with self.store.read() as conn:
            record = self.get_in(conn, slug)
            counts = _member_counts(conn, record.id)
        return ListSummary(record, counts.get(record.id, {}))

    def remove(self, slug: str) -> int:
        """Delete a list and its memberships (subscribers stay); refused once it has issues.
        The number of memberships removed."""
        with self.store.write() as conn:
            record = self.get_in(conn, slug)
            sent = conn.execute(
                select(func.count()).select_from(issues).where(issues.c.list_id == record.id)
            ).scalar_one()
            if sent:
                raise StoreError(
                    f"list {slug!r} has {sent} issue(s) in the history; it cannot be removed "
                    "(unsubscribe its members instead)"
                )
            removed = conn.execute(
                delete(memberships).where(memberships.c.list_id == record.id)
            ).rowcount
            conn.execute(delete(lists).where(lists.c.id == record.id))
        return removed


def _member_counts(conn: Connection, list_id: int | None = None) -> dict[int, dict[str, int]]:
    """list id -> membership status -> count."""
    query = select(memberships.c.list_id, memberships.c.status, func.count()).group_by(
        memberships.c.list_id, memberships.c.status
    )
    if list_id is not None:
        query = query.where(memberships.c.list_id == list_id)
    counts: dict[int, dict[str, int]] = {}
    for member_list, status, count in conn.execute(query):
        counts.setdefault(member_list, {})[status] = count
    return counts


def list_record(row: Row[Any]) -> ListRecord:
    """A `lists` row as a ListRecord."""
    return ListRecord(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        double_opt_in=bool(row.double_opt_in),
        created_at=row.created_at,
    )
