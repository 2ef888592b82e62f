"""The whole loop over the SMTP test server: send with a bounce address (VERP envelope
senders, Feedback-ID), feed back a hard bounce, a soft one, a complaint, a mailto
unsubscribe, a forged bounce and a vacation notice through `newsletter inbound process`,
then send the next issue and see exactly the right people skipped; and a bounce processed
in the middle of a send."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bounce_mail import arf, dsn, mailto_unsubscribe, vacation
from newsletter.cli import app
from newsletter.sending import send_digest
from newsletter.sending.revocations import REVOCATION_POLL_SECONDS
from newsletter.store import Store
from newsletter.store.bounces import BOUNCE, HARD, MemberEvent
from smtp_server import Received, SmtpTestServer, configure, generated_people, subscribe

SECRET = "loop-secret"
PEOPLE = ["hard", "soft", "complains", "leaves", "forged", "away", "refused", "stays"]
VERP = re.compile(r"bounces\+([0-9a-z]+-[0-9a-z]+-[a-z2-7]{16})@example\.org")


def run(project: Path, *args: str, stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def sent(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Received]:
    """Issue #1 of weekly sent to everyone in PEOPLE (refused@ gets a 5xx): the message each got."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    path = project / "config.toml"
    path.write_text(path.read_text().replace(
        'timezone = "UTC"\n', 'timezone = "UTC"\nunsubscribe_mailto = "unsubscribe@example.org"\n'
    ))
    config = configure(project, smtp_server.config_toml(
        delivery='bounce_address = "bounces@example.org"\nfeedback_id = "nl7"\nmax_consecutive_failures = 50'
    ))
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly")
    subscribe(store, "weekly", [(f"{who}@example.org", who.title()) for who in PEOPLE])
    store.close()
    smtp_server.refuse("refused@example.org", "550 5.1.1 <refused@example.org>: Recipient address rejected: User unknown")
    run(project, "send", "weekly", "--yes")
    return {m.rcpt_tos[0].split("@")[0]: m for m in smtp_server.messages}


