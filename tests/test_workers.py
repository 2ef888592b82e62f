"""Several sender processes on one issue: `send --workers N` and `newsletter worker`.
Every recipient exactly once, also when one of them is killed; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from cli_process import finish_send, newsletter, wait_until
from smtp_server import SmtpTestServer, crowd
from sqlalchemy import select

from newsletter.store import Store
from newsletter.store.schema import senders

BACKENDS = ("sqlite", "postgres")
RECIPIENTS = 3000
CONNECTIONS = 4
BOUND = 16  # the README's bound on duplicates: 4 per connection


@pytest.fixture
def crowded(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", "workers-test-secret")
    return crowd(project, smtp_server, RECIPIENTS, CONNECTIONS)


def worker_pids(database_url: str) -> list[int]:
    """The processes registered as senders right now (owners are host:pid:random)."""
    store = Store(database_url, migrate=False)
    with store.read() as conn:
        owners = conn.execute(select(senders.c.owner)).scalars().all()
    store.close()
    here = socket.gethostname()
    return [int(owner.split(":")[1]) for owner in owners if owner.split(":")[0] == here]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_several_sender_processes_mail_each_recipient_once(
    crowded: Path, smtp_server: SmtpTestServer, workers: int
) -> None:
    out = newsletter(crowded, "send", "weekly", "--yes", "--workers", str(workers)).communicate(timeout=180)[0]

    summary = out.decode()
    assert f"issue #1 of weekly: {RECIPIENTS} sent, 0 failed, 0 skipped, 0 left" in summary, summary
    shares = re.search(rf"; {workers} sender processes sent ([\d, ]+)", summary)
    assert shares is not None, summary
    counts = [int(n) for n in shares.group(1).split(", ")]
    assert sum(counts) == RECIPIENTS and min(counts) > 0  # every process took batches
    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS and set(received.values()) == {1}


@pytest.mark.slow
def test_a_killed_sender_process_loses_only_its_batches_to_the_others(
    crowded: Path, smtp_server: SmtpTestServer, database_url: str
) -> None:
    smtp_server.slow_down(0.005)  # about 4 s in all: time to kill one mid-send
    sender = newsletter(crowded, "send", "weekly", "--yes", "--workers", "2")
    wait_until(lambda: len(smtp_server.messages) >= 500 and len(worker_pids(database_url)) == 2)
    os.kill(worker_pids(database_url)[0], signal.SIGKILL)

    out, err = sender.communicate(timeout=180)

    assert sender.returncode == 0, err.decode()
    assert f"issue #1 of weekly: {RECIPIENTS} sent, 0 failed" in out.decode()
    smtp_server.assert_everyone_mailed(RECIPIENTS, twice_at_most=BOUND)


@pytest.mark.slow
def test_a_worker_joins_a_running_send_and_both_send_some(
    crowded: Path, smtp_server: SmtpTestServer, backend: str
) -> None:
    smtp_server.slow_down(0.005)
    sender = newsletter(crowded, "send", "weekly", "--yes", "--workers", "1")
    wait_until(lambda: len(smtp_server.messages) >= 100)
    worker = newsletter(crowded, "worker")

    out, err = sender.communicate(timeout=180)
    time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)  # idle now: it stops at once
    worker_out, worker_err = worker.communicate(timeout=30)

    assert sender.returncode == 0, err.decode()
    assert worker.returncode == 0, worker_err.decode()
    by_send = int(re.search(r"this run sent (\d+)", out.decode()).group(1))  # type: ignore[union-attr]
    by_worker = int(re.search(r"this worker sent (\d+)", worker_out.decode()).group(1))  # type: ignore[union-attr]
    assert by_send > 0 and by_worker > 0 and by_send + by_worker == RECIPIENTS
    assert "the issue is done" in worker_out.decode()
    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS and set(received.values()) == {1}


@pytest.mark.slow
def test_sigterm_stops_every_sender_process_after_its_messages_in_flight(
    crowded: Path, smtp_server: SmtpTestServer
) -> None:
    smtp_server.slow_down(0.005)
    sender = newsletter(crowded, "send", "weekly", "--yes", "--workers", "2")
    wait_until(lambda: len(smtp_server.messages) >= 300)
    sender.send_signal(signal.SIGTERM)
    out, _ = sender.communicate(timeout=60)

    assert sender.returncode == 1
    sent = int(re.search(r"issue #1 of weekly: (\d+) sent", out.decode()).group(1))  # type: ignore[union-attr]
    assert sent == len(smtp_server.messages) < RECIPIENTS  # everything accepted was recorded

    finish_send(crowded)
    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS and set(received.values()) == {1}


def test_a_worker_with_nothing_to_send_waits_and_stops_on_sigterm(crowded: Path) -> None:
    worker = newsletter(crowded, "worker")
    time.sleep(1.5)
    assert worker.poll() is None  # waiting for an issue to be sent
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert (worker.returncode, out, err) == (0, b"", b"")



@pytest.mark.slow
def test_auto_workers_are_one_per_core_on_postgresql_and_one_on_sqlite(
    crowded: Path, smtp_server: SmtpTestServer, database_url: str
) -> None:
    out, err = newsletter(crowded, "send", "weekly", "--yes").communicate(timeout=180)

    summary = out.decode()
    assert f"issue #1 of weekly: {RECIPIENTS} sent, 0 failed" in summary, err.decode()
    single_writer = database_url.startswith("sqlite")
    expected = 1 if single_writer else min(len(os.sched_getaffinity(0)), CONNECTIONS)
    shares = re.search(r"; (\d+) sender processes sent", summary)
    assert (int(shares.group(1)) if shares else 1) == expected, summary
    assert set(smtp_server.per_recipient().values()) == {1}
