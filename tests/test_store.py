"""The store's transactions: writers take the lock up front and wait their turn; a busy,
read-only or missing database is one clear error. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.errors import StoreError
from newsletter.store import Store
from newsletter.store.migrations import MIGRATIONS

BACKENDS = ("sqlite", "postgres")


def test_a_fresh_database_is_created_and_migrated_once(database_url: str) -> None:
    first = Store(database_url)
    assert [step.applied_at is not None for step in first.migrations.status()] == [True] * len(MIGRATIONS)
    second = Store(database_url)  # reopening applies nothing twice
    assert second.migrations.upgrade() == []
    with second.read() as conn:
        versions = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_a_failed_transaction_leaves_nothing_behind(database_url: str) -> None:
    store = Store(database_url)
    with pytest.raises(RuntimeError), store.write() as conn:
        conn.execute(text("INSERT INTO lists (slug, name, description, double_opt_in, created_at) "
                          "VALUES ('a', 'A', '', false, '2026-01-01 00:00:00')"))
        raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM lists")).scalar() == 0


def test_a_writer_that_reads_first_waits_for_another_writer_instead_of_failing(database_url: str) -> None:
    # Two writers that both read before they write, interleaved: with a deferred BEGIN the
    # second could not upgrade its read lock and SQLite failed it at once ("database is
    # locked", whatever the busy timeout). Taking the write lock up front, it waits.
    store = Store(database_url)
    store.lists.create("weekly")
    inside = threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with store.write() as conn:
                conn.execute(text("SELECT count(*) FROM lists")).scalar()
                inside.set()
                time.sleep(0.5)
                conn.execute(text("UPDATE lists SET name = 'first' WHERE slug = 'weekly'"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    inside.wait(5)
    started = time.monotonic()
    with store.write() as conn:
        conn.execute(text("SELECT count(*) FROM lists")).scalar()
        conn.execute(text("UPDATE lists SET description = 'second' WHERE slug = 'weekly'"))
    waited = time.monotonic() - started
    thread.join()
    assert errors == []
    assert 0.3 < waited < 5
    record = store.lists.get("weekly")
    assert (record.name, record.description) == ("first", "second")


def test_readers_never_wait_for_a_writer(database_url: str) -> None:
    store = Store(database_url)
    store.lists.create("weekly")
    inside, done = threading.Event(), threading.Event()

    def writer() -> None:
        with store.write() as conn:
            conn.execute(text("UPDATE lists SET name = 'changing' WHERE slug = 'weekly'"))
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(5)
    started = time.monotonic()
    assert store.lists.get("weekly").name == "weekly"  # the committed state, at once
    assert time.monotonic() - started < 0.5
    done.set()
    thread.join()


def test_sqlite_connections_use_wal_foreign_keys_and_the_configured_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'n.db'}", busy_timeout=12.5)
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 12_500
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_a_lock_held_beyond_the_busy_timeout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    store = Store(f"sqlite:///{path}", busy_timeout=0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as error:
            store.lists.create("weekly")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(error.value) == (
        f"the database sqlite:///{path} stayed locked by another writer for more than 0.3 s; "
        "try again, or raise [database].busy_timeout"
    )
    assert store.lists.all() == []  # nothing half-written; the store works again
    store.lists.create("weekly")


def test_a_read_only_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    Store(f"sqlite:///{path}").close()
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StoreError, match=r"is read-only \(attempt to write a readonly database\); check"):
        read_only.lists.create("weekly")


def test_an_unreachable_postgresql_server_is_one_clear_error() -> None:
    with pytest.raises(StoreError) as error:
        Store("postgresql+psycopg://nobody:secret@127.0.0.1:9/nowhere")
    message = str(error.value)
    assert message.startswith("database postgresql+psycopg://nobody:***@127.0.0.1:9/nowhere: ")
    assert "secret" not in message and "\n" not in message


def test_the_cli_on_a_read_only_database_says_so_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from newsletter.cli import app

    path = tmp_path / "n.db"
    store = Store(f"sqlite:///{path}")
    store.lists.create("weekly")
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        '[newsletter]\nname = "N"\nfrom = "N <n@example.org>"\n'
        f'[database]\nurl = "sqlite:///file:{path}?mode=ro&uri=true"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["--config", str(config), "subscribers", "add", "a@example.org", "--list", "weekly"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "is read-only" in result.output
    assert Store(f"sqlite:///{path}").lists.summary("weekly").counts == {}  # nothing written


def test_times_round_trip_whatever_the_database_server_s_time_zone(database_url: str, backend: str) -> None:
    if backend == "postgres":  # a server whose sessions default to another zone than UTC
        store = Store(database_url)
        with store.write() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f"ALTER DATABASE {name} SET timezone TO 'Asia/Tokyo'"))
        store.close()
    from newsletter.store.schema import utcnow

    store = Store(database_url)
    before = utcnow()
    created = store.lists.create("weekly").created_at
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((created - before).total_seconds()) < 60
    if backend == "postgres":  # the instant stored is right for every other reader too
        with store.read() as conn:
            drift = conn.execute(
                text("SELECT abs(extract(epoch FROM (created_at - now()))) FROM lists")
            ).scalar()
        assert drift < 60
