"""The Store: the engine, its read and write transactions, and the areas it reaches.

See the package docstring (newsletter/store/__init__.py) for what the transactions
guarantee.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..errors import StoreError
from .bounces import Bounces
from .drafts import Drafts
from .events import Events
from .feeds import Feeds
from .issues import Issues
from .ledger import Ledger
from .lists import Lists
from .memberships import Memberships
from .migrations import Migrations
from .subscribers import Subscribers
from .suppressions import Suppressions
from .writerlock import WriterLock, WriterLockTimeout

if TYPE_CHECKING:
    from ..bounce_settings import BounceSettings
    from ..config import Config

DEFAULT_BUSY_TIMEOUT = 30.0
# Key of the PostgreSQL advisory lock that serializes writers as SQLite's write lock does.
_PG_WRITE_LOCK = 0x6E6C_7772  # "nlwr"
_WRITE_OPTION = "newsletter_write"
_WAL_RETRY_SECONDS = 0.02


class Store:
    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrate: bool = True,
        bounce_policy: BounceSettings | None = None,
    ) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.engine = _create_engine(url, busy_timeout)
        self.dialect = self.engine.dialect.name
        self._writer_lock = _writer_lock(self.engine, busy_timeout)
        self.migrations = Migrations(self)
        self.lists = Lists(self)
        self.subscribers = Subscribers(self)
        self.memberships = Memberships(self)
        self.suppressions = Suppressions(self)
        self.events = Events(self)
        self.issues = Issues(self)
        self.drafts = Drafts(self)
        self.ledger = Ledger(self)
        self.feeds = Feeds(self)
        self.bounces = Bounces(self, bounce_policy)
        if migrate:
            self.migrations.upgrade()

    @property
    def where(self) -> str:
        """The database as messages name it (a PostgreSQL password is hidden)."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on SQLite)."""
        with self._transaction(write=False) as conn:
            yield conn

    @contextmanager
    def write(self, *, serial: bool = True) -> Iterator[Connection]:
        """A transaction that may write: committed when the block ends, rolled back on an
        exception. The write lock is taken first (see the module docstring)."""
        if self._writer_lock is None:
            with self._transaction(write=True) as conn:
                if serial and self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_WRITE_LOCK})
                yield conn
            return
        try:
            with self._writer_lock.held(), self._transaction(write=True) as conn:
                yield conn
        except WriterLockTimeout:
            raise StoreError(describe_failure(self, TimeoutError("database is locked"))) from None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: write})
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise  # the caller's to interpret (a duplicate, a race it handles)
        except DBAPIError as exc:
            raise StoreError(describe_failure(self, exc)) from exc

    def close(self) -> None:
        self.engine.dispose()


def open_store(config: Config, *, migrate: bool = True) -> Store:
    """The store a config names: [database], and [bounces] for the bounce policy's limits."""
    database = config.database
    return Store(
        database.url, busy_timeout=database.busy_timeout, migrate=migrate, bounce_policy=config.bounces
    )


def describe_failure(store: Store, exc: BaseException) -> str:
    """One line for a database failure, saying what to do about it."""
    detail = _first_line(exc)
    lowered = detail.lower()
    if "locked" in lowered or "lock timeout" in lowered:
        return (
            f"the database {store.where} stayed locked by another writer for more than "
            f"{store.busy_timeout:g} s; try again, or raise [database].busy_timeout"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return (
            f"the database {store.where} is read-only ({detail}); check the file's and its "
            "folder's permissions (SQLite writes a -wal file beside it)"
        )
    if "disk is full" in lowered or "no space" in lowered or "diskfull" in lowered:
        return f"the database {store.where} cannot grow: the disk is full; free some space"
    return f"database {store.where}: {detail}"


def _writer_lock(engine: Engine, busy_timeout: float) -> WriterLock | None:
    """The lock SQLite writers share (writerlock.py); None for PostgreSQL or a database
    that is not a plain file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database.startswith((":memory:", "file:")):
        return None
    return WriterLock(Path(database), busy_timeout)


def _create_engine(url: str, busy_timeout: float) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != url and not path.startswith((":memory:", "file:")):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", lambda dbapi, _record: _sqlite_pragmas(dbapi, busy_timeout))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        # lock_timeout: a writer waits for a lock at most busy_timeout, as on SQLite.
        options = f"-c lock_timeout={int(busy_timeout * 1000)}"
        return create_engine(url, pool_pre_ping=True, connect_args={"options": options})
    except (SQLAlchemyError, ImportError) as exc:
        hint = "; install the [postgres] extra (psycopg)" if isinstance(exc, ImportError) else ""
        raise StoreError(f"database url {url!r}: {_first_line(exc)}{hint}; fix [database].url") from None


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's own transaction handling is off (see _sqlite_pragmas): we say BEGIN, and a
    # transaction that may write says IMMEDIATE so it waits for the write lock up front.
    immediate = conn.get_execution_options().get(_WRITE_OPTION, True)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, busy_timeout: float) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    _use_wal(cursor, busy_timeout)
    # FULL: a committed "sent" must survive a power cut, or that recipient is mailed twice.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _use_wal(cursor: Any, busy_timeout: float) -> None:
    """Put the database in WAL mode (once: the mode is stored in the file). Switching
    needs a moment alone with the file and fails at once, without the busy handler, when
    another process opens the new database at the same time: try again until the
    busy timeout."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_SECONDS)


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