@pytest.mark.slow
def test_bounces_complaints_and_unsubscribes_take_exactly_the_right_people_off(
    project: Path, smtp_server: SmtpTestServer, sent: dict[str, Received], tmp_path: Path
) -> None:
    # Every message went out with its own VERP envelope sender and the Feedback-ID.
    assert sorted(sent) == sorted(set(PEOPLE) - {"refused"})
    tokens = {who: VERP.fullmatch(m.mail_from) for who, m in sent.items()}
    assert all(tokens.values()) and len({t[1] for t in tokens.values() if t}) == len(sent)
    assert {m.message["Feedback-ID"] for m in sent.values()} == {"1:weekly:weekly:nl7"}

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hard = inbox / "hard.eml"
    hard.write_bytes(dsn(
        sent["hard"].mail_from, "hard@example.org", "5.1.1",
        "550 5.1.1 <hard@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        sent["hard"].data,
    ))
    soft_dsn = dsn(sent["soft"].mail_from, "soft@example.org", "4.2.2", "452 4.2.2 Mailbox full", sent["soft"].data,
                   message_id="<soft.1@mx.example.net>")
    complaint = inbox / "complaint.eml"
    complaint.write_bytes(arf(sent["complains"].data, return_path=sent["complains"].mail_from))
    unsubscribe = inbox / "unsubscribe.eml"
    unsubscribe.write_bytes(mailto_unsubscribe(str(sent["leaves"].message["List-Unsubscribe"]), "leaves@example.org"))
    forged_token = tokens["forged"][1][:-4] + "aaaa"  # type: ignore[index]
    forged = inbox / "forged.eml"
    forged.write_bytes(dsn(f"bounces+{forged_token}@example.org", "forged@example.org", "5.1.1",
                           "550 5.1.1 unknown", sent["forged"].data, message_id="<forged.1@mx.example.net>"))
    away = inbox / "away.eml"
    away.write_bytes(vacation("away@example.org", sent["away"].mail_from))

    results = json.loads(run(project, "inbound", "process", str(hard), str(complaint), str(unsubscribe),
                             str(forged), str(away), "--json"))
    by_file = {Path(r["file"]).stem: r for r in results}
    assert {k: (r["kind"], r["recipient"], r["status"]) for k, r in by_file.items()} == {
        "hard": ("bounce", "hard@example.org", "5.1.1"),
        "complaint": ("complaint", "complains@example.org", None),
        "unsubscribe": ("unsubscribe", "leaves@example.org", None),
        "forged": ("unknown", None, None),
        "away": ("autoreply", None, None),
    }
    assert by_file["hard"]["action"] == "bounced on weekly (hard bounce 1 of 1)"
    assert by_file["hard"]["matched_by"] == "VERP token"
    assert by_file["complaint"]["action"] == "unsubscribed from weekly and blocked"
    assert by_file["unsubscribe"]["action"] == "unsubscribed from weekly"
    assert "forged or damaged VERP token" in by_file["forged"]["action"]

    # As an MTA's pipe delivers it: the message on stdin, the envelope recipient as an option.
    piped = subprocess.run(
        [sys.executable, "-c", "from newsletter.cli import main; main()", "--config", str(project / "config.toml"),
         "inbound", "process", "--recipient", sent["soft"].mail_from],
        input=soft_dsn, capture_output=True, cwd=project, env={"NEWSLETTER_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == (
        "-: soft bounce for soft@example.org (4.2.2): counted: soft bounce in 30 days 1 of 5 on weekly\n"
    )
    # The same messages again count once.
    again = json.loads(run(project, "inbound", "process", str(hard), str(complaint), "--json"))
    assert [r["action"] for r in again] == ["none: this message was processed before"] * 2

    listed = {s["email"].split("@")[0]: s for s in json.loads(run(project, "subscribers", "ls", "--json"))}
    assert {who: (s["status"], s["bounces"]) for who, s in listed.items()} == {
        "hard": ("bounced", 1), "soft": ("confirmed", 1), "complains": ("blocked", 0),
        "leaves": ("unsubscribed", 0), "forged": ("confirmed", 0), "away": ("confirmed", 0),
        "refused": ("bounced", 1), "stays": ("confirmed", 0),
    }
    shown = run(project, "subscribers", "ls")
    assert "hard@example.org\tHard\tbounced\t\t1\t" in shown

    # The next issue skips exactly those who bounced, complained or left.
    (project / "articles" / "second.txt").write_text("A second story\n\nIts deck.\n\nIts body.\n\nAuthor: Ada\n")
    before = len(smtp_server.messages)
    run(project, "send", "weekly", "--yes")
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages[before:]) == [
        "away@example.org", "forged@example.org", "soft@example.org", "stays@example.org"
    ]

    # What an admin sees.
    failed = json.loads(run(project, "deliveries", "weekly", "1", "--status", "failed", "--json"))
    assert failed == [{
        "email": "refused@example.org", "status": "failed", "attempts": 1, "sent_at": None,
        "reply": "550 5.1.1 <refused@example.org>: Recipient address rejected: User unknown",
    }]
    everyone = json.loads(run(project, "deliveries", "weekly", "1", "--json"))
    assert sorted((d["email"], d["status"]) for d in everyone) == sorted(
        (f"{who}@example.org", "failed" if who == "refused" else "sent") for who in PEOPLE
    )
    events = json.loads(run(project, "bounces", "--json"))
    assert sorted((e["kind"], e["severity"], e["email"], e["source"]) for e in events) == [
        ("bounce", "hard", "hard@example.org", "inbound:hard.eml"),
        ("bounce", "hard", "refused@example.org", "send"),
        ("bounce", "soft", "soft@example.org", "inbound:stdin"),
        ("complaint", None, "complains@example.org", "inbound:complaint.eml"),
        ("unsubscribe", None, "leaves@example.org", "inbound:unsubscribe.eml"),
    ]
    assert all(e["issue"] == "weekly #1" for e in events if e["kind"] != "unsubscribe")
    blocks = json.loads(run(project, "subscribers", "suppressions", "--json"))
    assert [(b["kind"], b["value"], b["reason"]) for b in blocks] == [
        ("address", "complains@example.org", "complaint (spam report) about weekly #1")
    ]

    # Undo: unblock and resubscribe the complainer, resubscribe the bounced address.
    run(project, "subscribers", "unblock", "complains@example.org")
    assert "Resubscribed hard@example.org to weekly" in run(project, "subscribers", "add", "hard@example.org", "--list", "weekly")
    assert "Resubscribed complains@example.org" in run(project, "subscribers", "add", "complains@example.org", "--list", "weekly")


