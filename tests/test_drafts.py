"""Editors shape the next issue through the CLI: `draft`, `edit`, `approve`, and `send`
sending exactly the draft, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from desk import clear_articles, cli, draft, ids, ok, one_error_line, set_digest, titles, write_article
from newsletter.config import load_config
from newsletter.sending import NewIssue, execute, prepare_send
from newsletter.store import Store
from newsletter.store.drafts import DraftChanged

BACKENDS = ("sqlite", "postgres")

SECRET = "drafts-test-secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


@pytest.fixture
def desk(project: Path) -> Path:
    """Three articles, A newest; a list with two subscribers; the subject names the lead."""
    clear_articles(project)
    write_article(project, "a", "Alpha", hours_ago=1)
    write_article(project, "b", "Bravo", hours_ago=5)
    write_article(project, "c", "Charlie", hours_ago=9)
    set_digest(project, subject="{{ articles[0].title }} and more")
    ok(project, "lists", "add", "weekly")
    for address in ("ann@example.org", "bob@example.org"):
        ok(project, "subscribers", "add", address, "--list", "weekly")
    return project


def outbox(project: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted((project / "outbox").rglob("*.eml"))
    ]


def test_draft_composes_the_next_issue_and_prints_it(desk: Path) -> None:
    entry = draft(desk)

    assert {"digest", "number", "subject", "status", "note", "approved_by", "approved_at", "articles", "history"} <= set(entry)
    assert (entry["digest"], entry["number"], entry["status"], entry["note"]) == ("weekly", 1, "draft", "")
    assert (entry["approved_by"], entry["approved_at"]) == (None, None)
    assert entry["subject"] == "Alpha and more"
    assert titles(entry) == ["Alpha", "Bravo", "Charlie"]
    assert set(entry["articles"][0]) >= {"id", "title", "url", "authors", "pinned"}
    assert entry["articles"][0]["authors"] == ["Dave DeCamp"]
    [composed] = entry["history"]
    assert set(composed) >= {"who", "when", "what"} and composed["what"].startswith("3 articles: ")

    text = ok(desk, "draft", "weekly").stdout
    lines = text.splitlines()
    assert lines[:3] == ["Issue #1 of weekly: draft", "Subject: Alpha and more", "Articles:"]
    assert lines[3] == f"  1. {ids(entry)['Alpha']}  Alpha - Dave DeCamp"
    assert lines[-1] == "Note: none"


def test_edit_excludes_pins_moves_and_sets_subject_and_note(desk: Path) -> None:
    known = ids(draft(desk))

    pinned = draft(desk, "--pin", known["Charlie"])
    assert titles(pinned) == ["Charlie", "Alpha", "Bravo"]
    assert [a["pinned"] for a in pinned["articles"]] == [True, False, False]
    assert pinned["subject"] == "Charlie and more"  # the pinned lead leads the subject

    moved = draft(desk, "--exclude", known["Alpha"], "--move", f"{known['Bravo']}:2")
    assert titles(moved) == ["Charlie", "Bravo"]
    assert [a["title"] for a in moved["excluded"]] == ["Alpha"]
    back = draft(desk, "--include", known["Alpha"], "--move", f"{known['Alpha']}:3")
    assert titles(back) == ["Charlie", "Bravo", "Alpha"]

    noted = draft(desk, "--subject", "A special issue", "--note", "-", input="**Dear readers,** a word.\n")
    assert noted["subject"] == "A special issue"
    assert noted["note"] == "**Dear readers,** a word."
    cleared = draft(desk, "--subject", "", "--unpin")
    assert cleared["subject"] == "Charlie and more"
    assert not any(a["pinned"] for a in cleared["articles"])

    whats = [(h["action"], h["what"]) for h in cleared["history"]]
    assert ("pinned", f"{known['Charlie']} (Charlie) leads the issue") in whats
    assert ("excluded", f"{known['Alpha']} (Alpha)") in whats
    assert ("moved", f"{known['Alpha']} (Alpha) to position 3") in whats
    assert ("note", "changed") in whats
    assert all(h["who"] for h in cleared["history"])


def test_bad_edits_are_one_line_and_change_nothing(desk: Path, tmp_path: Path) -> None:
    assert "no draft" in one_error_line(cli(desk, "edit", "weekly", "--exclude", "x"))
    assert "newsletter draft weekly" in one_error_line(cli(desk, "approve", "weekly"))
    before = draft(desk)
    known = ids(before)

    cases = {
        ("--exclude", "nope"): "has no article with id 'nope'",
        ("--exclude", known["Alpha"], "--move", f"{known['Bravo']}:4"): "position out of range; issue #1 of weekly carries 2 articles, positions 1 to 2",
        ("--move", f"{known['Bravo']}:0"): "position out of range",
        ("--move", "just-an-id"): "write ID:POSITION",
        ("--pin", known["Alpha"], "--move", f"{known['Bravo']}:1"): f"{known['Alpha']} is pinned to position 1",
        ("--note", str(tmp_path / "missing.md")): "cannot read the file",
        ("--include", known["Alpha"]): "already carries it",
    }
    for args, message in cases.items():
        assert message in one_error_line(cli(desk, "edit", "weekly", *args)), args

    after = draft(desk)
    assert after["content_hash"] == before["content_hash"]
    assert after["history"] == before["history"]


def test_a_refresh_adds_new_articles_in_their_place_and_keeps_the_editors_choices(desk: Path) -> None:
    known = ids(draft(desk))
    draft(desk, "--exclude", known["Bravo"], "--pin", known["Charlie"], "--note", "-", input="Hi.\n")
    ok(desk, "approve", "weekly", "--by", "Ann")
    write_article(desk, "d", "Delta", hours_ago=3)
    write_article(desk, "e", "Echo", hours_ago=0.5)

    refreshed = draft(desk)

    assert titles(refreshed) == ["Charlie", "Echo", "Alpha", "Delta"]
    assert refreshed["articles"][0]["pinned"]
    assert [a["title"] for a in refreshed["excluded"]] == ["Bravo"]
    assert refreshed["note"] == "Hi."
    assert (refreshed["status"], refreshed["approved_by"]) == ("draft", None)  # it changed
    actions = [h["action"] for h in refreshed["history"]]
    assert actions[-3:] == ["refreshed", "refreshed", "approval voided"]
    assert refreshed["history"][-3]["what"] == f"added {ids(refreshed)['Echo']} (Echo) at position 2"

    ok(desk, "approve", "weekly")
    unchanged = draft(desk)  # nothing new: nothing changes, the approval stands
    assert unchanged["status"] == "approved"
    assert len(unchanged["history"]) == len(refreshed["history"]) + 1


def test_a_refresh_fills_the_draft_up_to_max_articles_and_names_what_did_not_fit(desk: Path) -> None:
    set_digest(desk, max_articles=4)
    draft(desk)
    write_article(desk, "d", "Delta", hours_ago=3)
    write_article(desk, "e", "Echo", hours_ago=0.5)

    result = ok(desk, "draft", "weekly", "--json")

    assert titles(json.loads(result.stdout)) == ["Echo", "Alpha", "Bravo", "Charlie"]
    assert "1 new article did not fit in issue #1 of weekly (max_articles = 4)" in result.stderr


def test_approve_records_who_when_and_the_hash_and_any_edit_voids_it(desk: Path) -> None:
    known = ids(draft(desk))

    said = ok(desk, "approve", "weekly", "--by", "Ann Editor").stdout
    approved = draft(desk)
    assert said.startswith("Approved issue #1 of weekly (Alpha and more) as Ann Editor; version ")
    assert (approved["status"], approved["approved_by"]) == ("approved", "Ann Editor")
    assert approved["approved_at"] is not None
    assert approved["history"][-1]["what"] == f"approved version {approved['content_hash'][:12]}"
    assert "already approved by Ann Editor" in ok(desk, "approve", "weekly").stdout

    edited = draft(desk, "--move", f"{known['Charlie']}:1")
    assert (edited["status"], edited["approved_by"], edited["approved_at"]) == ("draft", None, None)
    assert edited["history"][-1]["action"] == "approval voided"


def test_send_sends_exactly_the_approved_draft_even_after_the_sources_change(desk: Path) -> None:
    set_digest(desk, approval="required")
    known = ids(draft(desk))
    draft(desk, "--move", f"{known['Charlie']}:1", "--exclude", known["Bravo"], "--subject", "Our pick",
          "--note", "-", input="A **word** from the editor.\n")
    ok(desk, "approve", "weekly", "--by", "Ann")
    (desk / "articles" / "c.md").unlink()
    write_article(desk, "a", "Alpha rewritten", hours_ago=1)
    write_article(desk, "f", "Foxtrot", hours_ago=0.2)

    assert "2 sent" in ok(desk, "send", "weekly", "--yes").stdout

    messages = outbox(desk)
    assert sorted(m["To"] for m in messages) == ["ann@example.org", "bob@example.org"]
    message = messages[0]
    assert message["Subject"] == "Our pick"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for word in ("foxtrot", "rewritten", "bravo"):
        assert word not in html.lower() and word not in text.lower()
    for part in (html, text):
        assert part.index("from the editor") < part.index("The story of Charlie.") < part.index("The story of Alpha.")
    assert "A <strong>word</strong> from the editor." in html
    assert "A word from the editor." in text  # the text part carries no Markdown syntax

    for command in (("edit", "weekly", "--exclude", known["Alpha"]), ("approve", "weekly")):
        assert "issue #1 of weekly is already sent and cannot change" in one_error_line(cli(desk, *command))


def test_the_sent_issue_carries_neither_the_excluded_article_nor_a_later_one(desk: Path) -> None:
    known = ids(draft(desk))
    draft(desk, "--exclude", known["Bravo"])
    write_article(desk, "f", "Foxtrot", hours_ago=0.2)

    ok(desk, "send", "weekly", "--yes")  # approval = "auto": the draft as it stands

    html = outbox(desk)[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Alpha" in html and "Charlie" in html
    assert "Bravo" not in html and "Foxtrot" not in html
    following = draft(desk)  # the next draft offers what #1 did not carry
    assert following["number"] == 2
    assert sorted(titles(following)) == ["Bravo", "Foxtrot"]


def test_approval_required_sends_nothing_without_an_approved_draft(desk: Path) -> None:
    set_digest(desk, approval="required")

    no_draft = one_error_line(cli(desk, "send", "weekly", "--yes"))
    assert "has no draft" in no_draft and "`newsletter approve weekly`" in no_draft
    draft(desk)
    unapproved = one_error_line(cli(desk, "send", "weekly", "--yes"))
    assert "is not approved" in unapproved and "`newsletter approve weekly`" in unapproved

    assert "Would send issue #1 of weekly" in ok(desk, "send", "weekly", "--dry-run").stdout
    assert outbox(desk) == []
    assert json.loads(ok(desk, "history", "--json").stdout) == []


def test_articles_and_preview_show_the_draft(desk: Path) -> None:
    known = ids(draft(desk))
    draft(desk, "--exclude", known["Alpha"], "--note", "-", input="Note *here*.\n")

    listed = json.loads(ok(desk, "articles", "weekly", "--json").stdout)
    assert [a["title"] for a in listed] == ["Bravo", "Charlie"]
    target = desk / "preview.html"
    said = ok(desk, "preview", "weekly", "-o", str(target)).stdout
    assert "draft of issue #1, draft, 2 articles, subject: Bravo and more" in said
    html = target.read_text()
    assert "Note <em>here</em>." in html and "Alpha" not in html


def test_the_draft_must_not_change_between_planning_and_recording_a_send(desk: Path) -> None:
    draft(desk)
    config = load_config(desk / "config.toml")
    store = Store(config.database.url)
    plan = prepare_send(config, store, "weekly")
    assert isinstance(plan, NewIssue) and plan.draft is not None
    known = ids(draft(desk))
    draft(desk, "--exclude", known["Alpha"])

    with pytest.raises(DraftChanged, match="changed while the send was being prepared; nothing was sent"):
        execute(config, store, plan)

    assert store.issues.history("weekly") == []
    store.close()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("reviewers", ["editor@example.org", "not an address"], "[digests.weekly].reviewers: invalid address 'not an address'"),
        ("review_before", "soon", "[digests.weekly].review_before: 'soon' is not a duration"),
        ("approval_grace", "0h", "[digests.weekly].approval_grace: '0h' must be longer than zero"),
        ("approval", "maybe", "[digests.weekly].approval: must be one of 'auto', 'required'"),
    ],
)
def test_bad_approval_settings_are_one_line_naming_the_key(project: Path, setting: str, value: object, message: str) -> None:
    set_digest(project, **{setting: value})

    assert message in one_error_line(cli(project, "draft", "weekly"))


def test_an_issue_being_sent_cannot_be_edited_or_approved(desk: Path) -> None:
    known = ids(draft(desk))
    config = load_config(desk / "config.toml")
    store = Store(config.database.url)
    plan = prepare_send(config, store, "weekly")
    assert isinstance(plan, NewIssue)
    plan.take(store)  # recorded, its deliveries pending: what a send in progress looks like

    for command in (("edit", "weekly", "--exclude", known["Alpha"]), ("approve", "weekly")):
        line = one_error_line(cli(desk, *command))
        assert "issue #1 of weekly is already being sent and cannot change" in line
        assert "compose it with `newsletter draft weekly`" in line
    store.close()
