"""The send and history commands: asking first, dry runs, test copies, scheduling later,
and what they print; over the outbox and the SMTP test server."""

from __future__ import annotations

import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from smtp_server import generated_people, subscribe
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Config, load_config
from newsletter.store import Store
from newsletter.web import create_app

BACKENDS = ("sqlite", "postgres")

SECRET = "test-secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


@pytest.fixture
def store(config: Config) -> Store:
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly", double_opt_in=True)
    return store


runner = CliRunner()


def invoke(project: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, ["--config", str(project / "config.toml"), *args], input=input)


PEOPLE = [("ada@example.org", "Ada"), ("bob@example.org", "Bob"), ("cy@example.org", "")]


def test_send_asks_first_and_sends_nothing_when_not_confirmed(project: Path, store: Store) -> None:
    subscribe(store, "weekly", PEOPLE)

    result = invoke(project, "send", "weekly", input="n\n")

    assert result.exit_code == 1
    assert result.stdout == (
        "Send issue #1 of weekly (Test Weekly #1, 1 article) to 3 subscribers of weekly? [y/N]: n\n"
    )
    assert result.stderr == "Error: not confirmed; nothing was done (pass --yes to skip the question)\n"
    assert store.issues.history() == [] and not (project / "outbox").exists()


def test_send_yes_writes_the_outbox_and_prints_a_summary(project: Path, store: Store) -> None:
    subscribe(store, "weekly", PEOPLE)

    result = invoke(project, "send", "weekly", "--yes")

    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"issue #1 of weekly: 3 sent, 0 failed, 0 skipped, 0 left; this run sent 3 in \d+\.\d s \(\d+/s\)\n",
        result.stdout,
    )
    assert sorted(p.name for p in (project / "outbox" / "weekly-1").iterdir()) == ["1.eml", "2.eml", "3.eml"]

    again = invoke(project, "send", "weekly", "--yes")
    assert (again.exit_code, again.stdout) == (0, "No new articles for weekly in the last 7 days; nothing to send.\n")


def test_send_dry_run_shows_the_issue_and_sends_nothing(project: Path, store: Store) -> None:
    subscribe(store, "weekly", generated_people(12))

    result = invoke(project, "send", "weekly", "--dry-run")

    assert result.exit_code == 0, result.output
    first = ", ".join(f"reader{n:06d}@example.org" for n in range(10))
    assert result.stdout == (
        "Would send issue #1 of weekly to list weekly.\n"
        "Subject: Test Weekly #1\n"
        "Articles: 1\n"
        "Recipients: 12\n"
        f"First recipients: {first} and 2 more\n"
        "Dry run: nothing was sent or recorded.\n"
    )
    assert store.issues.history() == [] and not (project / "outbox").exists()


def test_send_to_sends_one_test_copy_and_records_nothing(project: Path, store: Store) -> None:
    subscribe(store, "weekly", PEOPLE)

    result = invoke(project, "send", "weekly", "--to", "editor@example.org")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Sent a test copy of issue #1 (Test Weekly #1) to editor@example.org; nothing recorded.\n"
    [copy] = (project / "outbox" / "messages").iterdir()
    assert message_from_bytes(copy.read_bytes(), policy=policy.default)["To"] == "editor@example.org"
    assert store.issues.history() == []


def test_send_without_the_secret_is_one_error_line(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    subscribe(store, "weekly", PEOPLE)
    monkeypatch.delenv("NEWSLETTER_SECRET")

    result = invoke(project, "send", "weekly", "--yes")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the token signing secret is not set: export NEWSLETTER_SECRET=... "
        f"(the variable named in {project / 'config.toml'})\n"
    )
    assert store.issues.history() == []


def test_send_at_checks_the_time_format(project: Path) -> None:
    result = invoke(project, "send", "weekly", "--at", "next monday")
    assert result.exit_code == 1
    assert result.stderr == "Error: --at 'next monday': use \"YYYY-MM-DD HH:MM\" (in the newsletter time zone)\n"


