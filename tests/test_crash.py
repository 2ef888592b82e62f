"""Crashes: claims and leases of a dead sender, and `newsletter send` killed with SIGKILL
mid-run, then run again: every recipient gets the issue once, nobody is skipped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cli_process import finish_send, kill, start_send, wait_until
from smtp_server import SmtpTestServer, crowd, generated_people, subscribe

from newsletter.config import Config
from newsletter.sending.lease import new_owner, owner_is_dead
from newsletter.store import Store
from newsletter.store.ledger import PENDING, Claim, Outcome

BACKENDS = ("sqlite", "postgres")

RECIPIENTS = 2000
CONNECTIONS = 4


def later(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def record_issue(store: Store) -> int:
    list_id = store.lists.get("weekly").id
    issue = store.issues.record(
        digest="weekly", number=1, list_id=list_id, subject="s", html="h", text="t",
        articles=[], created_at=later(0), marker_nonce=None,
    )
    return issue.id


def alive(owner: str) -> bool:
    return False


def test_senders_share_an_issue_and_the_claims_of_one_that_is_gone_are_taken_over(config: Config) -> None:
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", generated_people(5))
    list_id = store.lists.get("weekly").id
    first, second = "host:1:aaaa", "host:2:bbbb"
    issue_id = record_issue(store)
    assert store.ledger.join(issue_id, first, later(60), alive) == 0
    claimed = store.ledger.claim(issue_id, list_id, first, later(60), limit=3)
    assert claimed is not None and [d.email for d in claimed.deliveries] == [
        "reader000000@example.org", "reader000001@example.org", "reader000002@example.org",
    ]

    # A second sender joins; it takes what is left, never the first one's live claims.
    assert store.ledger.join(issue_id, second, later(60), alive) == 0
    rest = store.ledger.claim(issue_id, list_id, second, later(60), limit=10)
    assert rest is not None and [d.email for d in rest.deliveries] == [
        "reader000003@example.org", "reader000004@example.org",
    ]

    # The first sender crashed: its lease and claims run out, and the second takes them.
    assert store.ledger.heartbeat(issue_id, first, later(-1))
    taken = store.ledger.claim(issue_id, list_id, second, later(60), limit=10)
    assert taken is not None and [d.id for d in taken.deliveries] == [d.id for d in claimed.deliveries]

    # The first sender, back from the dead, claims nothing and cannot undo the new claims.
    assert store.ledger.claim(issue_id, list_id, first, later(60), limit=10) is None
    store.ledger.record_outcomes(first, [Outcome(taken.deliveries[0].id, PENDING, attempted=False)])
    assert store.ledger.counts(issue_id).pending == 5
    assert store.ledger.claim(issue_id, list_id, second, later(60), limit=10) == Claim([], skipped=0)

    # A sender that joins later frees the claims of a dead one at once, without waiting.
    third = "host:3:cccc"
    assert store.ledger.join(issue_id, third, later(60), lambda owner: owner == second) == 0
    assert store.ledger.heartbeat(issue_id, second, later(60)) is False  # it was unregistered
    again = store.ledger.claim(issue_id, list_id, third, later(60), limit=10)
    assert again is not None and len(again.deliveries) == 5


def test_a_lease_held_by_a_dead_process_on_this_host_is_free() -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = socket.gethostname()
    assert owner_is_dead(f"{host}:{finished.pid}:abcd")
    assert not owner_is_dead(new_owner())  # this process
    assert not owner_is_dead(f"{host}:{os.getppid()}:abcd")  # alive
    assert not owner_is_dead(f"elsewhere.example:{finished.pid}:abcd")  # cannot know: wait for expiry


@pytest.fixture
def crash_project(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", "crash-test-secret")
    return crowd(project, smtp_server, RECIPIENTS, CONNECTIONS)


@pytest.mark.slow
def test_sigkill_while_every_connection_waits_for_the_server_loses_and_repeats_nothing(
    crash_project: Path, smtp_server: SmtpTestServer
) -> None:
    # The server stops answering DATA after 700 messages: every connection has a message
    # in flight, the rest of the claimed batches wait. Then the sender is killed.
    smtp_server.hold_after(700)
    sender = start_send(crash_project)
    wait_until(lambda: smtp_server.held >= CONNECTIONS)
    time.sleep(0.2)  # outcomes of the 700 accepted messages reach the ledger
    kill(sender)
    smtp_server.release()  # the held messages were never accepted
    assert len(smtp_server.messages) == 700

    out = finish_send(crash_project)

    assert f"issue #1 of weekly: {RECIPIENTS} sent, 0 failed" in out
    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS
    assert set(received.values()) == {1}


@pytest.mark.slow
def test_sigkill_at_any_moment_skips_nobody(crash_project: Path, smtp_server: SmtpTestServer) -> None:
    sender = start_send(crash_project)
    wait_until(lambda: len(smtp_server.messages) >= 900)
    kill(sender)

    finish_send(crash_project)

    # Twice only for what the server accepted in the instant before the kill, before the
    # sender wrote it down: at most a few messages per connection.
    smtp_server.assert_everyone_mailed(RECIPIENTS, twice_at_most=5 * CONNECTIONS)


@pytest.mark.slow
def test_sigterm_finishes_the_messages_in_flight_and_send_resumes(
    crash_project: Path, smtp_server: SmtpTestServer
) -> None:
    sender = start_send(crash_project)
    wait_until(lambda: len(smtp_server.messages) >= 300)
    sender.send_signal(signal.SIGTERM)
    out, err = sender.communicate(timeout=30)

    assert sender.returncode == 1
    assert err.decode() == "Stopping after the messages in flight; `send` again resumes.\n"
    summary = out.decode().strip()
    assert summary.endswith("stopped: run `newsletter send weekly` to resume"), summary
    sent = int(re.match(r"issue #1 of weekly: (\d+) sent", summary).group(1))  # type: ignore[union-attr]
    assert sent == len(smtp_server.messages)  # everything accepted was recorded as sent

    finish_send(crash_project)

    received = smtp_server.per_recipient()
    assert len(received) == RECIPIENTS and set(received.values()) == {1}
