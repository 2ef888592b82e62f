"""A DSN written by a real MTA: an issue goes out through a private Postfix
(tests/postfix_server.py), the next hop refuses one recipient, Postfix bounces it to our
envelope sender, and `newsletter inbound process` finds the delivery by the VERP token, or,
without a bounce address, by the Original-Envelope-Id (our ENVID) Postfix returns."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.store import Store
from postfix_server import PostfixServer
from smtp_server import Received, SmtpTestServer, configure, subscribe

REPLY = "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"


def run(project: Path, *args: str, stdin: bytes | None = None) -> str:
    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def send_through_postfix(
    project: Path, smtp_server: SmtpTestServer, postfix: PostfixServer, delivery: str
) -> Received:
    """Send issue #1 to here@ and gone@ through Postfix; the DSN Postfix writes for gone@."""
    config = configure(project, (
        f'[delivery]\ntransport = "smtp"\n{delivery}\n'
        f'[smtp]\nhost = "{postfix.host}"\nport = {postfix.port}\nsecurity = "none"\nconnections = 1\ntimeout = 10\n'
    ))
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", [("here@example.org", "Here"), ("gone@example.org", "Gone")])
    store.close()
    smtp_server.refuse("gone@example.org", REPLY)
    run(project, "send", "weekly", "--yes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dsns = [m for m in smtp_server.messages if m.mail_from in ("", "<>")]  # the null sender
        if dsns and len(smtp_server.messages) >= 2:
            return dsns[0]
        time.sleep(0.1)
    raise AssertionError(f"no DSN from Postfix; its log:\n{postfix.log}")


@pytest.mark.slow
def test_a_postfix_dsn_finds_its_delivery_by_the_verp_token(
    project: Path, smtp_server: SmtpTestServer, postfix_factory: Callable[[int], PostfixServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "postfix-secret")
    postfix = postfix_factory(smtp_server.port)
    bounce = send_through_postfix(project, smtp_server, postfix, 'bounce_address = "bounces@example.org"')
    [delivered] = [m for m in smtp_server.messages if m.rcpt_tos == ("here@example.org",)]
    assert delivered.mail_from.startswith("bounces+")
    assert bounce.rcpt_tos[0].startswith("bounces+") and bounce.rcpt_tos[0].endswith("@example.org")

    [result] = json.loads(run(project, "inbound", "process", "--recipient", bounce.rcpt_tos[0], "--json",
                              stdin=bounce.data))
    assert {k: result[k] for k in ("kind", "severity", "recipient", "status", "matched_by", "action")} == {
        "kind": "bounce", "severity": "hard", "recipient": "gone@example.org", "status": "5.1.1",
        "matched_by": "VERP token", "action": "bounced on weekly (hard bounce 1 of 1)",
    }
    assert "Recipient address rejected: User unknown" in result["diagnostic"]


@pytest.mark.slow
def test_without_a_bounce_address_the_postfix_dsn_is_found_by_its_envelope_id(
    project: Path, smtp_server: SmtpTestServer, postfix_factory: Callable[[int], PostfixServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "postfix-secret")
    postfix = postfix_factory(smtp_server.port)
    bounce = send_through_postfix(project, smtp_server, postfix, "")
    assert bounce.rcpt_tos == ("news@example.org",)  # the From address, as without VERP
    assert b"Original-Envelope-Id: " in bounce.data
    [result] = json.loads(run(project, "inbound", "process", "--json", stdin=bounce.data))
    assert (result["kind"], result["recipient"], result["matched_by"]) == (
        "bounce", "gone@example.org", "Original-Envelope-Id"
    )