def test_history_lists_issues_with_their_counts(
    project: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "150")
    assert invoke(project, "history").stdout == "No issues yet.\n"
    subscribe(store, "weekly", PEOPLE)
    invoke(project, "send", "weekly", "--yes")
    store.suppressions.block("cy@example.org")

    table = invoke(project, "history", "weekly")
    listed = invoke(project, "history", "--json")

    assert table.exit_code == 0
    assert re.fullmatch(  # not a terminal: tab-separated, a header line first
        r"Issue\tSubject\tCreated\tStatus\tSent\tFailed\tSkipped\tPending\n"
        r"weekly #1\tTest Weekly #1\t\d{4}-\d\d-\d\d \d\d:\d\d\tdone\t3\t0\t0\t0\n",
        table.stdout,
    )
    [entry] = json.loads(listed.stdout)
    assert entry["created"] and entry["finished"]
    del entry["created"], entry["finished"]
    assert entry == {
        "digest": "weekly", "number": 1, "subject": "Test Weekly #1", "status": "done",
        "paused_reason": None, "recipients": 3, "pending": 0, "sent": 3, "failed": 0, "skipped": 0,
    }


def test_send_to_several_addresses_marks_each_copy_a_test(project: Path, store: Store) -> None:
    subscribe(store, "weekly", PEOPLE)

    result = invoke(project, "send", "weekly", "--to", "editor@example.org", "--to", "Chief@Example.org")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Sent a test copy of issue #1 (Test Weekly #1) to editor@example.org, Chief@example.org; "
        "nothing recorded.\n"
    )
    copies = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in (project / "outbox" / "messages").iterdir()]
    assert sorted(str(m["To"]) for m in copies) == ["Chief@example.org", "editor@example.org"]
    assert {str(m["Subject"]) for m in copies} == {"[TEST] Test Weekly #1"}
    assert store.issues.history() == []


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("a@example.org,b@example.org", "Error: invalid address 'a@example.org,b@example.org'"),
        ("bad@@example.org", "Error: invalid address 'bad@@example.org'"),
    ],
)
def test_send_to_refuses_what_is_not_one_address(project: Path, store: Store, address: str, error: str) -> None:
    subscribe(store, "weekly", PEOPLE)

    result = invoke(project, "send", "weekly", "--to", address)

    assert result.exit_code == 1
    assert result.stderr.startswith(error) and result.stderr.count("\n") == 1
    assert not (project / "outbox").exists()


def test_send_to_refuses_a_suppressed_address_saying_why(project: Path, store: Store) -> None:
    subscribe(store, "weekly", PEOPLE)
    store.suppressions.block("@blocked.example")

    result = invoke(project, "send", "weekly", "--to", "ok@example.org", "--to", "x@blocked.example")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not sending a test copy to x@blocked.example: it is on the suppression list "
        "(blocked or forgotten); pick another address, or lift it with "
        "`newsletter subscribers unblock x@blocked.example`\n"
    )
    assert not (project / "outbox").exists()  # not even the first one


@pytest.mark.parametrize("other", [["--to", "editor@example.org"], ["--dry-run"]])
def test_send_at_refuses_a_test_copy_or_a_dry_run(project: Path, store: Store, other: list[str]) -> None:
    result = invoke(project, "send", "weekly", "--at", "2099-01-01 08:00", *other)

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --at cannot be combined with {other[0]}: a scheduled send mails the whole list; "
        "send the test copy or the dry run now, without --at\n"
    )
    assert json.loads(invoke(project, "schedule", "--json").stdout)[0]["kind"] == "none"  # nothing waits


def test_a_test_copy_s_unsubscribe_link_says_it_was_a_test(
    project: Path, store: Store, web_server: object, write_config: object
) -> None:
    subscribe(store, "weekly", PEOPLE)
    assert invoke(project, "send", "weekly", "--to", "editor@example.org").exit_code == 0
    [copy] = (project / "outbox" / "messages").iterdir()
    link = message_from_bytes(copy.read_bytes(), policy=policy.default)["List-Unsubscribe"]
    path = re.search(r"<https://news\.example\.org(/u/[^>]+)>", str(link)).group(1)  # type: ignore[union-attr]
    config = load_config(project / "config.toml")
    url = web_server.start(create_app(config, Store(config.database.url)))  # type: ignore[attr-defined]

    page = httpx.get(url + path)
    one_click = httpx.post(url + path, data={"List-Unsubscribe": "One-Click"})

    assert page.status_code == 200 and "This was a test copy" in page.text
    assert (one_click.status_code, one_click.text) == (200, "This was a test copy; nobody was unsubscribed.\n")
