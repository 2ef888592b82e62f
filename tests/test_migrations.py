"""Migrations: a store made by the first release upgrades with its data intact; a fresh
store, an upgraded one and schema.py agree; two processes never migrate twice; a failing
step rolls back whole; `newsletter db status | upgrade | backup`. On SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.errors import StoreError
from newsletter.store import Store, migrations
from newsletter.store.migrations import MIGRATIONS, Migration
from newsletter.store.schema import metadata

from conftest import FIXTURES

BACKENDS = ("sqlite", "postgres")
V1 = FIXTURES / "store-v1"


def v1_store_url(database_url: str, tmp_path: Path) -> str:
    """A copy of the first release's store, at `database_url` (not yet opened by Store)."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "v1.sqlite"
        shutil.copy(V1 / "store-v1.sqlite", path)
        return f"sqlite:///{path}"
    engine = create_engine(database_url)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        raw.execute((V1 / "store-v1-postgres.sql").read_text(encoding="utf-8"))  # type: ignore[arg-type]
        raw.commit()
    engine.dispose()
    return database_url


def shape(url: str) -> dict[str, Any]:
    """Everything the inspector says about a schema: tables, columns, keys, indexes."""
    engine = create_engine(url)
    found = inspect(engine)
    result: dict[str, Any] = {}
    for table in sorted(found.get_table_names()):
        result[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in found.get_columns(table)
            ],
            "primary key": found.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]),
                 str(fk.get("options", {}).get("ondelete")))
                for fk in found.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"])) for ix in found.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"])) for u in found.get_unique_constraints(table)
            ),
        }
    engine.dispose()
    return result


def test_a_store_of_the_first_release_upgrades_with_its_data_intact(
    database_url: str, tmp_path: Path
) -> None:
    url = v1_store_url(database_url, tmp_path)
    old = Store(url, migrate=False)
    assert [step.applied_at is not None for step in old.migrations.status()] == [True] + [False] * (
        len(MIGRATIONS) - 1
    )
    old.close()

    store = Store(url)

    assert [summary.list.slug for summary in store.lists.all()] == ["alerts", "weekly"]
    assert store.lists.summary("weekly").counts == {"confirmed": 19, "unsubscribed": 1}  # one forgotten
    assert store.subscribers.get("ada@example.org").name == "Ada Lovelace"
    assert store.suppressions.is_suppressed("reader4@example.org", b"fixture-secret")
    assert store.suppressions.is_suppressed("anyone@spam.example", b"fixture-secret")
    assert store.suppressions.is_suppressed("reader5@example.org", b"fixture-secret")  # forgotten
    assert store.subscribers.get("reader1@example.org").attributes == {"city": "Berlin"}
    history = store.issues.history("weekly")
    assert [(s.number, s.status, s.counts.sent, s.counts.pending) for s in history] == [
        (2, "sending", 0, 18),
        (1, "done", 18, 0),
    ]
    # Migration 8 remembers what the first release carried under its ids and URLs.
    assert store.issues.carried_keys("weekly") == {
        "id:3c073d05e4abc2c9", "id:crashed-article-1", "url:https://example.org/a"
    }
    assert store.feeds.get_cache("https://example.org/feed").etag == '"etag1"'  # type: ignore[union-attr]
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() >= 25


