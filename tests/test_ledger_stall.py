"""A ledger that cannot be written mid-send: the sender stops within its window of
unrecorded messages and waits, goes on when the store is writable again, or stops with
one line after `ledger_timeout`; a SIGKILL during the stall duplicates at most the window.
On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from cli_process import finish_send, kill, start_send, wait_until
from smtp_server import SmtpTestServer, configure, crowd, generated_people, subscribe
from sqlalchemy import make_url

from newsletter.store import Store

BACKENDS = ("sqlite", "postgres")
RECIPIENTS = 2000
CONNECTIONS = 4
BOUND = 16  # the README's stated bound: 4 per connection


@contextmanager
def ledger_locked(database_url: str) -> Iterator[None]:
    """Another connection holds what every ledger write needs, until the block ends."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as holder:
        holder.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")  # readers go on, writers wait
        yield
        holder.rollback()


def recorded_sent(store: Store) -> int:
    return store.ledger.counts(1).sent


@pytest.fixture
def stall_project(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", "stall-test-secret")
    return crowd(project, smtp_server, RECIPIENTS, CONNECTIONS)


def assert_window_respected(store: Store, server: SmtpTestServer) -> int:
    """While the ledger is blocked the sender stops within the window; the stalled count."""
    time.sleep(3)
    accepted = len(server.messages)
    assert accepted - recorded_sent(store) <= BOUND
    time.sleep(1)
    assert len(server.messages) == accepted, "the sender went on sending unrecorded"
    return accepted


@pytest.mark.slow
def test_sigkill_while_the_ledger_is_locked_duplicates_at_most_the_window(
    stall_project: Path, smtp_server: SmtpTestServer, database_url: str
) -> None:
    store = Store(database_url)
    sender = start_send(stall_project)
    wait_until(lambda: len(smtp_server.messages) >= 400)
    with ledger_locked(database_url):
        started = time.monotonic()
        assert_window_respected(store, smtp_server)
        kill(sender)
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))  # a 10 s hold in all

    finish_send(stall_project)

    smtp_server.assert_everyone_mailed(RECIPIENTS, twice_at_most=BOUND)


@pytest.mark.slow
def test_a_send_waits_out_a_locked_ledger_and_goes_on(
    stall_project: Path, smtp_server: SmtpTestServer, database_url: str
) -> None:
    store = Store(database_url)
    sender = start_send(stall_project)
    wait_until(lambda: len(smtp_server.messages) >= 400)
    with ledger_locked(database_url):
        assert_window_respected(store, smtp_server)
    out, err = sender.communicate(timeout=120)

    assert sender.returncode == 0, err.decode()
    assert f"issue #1 of weekly: {RECIPIENTS} sent, 0 failed" in out.decode()
    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS and set(received.values()) == {1}


@pytest.mark.slow
def test_a_ledger_locked_beyond_the_timeout_stops_the_send_with_one_line(
    project: Path, smtp_server: SmtpTestServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "stall-test-secret")
    config = configure(
        project,
        smtp_server.config_toml(connections=CONNECTIONS, delivery="batch_size = 50\nledger_timeout = 2"),
    )
    path = project / "config.toml"
    path.write_text(path.read_text().replace("[database]\n", "[database]\nbusy_timeout = 0.5\n"))
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", generated_people(600))
    sender = start_send(project)
    wait_until(lambda: len(smtp_server.messages) >= 100)
    with ledger_locked(database_url):
        out, err = sender.communicate(timeout=60)
        stalled_at = len(smtp_server.messages)

    assert sender.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: issue #1 of weekly stopped: the store could not be written for 2 s (")
    assert lines[0].endswith(
        "could not be recorded and may go out again; run `newsletter send weekly` once the "
        "database is writable"
    )
    assert stalled_at - recorded_sent(store) <= BOUND

    finish_send(project)
    received = smtp_server.per_recipient()
    assert len(received) == 600
    assert sum(1 for count in received.values() if count > 1) <= BOUND
