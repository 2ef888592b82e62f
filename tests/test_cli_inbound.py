"""The new commands' bad input and empty states: one line, exit 1, nothing changed; and
their output without --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bounce_mail import dsn
from newsletter.cli import app

CORPUS = Path(__file__).parent / "fixtures" / "bounces"


def invoke(project: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "cli-inbound-secret")


def test_process_reads_every_file_first_and_an_unreadable_one_is_one_line(project: Path) -> None:
    good = CORPUS / "flufl-bounce" / "qmail_01.txt"
    code, out, err = invoke(project, "inbound", "process", str(good), str(project / "missing.eml"))
    assert (code, out) == (1, "")
    assert err == f"Error: cannot read {project / 'missing.eml'}: No such file or directory; give a file holding one message\n"
    code, out, _ = invoke(project, "bounces")
    assert (code, out) == (0, "No bounces or complaints yet.\n")


def test_process_without_the_secret_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET")
    code, _, err = invoke(project, "inbound", "process", str(CORPUS / "flufl-bounce" / "qmail_01.txt"))
    assert code == 1 and err.startswith("Error: the token signing secret is not set: export NEWSLETTER_SECRET=")


def test_bounces_for_strangers_and_non_bounces_change_nothing(project: Path) -> None:
    files = [CORPUS / "flufl-bounce" / "qmail_01.txt", CORPUS / "bounce_email" / "non_bounces" / "tt_1234210666.eml",
             CORPUS / "rfc" / "arf-rfc5965-b2.eml"]
    code, out, err = invoke(project, "inbound", "process", *map(str, files))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"{files[0]}: unknown: none: a non-standard bounce; a bounce for userx@example.de, "
        "to whom nothing was sent in the last 30 days"
    )
    assert lines[1] == f"{files[1]}: unknown: none: not a bounce, complaint or unsubscribe"
    # A complaint whose original is not ours: nothing in it can be trusted.
    assert lines[2] == f"{files[2]}: unknown: none: a spam complaint (ARF); a complaint that does not carry the original message"
    assert invoke(project, "bounces", "--json")[1] == "[]\n"


def test_process_reads_stdin(project: Path) -> None:
    code, out, _ = invoke(project, "inbound", "process", "-", "--json",
                          stdin=(CORPUS / "rfc" / "dsn-rfc3464-c4.eml").read_bytes())
    assert code == 0
    [result] = json.loads(out)
    assert {k: result[k] for k in ("file", "kind", "recipient", "status")} == {
        "file": "-", "kind": "unknown", "recipient": None, "status": None
    }
    assert set(result) >= {"file", "kind", "recipient", "status", "action"}


def test_a_forged_verp_token_changes_nothing_even_for_a_subscriber(project: Path) -> None:
    path = project / "config.toml"
    path.write_text(path.read_text().replace("[delivery]\n", '[delivery]\nbounce_address = "bounces@example.org"\n'))
    invoke(project, "lists", "add", "weekly")
    invoke(project, "subscribers", "add", "ann@example.org", "--list", "weekly")
    forged = dsn("bounces+1-1-aaaaaaaaaaaaaaaa@example.org", "ann@example.org", "5.1.1", "550 unknown", b"X: 1")
    code, out, _ = invoke(project, "inbound", "process", "-", stdin=forged)
    assert code == 0
    assert out == "-: unknown: none: a DSN (hard); a forged or damaged VERP token (1-1-aaaaaaaaaaaaaaaa)\n"
    listed = json.loads(invoke(project, "subscribers", "ls", "--json")[1])
    assert [(s["status"], s["bounces"]) for s in listed] == [("confirmed", 0)]


def test_deliveries_of_an_unknown_issue_is_one_line(project: Path) -> None:
    code, _, err = invoke(project, "deliveries", "weekly", "3")
    assert (code, err) == (1, "Error: no issue #3 of weekly; see `newsletter history weekly`\n")
    code, _, err = invoke(project, "deliveries", "weekly", "3", "--status", "lost")
    assert code == 2 and "Invalid value for '--status'" in err


def test_suppressions_list_addresses_and_domains_with_reasons(project: Path) -> None:
    assert invoke(project, "subscribers", "suppressions")[1] == "Nothing is blocked.\n"
    invoke(project, "subscribers", "block", "@spam.example", "--reason", "a spam trap domain")
    invoke(project, "subscribers", "block", "x@example.org")
    invoke(project, "subscribers", "forget", "gone@example.org", "--yes")  # a keyed hash: not listed
    code, out, _ = invoke(project, "subscribers", "suppressions")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "Blocked\tKind\tReason\tSince"
    assert [line.split("\t")[:3] for line in lines[1:]] == [
        ["x@example.org", "address", ""], ["@spam.example", "domain", "a spam trap domain"]
    ]
    listed = json.loads(invoke(project, "subscribers", "suppressions", "--json")[1])
    assert [(s["kind"], s["value"], s["reason"]) for s in listed] == [
        ("address", "x@example.org", ""), ("domain", "spam.example", "a spam trap domain")
    ]