def test_the_cut_short_issue_of_an_upgraded_store_is_sent_to_the_end(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = v1_store_url(database_url, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[newsletter]\nname = "Fixture Weekly"\nfrom = "Fixture <news@example.org>"\n'
        f'[database]\nurl = "{url}"\n[delivery]\ntransport = "outbox"\noutbox = "outbox"\n'
        '[[sources]]\nname = "desk"\nkind = "folder"\npath = "articles"\n'
        '[digests.weekly]\nlist = "weekly"\nsubject = "Fixture"\n',
        encoding="utf-8",
    )
    (tmp_path / "articles").mkdir()
    monkeypatch.setenv("NEWSLETTER_SECRET", "fixture-secret")
    result = CliRunner().invoke(app, ["--config", str(config), "send", "weekly", "--yes"])
    assert result.exit_code == 0, result.output
    assert "issue #2 of weekly: 18 sent, 0 failed, 0 skipped, 0 left" in result.output
    assert len(list((tmp_path / "outbox" / "weekly-2").glob("*.eml"))) == 18


def test_fresh_and_upgraded_stores_have_the_same_schema_as_schema_py(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    upgraded_url = v1_store_url(database_url, tmp_path)
    Store(upgraded_url).close()
    fresh_url = (
        f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite"
        else request.getfixturevalue("postgres_cluster").url(
            request.getfixturevalue("postgres_cluster").create_database()
        )
    )
    Store(fresh_url).close()

    fresh, upgraded = shape(fresh_url), shape(upgraded_url)
    assert fresh == upgraded
    # schema.py describes exactly what the migrations made (bookkeeping aside).
    described = {table.name: [c.name for c in table.columns] for table in metadata.sorted_tables}
    made = {
        name: [column[0] for column in info["columns"]]
        for name, info in fresh.items()
        if name != "schema_migrations"
    }
    assert made == dict(sorted(described.items()))
    nullable = {
        (table.name, c.name): c.nullable for table in metadata.sorted_tables for c in table.columns
    }
    assert {
        (name, column[0]): column[2]
        for name, info in fresh.items() if name != "schema_migrations"
        for column in info["columns"]
    } == nullable


def test_processes_that_start_at_once_migrate_once(database_url: str) -> None:
    script = "import sys; from newsletter.store import Store; Store(sys.argv[1]).close()"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=60)[1].decode() for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, errors
    store = Store(database_url, migrate=False)
    with store.read() as conn:
        versions = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars().all()
    assert versions == [m.version for m in MIGRATIONS]


def test_a_failing_step_rolls_back_whole_and_is_named(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(database_url).close()
    broken = Migration(
        len(MIGRATIONS) + 1,
        "a broken step",
        "CREATE TABLE half_done (id INTEGER NOT NULL, PRIMARY KEY (id));\n"
        "ALTER TABLE no_such_table ADD COLUMN x INTEGER;\n",
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StoreError) as error:
        Store(database_url)
    message = str(error.value)
    assert message.startswith(f"migration {broken.version} (a broken step) failed on ")
    assert message.endswith("; nothing of it was applied")
    store = Store(database_url, migrate=False)
    assert store.migrations.status()[-1].applied_at is None
    with store.read() as conn:
        assert not inspect(conn).has_table("half_done")


def test_a_store_migrated_by_a_newer_release_is_refused(database_url: str) -> None:
    store = Store(database_url)
    with store.write() as conn:
        conn.execute(text("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'later')"))
    with pytest.raises(StoreError, match=r"migrated by a newer version of newsletter \(schema 999"):
        Store(database_url)


def test_db_status_and_upgrade(database_url: str, tmp_path: Path) -> None:
    url = v1_store_url(database_url, tmp_path)
    config = tmp_path / "db.toml"
    config.write_text(
        f'[newsletter]\nname = "N"\nfrom = "N <n@example.org>"\n[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    status = runner.invoke(app, ["--config", str(config), "db", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert '"applied_at": null' in status.output  # status changes nothing
    text_status = runner.invoke(app, ["--config", str(config), "db", "status"])
    assert f"{len(MIGRATIONS) - 1} pending; run `newsletter db upgrade`" in text_status.output

    upgrade = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert upgrade.exit_code == 0, upgrade.output
    assert upgrade.output.splitlines()[:len(MIGRATIONS) - 1] == [
        f"Applied step {m.version}: {m.name}." for m in MIGRATIONS[1:]
    ]
    again = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert again.output.endswith("was up to date.\n")


def test_db_backup_is_a_consistent_copy_taken_while_others_write(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    store = Store(f"sqlite:///{path}")
    store.lists.create("weekly")
    stop, busy = threading.Event(), threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            store.subscribers.add(f"writer{n}@example.org", "weekly")
            n += 1
            if n == 20:
                busy.set()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    busy.wait(30)
    config = tmp_path / "db.toml"
    config.write_text(
        f'[newsletter]\nname = "N"\nfrom = "N <n@example.org>"\n[database]\nurl = "sqlite:///{path}"\n',
        encoding="utf-8",
    )
    try:
        result = CliRunner().invoke(app, ["--config", str(config), "db", "backup", str(tmp_path / "copy.db")])
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote a consistent copy of sqlite:///{path} to {tmp_path / 'copy.db'}")
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    subscribers, members, joins = (
        copy.execute("SELECT count(*) FROM subscribers").fetchone()[0],
        copy.execute("SELECT count(*) FROM memberships").fetchone()[0],
        copy.execute("SELECT count(*) FROM events WHERE kind = 'subscribed'").fetchone()[0],
    )
    assert subscribers == members == joins > 0  # one snapshot: every add whole or absent
    assert not list(tmp_path.glob(".copy.db*"))  # no temporary file left


def test_db_backup_of_postgresql_says_to_use_pg_dump(tmp_path: Path, postgres_database: str) -> None:
    database_url = postgres_database
    config = tmp_path / "db.toml"
    config.write_text(
        f'[newsletter]\nname = "N"\nfrom = "N <n@example.org>"\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["--config", str(config), "db", "backup", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "is a PostgreSQL database: back it up with pg_dump" in result.output
    assert not (tmp_path / "x").exists()
