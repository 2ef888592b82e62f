"""`newsletter inbound fetch` against a real IMAP server (Dovecot, tests/imap_server.py):
messages are processed and moved to the processed folder; an unreachable server, a wrong
password or an untrusted certificate is one line, and the messages stay. `newsletter run`
polls the mailbox every poll_minutes."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bounce_mail import dsn, vacation
from imap_server import PASSWORD, USER, ImapServer
from newsletter.cli import app
from newsletter.config import load_config
from newsletter.jobstore import job_store_session
from newsletter.scheduler import INBOUND_JOB, fetch_inbound, sync_inbound_job
from newsletter.store import Store
from newsletter.store.issues import ArticleEntry
from newsletter.tokens import make_verp_token
from newsletter.verp import verp_address
from smtp_server import free_port, subscribe

SECRET = "imap-test-secret"


def configure_inbound(project: Path, host: str, port: int, **extra: str) -> Path:
    path = project / "config.toml"
    settings = {"host": host, "port": port, "username": USER, "processed_folder": "Done", **extra}
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    path.write_text(
        path.read_text().replace("[delivery]\n", '[delivery]\nbounce_address = "bounces@example.org"\n')
        + f"\n[inbound]\n{table}\n"
    )
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, imap_server: ImapServer) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.cert))  # the server's issuer is trusted


def hard_bounce_for(project: Path, email: str) -> bytes:
    """A DSN to the VERP address of `email`'s delivery of a recorded issue #1."""
    config = load_config(project / "config.toml")
    store = Store(config.database.url)
    if not store.lists.all():
        store.lists.create("weekly")
    subscribe(store, "weekly", [(email, "")])
    issue = store.issues.unfinished("weekly") or store.issues.record(
        digest="weekly", number=1, list_id=store.lists.get("weekly").id, subject="#1", html="x", text="x",
        articles=[ArticleEntry("a1", "A", None, frozenset())], created_at=datetime.now(timezone.utc), marker_nonce=None,
    )
    subscriber = store.subscribers.get(email)
    store.close()
    to = verp_address("bounces@example.org", make_verp_token(SECRET.encode(), issue.id, subscriber.id))
    return dsn(to, email, "5.1.1", "550 5.1.1 user unknown", b"Subject: #1", message_id=f"<{email}.dsn@mx>")


def invoke(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_fetch_processes_every_message_and_moves_it(project: Path, imap_server: ImapServer, env: None) -> None:
    configure_inbound(project, imap_server.host, imap_server.port)
    imap_server.append("INBOX", hard_bounce_for(project, "gone@example.org"))
    imap_server.append("INBOX", vacation("away@example.org", "bounces@example.org"))
    imap_server.append("INBOX", b"From: someone@example.net\r\nSubject: hello\r\n\r\nJust saying hi.\r\n")

    code, out, err = invoke(project, "inbound", "fetch", "--json")
    assert code == 0, err
    assert [(r["kind"], r["recipient"]) for r in json.loads(out)] == [
        ("bounce", "gone@example.org"), ("autoreply", None), ("unknown", None)
    ]
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages("Done")) == 3
    listed = json.loads(invoke(project, "subscribers", "ls", "--json")[1])
    assert [(s["email"], s["status"]) for s in listed] == [("gone@example.org", "bounced")]

    code, out, _ = invoke(project, "inbound", "fetch")
    assert (code, out) == (0, "Processed 0 message(s).\n")
    # The same bounce again (say, restored from Done by hand) counts once.
    imap_server.append("INBOX", imap_server.messages("Done")[0])
    code, out, _ = invoke(project, "inbound", "fetch")
    assert "none: this message was processed before" in out


@pytest.mark.slow
def test_a_wrong_password_is_one_line_and_the_messages_stay(
    project: Path, imap_server: ImapServer, env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_inbound(project, imap_server.host, imap_server.port)
    imap_server.append("INBOX", vacation("away@example.org", "bounces@example.org"))
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", "wrong")
    code, out, err = invoke(project, "inbound", "fetch")
    assert code == 1 and out == ""
    assert err.startswith(f"Error: the IMAP server 127.0.0.1:{imap_server.port} refused the login of 'bounces' (")
    assert err.endswith("check the password in $NEWSLETTER_IMAP_PASSWORD and [inbound].username\n")
    assert err.count("\n") == 1
    assert len(imap_server.messages("INBOX")) == 1


@pytest.mark.slow
def test_an_untrusted_certificate_is_one_line(project: Path, imap_server: ImapServer, env: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    configure_inbound(project, imap_server.host, imap_server.port)
    monkeypatch.delenv("SSL_CERT_FILE")
    code, _, err = invoke(project, "inbound", "fetch")
    assert code == 1
    assert err.startswith(f"Error: the IMAP server 127.0.0.1:{imap_server.port} has a certificate that cannot be verified")
    assert err.count("\n") == 1


def test_an_unreachable_server_a_missing_table_or_password_is_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    code, _, err = invoke(project, "inbound", "fetch")
    assert (code, err.split(":")[0]) == (1, "Error")
    assert "has no [inbound] table" in err
    port = free_port()
    configure_inbound(project, "127.0.0.1", port)
    code, _, err = invoke(project, "inbound", "fetch")
    assert code == 1 and "the IMAP password for 'bounces' is not set: export NEWSLETTER_IMAP_PASSWORD=" in err
    monkeypatch.setenv("NEWSLETTER_IMAP_PASSWORD", "x")
    code, _, err = invoke(project, "inbound", "fetch")
    assert code == 1
    assert err.startswith(f"Error: cannot reach the IMAP server 127.0.0.1:{port} over TLS (")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_newsletter_run_polls_the_mailbox_every_poll_minutes(
    project: Path, imap_server: ImapServer, env: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = configure_inbound(project, imap_server.host, imap_server.port, poll_minutes=2.5)
    config = load_config(path)
    Store(config.database.url).close()
    with job_store_session(config) as session:
        sync_inbound_job(session, config)
        job = session.get_job(INBOUND_JOB)
        assert job is not None and job.trigger.interval == timedelta(minutes=2.5)
        assert job.args == (str(path),)
    imap_server.append("INBOX", hard_bounce_for(project, "gone@example.org"))
    with caplog.at_level(logging.INFO, logger="newsletter.scheduler"):
        fetch_inbound(str(path))  # what the job runs
    assert "inbound: imap:INBOX/1: hard bounce for gone@example.org (5.1.1): bounced on weekly" in caplog.text
    assert imap_server.messages("INBOX") == []

    # Without [inbound] the job goes.
    path.write_text(path.read_text().split("\n[inbound]\n")[0])
    with job_store_session(load_config(path)) as session:
        sync_inbound_job(session, load_config(path))
        assert session.get_job(INBOUND_JOB) is None
