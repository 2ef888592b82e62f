"""Double opt-in from the command line: `subscribers add` and `import --send-confirmations`
mail each new member a confirmation link, through a real SMTP server on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.store import Store
from smtp_server import SmtpTestServer, configure

runner = CliRunner()
CONFIRM_LINK = re.compile(r"https://news\.example\.org/confirm/[A-Za-z0-9_.=-]+")


@pytest.fixture
def smtp_project(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret")
    configure(project, smtp_server.config_toml())
    return project


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(project / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


def statuses(project: Path) -> dict[str, str]:
    store = Store(f"sqlite:///{project / 'subscribers' / 'newsletter.db'}")
    return {row.email: row.status for row in store.subscribers.listing("doi")}


def test_adding_to_a_double_opt_in_list_mails_one_confirmation_link(
    smtp_project: Path, smtp_server: SmtpTestServer
) -> None:
    run(smtp_project, "lists", "add", "doi", "--double-opt-in", "--name", "Daily Brief")
    code, out, _ = run(smtp_project, "subscribers", "add", "ann@example.org", "--list", "doi")
    assert (code, out) == (0, "Added ann@example.org to doi (unconfirmed).\nSent a confirmation link to ann@example.org.\n")
    [received] = smtp_server.messages
    assert received.rcpt_tos == ("ann@example.org",)
    message = received.message
    assert message["Subject"] == "Confirm your subscription to Daily Brief"
    text = message.get_body(("plain",)).get_content()
    assert len(CONFIRM_LINK.findall(text)) >= 1
    assert statuses(smtp_project) == {"ann@example.org": "unconfirmed"}


def test_single_opt_in_and_confirmed_adds_mail_nothing(
    smtp_project: Path, smtp_server: SmtpTestServer
) -> None:
    run(smtp_project, "lists", "add", "weekly")
    run(smtp_project, "lists", "add", "doi", "--double-opt-in")
    assert run(smtp_project, "subscribers", "add", "a@example.org", "--list", "weekly")[0] == 0
    assert run(smtp_project, "subscribers", "add", "b@example.org", "--list", "doi", "--confirmed")[0] == 0
    assert smtp_server.messages == []


def test_a_missing_secret_is_refused_before_anything_is_written(
    smtp_project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(smtp_project, "lists", "add", "doi", "--double-opt-in")
    monkeypatch.delenv("NEWSLETTER_SECRET")
    code, out, err = run(smtp_project, "subscribers", "add", "ann@example.org", "--list", "doi")
    assert code == 1 and out == ""
    assert err.startswith("Error: the token signing secret is not set: export NEWSLETTER_SECRET=")
    assert statuses(smtp_project) == {}
    assert smtp_server.messages == []


def test_import_with_send_confirmations_mails_each_new_member(
    smtp_project: Path, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    run(smtp_project, "lists", "add", "doi", "--double-opt-in")
    run(smtp_project, "subscribers", "add", "old@example.org", "--list", "doi", "--confirmed")
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\nann@example.org,Ann\nbo@example.org,Bo\nnot-an-address,X\nold@example.org,Old\n")
    code, out, _ = run(smtp_project, "subscribers", "import", str(csv), "--list", "doi", "--send-confirmations")
    assert code == 0, out
    assert out.splitlines()[-1] == "Sent 2 confirmation links."
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == ["ann@example.org", "bo@example.org"]
    assert statuses(smtp_project) == {
        "ann@example.org": "unconfirmed", "bo@example.org": "unconfirmed", "old@example.org": "confirmed",
    }


def test_a_refused_confirmation_is_reported_and_the_others_go_out(
    smtp_project: Path, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    smtp_server.refuse("bo@example.org", "550 5.1.1 no such user")
    run(smtp_project, "lists", "add", "doi", "--double-opt-in")
    csv = tmp_path / "people.csv"
    csv.write_text("email\nann@example.org\nbo@example.org\ncy@example.org\n")
    code, out, _ = run(smtp_project, "subscribers", "import", str(csv), "--list", "doi", "--send-confirmations")
    assert code == 0
    assert out.splitlines()[-2:] == [
        "Sent 2 confirmation links.",
        "  bo@example.org: refused by the server: 550 5.1.1 no such user",
    ]
