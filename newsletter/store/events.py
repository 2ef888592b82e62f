"""Store area: the consent and events log (what happened to whom, when, from where).

Every change of a membership or of the suppression list is written here, in the same
transaction as the change, with its source ("cli", "import:FILE", "web", "send") and,
when the web supplies it, the IP address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from .schema import events

if TYPE_CHECKING:
    from . import Store


def log_event(
    conn: Connection,
    kind: str,
    *,
    source: str,
    email: str | None = None,
    subscriber_id: int | None = None,
    list_id: int | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One line of the log, inside the caller's write transaction."""
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


class Events:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, kind: str, *, source: str, **fields: Any) -> None:
        """Log one event in its own transaction (see `log_event` for the fields)."""
        with self.store.write() as conn:
            log_event(conn, kind, source=source, **fields)

    def for_subscriber(self, subscriber_id: int) -> list[dict[str, Any]]:
        """The log of one subscriber, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(events).where(events.c.subscriber_id == subscriber_id).order_by(events.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]
