"""Hostile article, feed, config and subscriber text against the real pipeline: nothing
it holds may become a personal placeholder, and no link but http(s) and mailto reaches
a message."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path

import pytest
from smtp_server import SmtpTestServer, configure, subscribe

from newsletter.config import load_config
from newsletter.sending import send_digest
from newsletter.store import Store

SECRET = "test-secret"
TRACKER = "https://tracker.example/o.gif?e=%%NL_EMAIL%%&amp;u=%%NL_UNSUBSCRIBE_URL%%"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


def hostile_feed(path: Path) -> None:
    now = format_datetime(datetime.now(timezone.utc))
    path.write_text(
        f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>t</title><link>https://example.org/</link>
<item>
  <title>Pixel %%NL_NAME%% story</title>
  <pubDate>{now}</pubDate>
  <author>%%NL_EMAIL%%</author>
  <content:encoded><![CDATA[<p>Hi %%NL_NAME%%, see <a href="javascript:alert(1)">this</a>.
  <img src="{TRACKER}" alt="pixel"></p>]]></content:encoded>
</item></channel></rss>""",
        encoding="utf-8",
    )


def test_feed_text_never_becomes_a_personal_value_in_the_sent_message(
    project: Path, write_config: Callable[[str], Path], smtp_server: SmtpTestServer
) -> None:
    hostile_feed(project / "hostile.xml")
    write_config('[[sources]]\nname = "news"\nkind = "feed"\nurl = "hostile.xml"\n')
    config = configure(project, smtp_server.config_toml())
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly")
    subscribe(store, "weekly", [("ada@example.org", "Ada Lovelace")])

    send_digest(config, store, "weekly")

    [received] = smtp_server.messages
    text, html = (part.get_content() for part in received.message.iter_parts())
    [tracker] = re.findall(r'src="(https://tracker\.example/[^"]*)"', html)
    assert "ada" not in tracker.lower() and "%%NL_" not in tracker and "/u/" not in tracker
    assert "Pixel %%\u200bNL_NAME%% story" in html and "%%\u200bNL_NAME%%" in text
    for body in (text, html):
        assert "tracker.example/o.gif?e=ada" not in body
        assert "Pixel Ada" not in body and "Hi Ada" not in body
        assert "%%NL_" not in body
        assert "javascript:" not in body
    store.close()


def test_config_strings_and_names_never_become_personal_values(project: Path) -> None:
    path = project / "config.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('postal_address = "1 Test Street, Testville"', 'postal_address = "PO Box %%NL_EMAIL%%"')
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly")
    subscribe(store, "weekly", [("ada@example.org", "%%NL_UNSUBSCRIBE_URL%% Ada")])

    send_digest(config, store, "weekly")

    [eml] = config.delivery.outbox.rglob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    for part in message.iter_parts():
        body = part.get_content()  # type: ignore[attr-defined]
        assert "PO Box %%\u200bNL_EMAIL%%" in body and "PO Box ada@" not in body
        assert "%%NL_" not in body and "/u/" not in body.split("Hello", 1)[1].split(",", 1)[0]
    assert "%%\u200bNL_UNSUBSCRIBE_URL%% Ada" in str(message["To"])
    store.close()
