from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from newsletter.store import MIGRATIONS, Store


def test_a_fresh_database_is_created_and_migrated_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'dir' / 'newsletter.db'}"
    first = Store(url)
    assert first.schema_version == len(MIGRATIONS)
    second = Store(url)  # reopening applies nothing twice
    with second.begin() as conn:
        versions = conn.execute(text("SELECT version FROM schema_migrations")).scalars().all()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    with store.begin() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with store.begin() as conn:
            conn.execute(text("INSERT INTO lists (slug, name, description, double_opt_in, created_at) "
                              "VALUES ('a', 'A', '', 0, '2026-01-01 00:00:00')"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with store.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM lists")).scalar() == 0
