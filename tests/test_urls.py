"""The one rule for links from outside: absolute http, https or mailto URLs only."""

from __future__ import annotations

import pytest

from newsletter.urls import WEB_SCHEMES, archive_url, resolve_url, safe_url


@pytest.mark.parametrize(
    "url",
    ["https://example.org/a?b=1#c", "http://example.org", " https://example.org/x ", "mailto:ann@example.org"],
)
def test_web_and_mailto_urls_are_kept(url: str) -> None:
    assert safe_url(url) == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://",
        "mailto:",
        "/about",
        "images/chart.png",
        "",
        None,
        42,
    ],
)
def test_anything_else_is_no_link(url: object) -> None:
    assert safe_url(url) is None


def test_images_and_bases_need_the_web() -> None:
    assert safe_url("mailto:ann@example.org", WEB_SCHEMES) is None
    assert resolve_url("images/chart.png", "mailto:ann@example.org") is None


@pytest.mark.parametrize(
    ("link", "base", "resolved"),
    [
        ("images/chart.png", "https://example.org/news/story", "https://example.org/news/images/chart.png"),
        ("/about", "https://example.org/news/story", "https://example.org/about"),
        ("//cdn.example.org/a.png", "https://example.org/x", "https://cdn.example.org/a.png"),
        ("#notes", "https://example.org/x", "https://example.org/x#notes"),
        ("https://other.example/a", "https://example.org/x", "https://other.example/a"),
        ("https://other.example/a", None, "https://other.example/a"),
        ("/about", None, None),
        ("javascript:alert(1)", "https://example.org/x", None),
    ],
)
def test_relative_links_resolve_against_the_article_url(link: str, base: str | None, resolved: str | None) -> None:
    assert resolve_url(link, base) == resolved


def test_archive_urls() -> None:
    assert archive_url("https://news.example.org/", "weekly") == "https://news.example.org/archive/weekly"
    assert archive_url("https://news.example.org", "weekly", 12) == "https://news.example.org/archive/weekly/12"
