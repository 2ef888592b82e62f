"""Personal markers are unguessable per issue: text that names another issue's markers, or
the fixed markers of old issues, is never filled with a subscriber's values."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Config
from newsletter.personal import PersonalMarkers, personal_values
from newsletter.store import Store

VALUES = personal_values("https://news.example.org/u/t", "Ada Lovelace", "ada@example.org")


def test_each_issue_has_its_own_markers_and_fills_only_those() -> None:
    first, second, legacy = PersonalMarkers.new(), PersonalMarkers.new(), PersonalMarkers(None)
    assert first.nonce != second.nonce and len(first.nonce or "") == 16
    text = " ".join(
        markers.placeholders["email"] for markers in (first, second, legacy)
    )

    filled = first.template(text, escape_html=False).fill(VALUES)

    assert filled == f"ada@example.org {second.placeholders['email']} {legacy.placeholders['email']}"
    assert legacy.template(text, escape_html=False).fill(VALUES).endswith(" ada@example.org")


def test_a_sent_issue_keeps_its_markers_and_the_archive_neutralises_them(
    project: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "personal-test-secret")
    store = Store(config.database.url)
    store.lists.create("weekly")
    store.subscribers.add("ada@example.org", "weekly", "Ada Lovelace")

    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), "send", "weekly", "--yes"])

    assert result.exit_code == 0, result.output
    [issue] = store.issues.list_sent("weekly")
    markers = PersonalMarkers(issue.marker_nonce)
    assert issue.marker_nonce and markers.placeholders["email"] in issue.text
    [eml] = (project / "outbox" / "weekly-1").iterdir()
    assert b"%%NL_" not in eml.read_bytes()
    public = markers.neutral(issue.html, escape_html=True)
    assert "%%NL_" not in public and "ada@example.org" not in public
