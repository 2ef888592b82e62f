"""The revocation clock: how an unsubscribe and a running send agree on who is left.

Every write that can take someone off an issue's recipients (an unsubscribe, a block, a
forget, an import that unsubscribes or blocks) moves the clock on by one in the same
transaction, and gets the new reading, its epoch. Writers of the clock row are
serialized by its row lock, so epochs are handed out in commit order.

A sender reads the clock often (one row). When it moved, the sender re-checks the
recipients it has claimed, stops any that left before their message starts, and then
records the epoch it has seen (`senders.revocations_seen`, see ledger.py). An unsubscribe
returns only when every live sender has seen its epoch: from then on nobody mails that
person. The wait is short (the sender's poll interval) and bounded.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from .schema import revocation_clock

_CLOCK_ROW = 1


def record_revocation(conn: Connection) -> int:
    """Move the clock on inside the caller's write transaction; the new epoch."""
    conn.execute(
        update(revocation_clock)
        .where(revocation_clock.c.id == _CLOCK_ROW)
        .values(epoch=revocation_clock.c.epoch + 1)
    )
    return current_epoch(conn)


def current_epoch(conn: Connection) -> int:
    return int(
        conn.execute(
            select(revocation_clock.c.epoch).where(revocation_clock.c.id == _CLOCK_ROW)
        ).scalar_one()
    )
