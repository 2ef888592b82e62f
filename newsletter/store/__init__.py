"""The store: lists, subscribers, memberships, suppressions, events, issues, deliveries.

SQLAlchemy Core over SQLite by default (foreign keys on, WAL, a busy timeout); nothing in
its interface is SQLite-only, so a PostgreSQL URL works too. The schema is created and
migrated on first use by an ordered list of migrations recorded in `schema_migrations`.

The Store is a facade: each area has its own module and is reached as an attribute
(`store.lists`, `store.subscribers`, `store.issues`, `store.feeds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..errors import StoreError
from . import schema

BUSY_TIMEOUT_MS = 30_000


def _migration_1(conn: Connection) -> None:
    schema.metadata.create_all(conn)


# Append-only: a released migration is never edited, a change is a new entry.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1]


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self.migrate()
        from .feeds import Feeds
        from .issues import Issues
        from .lists import Lists
        from .subscribers import Subscribers

        self.lists = Lists(self)
        self.subscribers = Subscribers(self)
        self.issues = Issues(self)
        self.feeds = Feeds(self)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database {self.url}: {_first_line(exc)}") from exc

    def migrate(self) -> None:
        with self.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)"
                )
            )
            done = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                migration(conn)
                conn.execute(
                    text("INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :at)"),
                    {"v": version, "at": schema.utcnow().isoformat()},
                )

    @property
    def schema_version(self) -> int:
        with self.begin() as conn:
            return conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar_one()

    def close(self) -> None:
        self.engine.dispose()


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != url and not path.startswith(":memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # `BEGIN IMMEDIATE` (claims) and plain BEGIN both behave as written.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"database url {url!r}: {_first_line(exc)}; fix [database].url") from None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _create_engine)
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed "sent" must survive a power cut, or that recipient is mailed twice.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0]
