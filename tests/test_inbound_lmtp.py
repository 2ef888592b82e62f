"""`newsletter inbound receive`: the LMTP server an MTA delivers bounces to, as a real
process, spoken to with smtplib's LMTP client (one reply per recipient)."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bounce_mail import dsn
from cli_process import newsletter
from newsletter.cli import app
from newsletter.config import load_config
from newsletter.store import Store
from newsletter.store.issues import ArticleEntry
from newsletter.tokens import make_verp_token
from newsletter.verp import verp_address
from smtp_server import free_port, subscribe

SECRET = "lmtp-secret"


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
def test_an_mta_delivers_bounces_over_lmtp(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    path = project / "config.toml"
    path.write_text(path.read_text().replace("[delivery]\n", '[delivery]\nbounce_address = "bounces@example.org"\n'))
    config = load_config(path)
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", [("gone@example.org", ""), ("full@example.org", "")])
    issue = store.issues.record(
        digest="weekly", number=1, list_id=store.lists.get("weekly").id, subject="#1", html="x", text="x",
        articles=[ArticleEntry("a1", "A", None, frozenset())], created_at=datetime.now(timezone.utc), marker_nonce=None,
    )
    verp = {
        email: verp_address(
            "bounces@example.org", make_verp_token(SECRET.encode(), issue.id, store.subscribers.get(email).id)
        )
        for email in ("gone@example.org", "full@example.org")
    }
    store.close()

    port = free_port()
    server = newsletter(project, "inbound", "receive", "--port", str(port))
    try:
        wait_for_port(port)
        client = smtplib.LMTP("127.0.0.1", port)
        try:
            refused = client.sendmail(
                "", [verp["gone@example.org"]],
                dsn(verp["gone@example.org"], "gone@example.org", "5.1.1", "550 5.1.1 unknown", b"Subject: #1"),
            )
            assert refused == {}
            client.sendmail(
                "", [verp["full@example.org"]],
                dsn(verp["full@example.org"], "full@example.org", "4.2.2", "452 4.2.2 full", b"Subject: #1",
                    message_id="<full@mx>"),
            )
        finally:
            client.quit()
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err.decode()
    log = err.decode()
    assert f"LMTP server on 127.0.0.1:{port}" in log
    assert "hard bounce for gone@example.org (5.1.1): bounced on weekly (hard bounce 1 of 1)" in log
    assert "soft bounce for full@example.org (4.2.2): counted: soft bounce in 30 days 1 of 5 on weekly" in log
    result = CliRunner().invoke(app, ["--config", str(path), "subscribers", "ls", "--json"])
    assert {s["email"]: s["status"] for s in json.loads(result.stdout)} == {
        "gone@example.org": "bounced", "full@example.org": "confirmed"
    }


def test_receive_refuses_a_bad_port(project: Path) -> None:
    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), "inbound", "receive", "--port", "0"])
    assert result.exit_code == 1 and result.stderr == "Error: --port 0: use a port from 1 to 65535\n"


def test_receive_on_a_busy_port_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["--config", str(project / "config.toml"), "inbound", "receive", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port} (")
    assert result.stderr.endswith("); pick another --host or --port\n")
