"""The store: lists, subscribers, memberships, suppressions, events, issues, the ledger, bounces.

SQLAlchemy Core over SQLite by default (foreign keys on, WAL, a busy timeout), or
PostgreSQL by URL (psycopg 3). The schema is made and changed only by the numbered
migrations in `migrations.py`, applied on first use (or by `newsletter db upgrade`).

Transactions say what they are:

- `store.read()`: a snapshot to read from. Readers never block writers (WAL on SQLite,
  MVCC on PostgreSQL).
- `store.write()`: a transaction that may write takes the write lock up front: `BEGIN
  IMMEDIATE` on SQLite, one advisory lock on PostgreSQL. A second writer therefore waits
  (up to `busy_timeout`) instead of failing the way a deferred BEGIN that reads first and
  then cannot upgrade its lock does. Every write transaction is short, so a writer waits
  at most about one other transaction.
- `store.write(serial=False)`: the ledger's hot path on PostgreSQL, which relies on row
  locks (and `FOR UPDATE SKIP LOCKED`) so that several senders work side by side; on
  SQLite it is the same `BEGIN IMMEDIATE`.

The Store is a facade: each area has its own module and is reached as an attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import DEFAULT_BUSY_TIMEOUT, Store, describe_failure, open_store

__all__ = ["DEFAULT_BUSY_TIMEOUT", "Store", "describe_failure", "open_store"]


def __getattr__(name: str) -> Any:
    """`Store` and friends load SQLAlchemy: only when asked for (PEP 562), so that a
    command that only needs the record types (`store.records`) starts at once."""
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