@pytest.mark.slow
def test_without_verp_a_bounce_is_found_by_the_returned_message_id_or_its_recipient(
    project: Path, smtp_server: SmtpTestServer, sent: dict[str, Received], tmp_path: Path
) -> None:
    # To the plain bounce address (no token): the returned headers' Message-ID names the delivery.
    by_id = tmp_path / "by-id.eml"
    by_id.write_bytes(dsn("bounces@example.org", "hard@example.org", "5.1.1", "550 5.1.1 unknown", sent["hard"].data))
    # Only the failed recipient (no returned message): the newest delivery sent to them.
    by_recipient = tmp_path / "by-recipient.eml"
    by_recipient.write_bytes(dsn("bounces@example.org", "soft@example.org", "5.2.1", "550 5.2.1 disabled", b"X-Empty: 1",
                                 message_id="<r.1@mx.example.net>"))
    # A bounce for someone who is no subscriber changes nothing.
    stranger = tmp_path / "stranger.eml"
    stranger.write_bytes(dsn("bounces@example.org", "nobody@example.net", "5.1.1", "550 unknown", b"X-Empty: 1",
                             message_id="<s.1@mx.example.net>"))
    # Our Message-ID, but a report about another address: not proof enough.
    other = tmp_path / "other.eml"
    other.write_bytes(dsn("bounces@example.org", "nobody@example.net", "5.1.1", "550 unknown", sent["stays"].data,
                          message_id="<o.1@mx.example.net>"))
    # A complaint whose original lost its Message-ID and Return-Path: the signed link in its
    # List-Unsubscribe still names the member.
    original = re.sub(rb"Message-ID: [^\r]*\r\n", b"", sent["complains"].data, count=1)
    complaint = tmp_path / "complaint.eml"
    complaint.write_bytes(arf(original, return_path=None))
    results = json.loads(run(project, "inbound", "process", str(by_id), str(by_recipient), str(stranger), str(other),
                             str(complaint), "--json"))
    assert [(r["kind"], r["recipient"], r["matched_by"]) for r in results] == [
        ("bounce", "hard@example.org", "Message-ID of the original"),
        ("bounce", "soft@example.org", "failed recipient"),
        ("unknown", None, None),
        ("unknown", None, None),
        ("complaint", "complains@example.org", "List-Unsubscribe of the original"),
    ]
    assert results[2]["action"].startswith("none: a DSN (hard); a bounce for nobody@example.net, to whom nothing was sent")
    listed = {s["email"]: s["status"] for s in json.loads(run(project, "subscribers", "ls", "--json"))}
    assert listed["stays@example.org"] == "confirmed"


@pytest.mark.slow
def test_a_bounce_processed_mid_send_is_honoured_before_their_message_starts(
    project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    config = configure(project, smtp_server.config_toml(connections=1))
    store = Store(config.database.url)
    store.lists.create("weekly")
    people = generated_people(30)
    subscribe(store, "weekly", people)
    bounced = people[20][0]
    smtp_server.hold_after(5)  # the 6th message waits: all 30 are claimed by then
    sender = threading.Thread(target=lambda: send_digest(config, store, "weekly"))
    sender.start()
    deadline = time.monotonic() + 20
    while smtp_server.held < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    issue = store.issues.unfinished("weekly")
    assert issue is not None
    subscriber = store.subscribers.get(bounced)
    applied = store.bounces.apply(MemberEvent(BOUNCE, subscriber.id, issue.list_id, "test", issue_id=issue.id,
                                              severity=HARD, status="5.1.1"))
    assert applied.action == "bounced on weekly (hard bounce 1 of 1)"  # returns once senders saw it
    time.sleep(REVOCATION_POLL_SECONDS + 0.3)
    smtp_server.release()
    sender.join(timeout=30)
    assert bounced not in smtp_server.per_recipient()
    lines = {line.email: line for line in store.issues.deliveries(issue.id)}
    assert (lines[bounced].status, lines[bounced].reply) == ("skipped", "bounced")
    store.close()
