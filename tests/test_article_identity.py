"""An article a digest has carried is never carried again by it: not after its source is
renamed, its file renamed or moved, nor when it comes from another source as well."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from smtp_server import generated_people, subscribe

from newsletter.config import load_config
from newsletter.drafting import compose_or_refresh
from newsletter.sending import send_digest
from newsletter.store import Store

BACKENDS = ("sqlite", "postgres")
ARTICLE = "zelensky-nato-shoot-down.txt"


@pytest.fixture
def store(project: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("NEWSLETTER_SECRET", "identity-test-secret")
    store = Store(load_config(project / "config.toml").database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", generated_people(2))
    return store


TITLES = ("Alpha story", "Beta story", "Gamma story", "A new story", "The story", "Zelensky")


def send(project: Path, store: Store) -> list[str]:
    """Send the next issue; which of TITLES it carried (none when nothing was new)."""
    report = send_digest(load_config(project / "config.toml"), store, "weekly")
    if report.status == "nothing":
        return []
    assert report.number is not None
    text = store.issues.find("weekly", report.number).text
    return sorted(title for title in TITLES if title.upper() in text.upper())


def rename_source(project: Path, old: str, new: str) -> None:
    config = project / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(f'name = "{old}"', f'name = "{new}"'),
                      encoding="utf-8")


def test_renaming_the_folder_source_and_the_file_brings_no_carried_article_back(
    project: Path, store: Store
) -> None:
    assert send(project, store) == ["Zelensky"]
    rename_source(project, "desk", "newsroom")
    shutil.move(project / "articles" / ARTICLE, project / "articles" / "renamed.txt")

    assert send(project, store) == []

    fresh = project / "articles" / "fresh.txt"
    fresh.write_text("A new story\n\nIts deck.\n\nIts body.\n\nAuthor: Ada\n", encoding="utf-8")
    assert send(project, store) == ["A new story"]


def feed(items: list[tuple[str | None, str, str]]) -> str:
    """An RSS feed of (guid, link, title) items published an hour ago."""
    date = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1))
    entries = "".join(
        f"<item>{_guid(guid)}<link>{link}</link>"
        f"<title>{title}</title><description>Body of {title}.</description><pubDate>{date}</pubDate></item>"
        for guid, link, title in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{entries}</channel></rss>'


def _guid(guid: str | None) -> str:
    return f'<guid isPermaLink="false">{guid}</guid>' if guid else ""


def test_a_feed_item_is_known_by_its_guid_or_link_whatever_its_source_is_called(
    project: Path, store: Store
) -> None:
    (project / "articles" / ARTICLE).unlink()
    wire = project / "wire.xml"
    wire.write_text(feed([("tag:wire,1", "https://wire.example/1", "Alpha story"),
                          (None, "https://wire.example/2", "Beta story")]), encoding="utf-8")
    config = project / "config.toml"
    config.write_text(config.read_text(encoding="utf-8")
                      + '\n[[sources]]\nname = "wire"\nkind = "feed"\nurl = "wire.xml"\n', encoding="utf-8")
    assert send(project, store) == ["Alpha story", "Beta story"]

    rename_source(project, "wire", "agency")
    # The same items, one with a new link (its guid stays), one with no guid (its link stays).
    wire.write_text(feed([("tag:wire,1", "https://wire.example/one", "Alpha story"),
                          (None, "https://wire.example/2", "Beta story"),
                          ("tag:wire,3", "https://wire.example/3", "Gamma story")]), encoding="utf-8")

    assert send(project, store) == ["Gamma story"]


def test_an_article_in_two_sources_is_carried_once(project: Path, store: Store) -> None:
    (project / "articles" / ARTICLE).unlink()
    (project / "articles" / "story.md").write_text(
        "---\ntitle: The story\nurl: https://news.example.org/story\nauthor: Ada\n---\nBody.\n", encoding="utf-8"
    )
    (project / "wire.xml").write_text(feed([(None, "https://news.example.org/story", "The story")]), encoding="utf-8")
    config = project / "config.toml"
    config.write_text(config.read_text(encoding="utf-8")
                      + '\n[[sources]]\nname = "wire"\nkind = "feed"\nurl = "wire.xml"\n', encoding="utf-8")

    assert send(project, store) == ["The story"]
    assert "here is this week's story." in store.issues.find("weekly", 1).text  # one, not two
    assert send(project, store) == []


def test_a_draft_does_not_take_its_own_article_again_after_the_file_was_renamed(project: Path, store: Store) -> None:
    config = load_config(project / "config.toml")
    digest = config.digests["weekly"]
    first = compose_or_refresh(config, digest, store, lambda _: None, actor="test")
    assert first is not None and len(first.content.included) == 1
    shutil.move(project / "articles" / ARTICLE, project / "articles" / "moved.txt")

    again = compose_or_refresh(config, digest, store, lambda _: None, actor="test")

    assert again is not None
    assert [entry.id for entry in again.content.included] == [entry.id for entry in first.content.included]
