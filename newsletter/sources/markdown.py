"""Markdown as HTML safe in an email: one dialect for everything the newsletter renders
(CommonMark with tables and strikethrough, by markdown-it-py), then sanitized as feed
HTML is (nh3: no scripts, no event handlers, only http(s) and mailto links)."""

from __future__ import annotations

from collections.abc import Callable

from markdown_it import MarkdownIt

from .sanitize import sanitize_html

_EXTENSIONS = ["table", "strikethrough"]
# Articles: raw HTML in the Markdown passes on to nh3, which decides what stays.
_ARTICLE = MarkdownIt("commonmark").enable(_EXTENSIONS)
# The editor's note: raw HTML is escaped and shown as text.
_NOTE = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(_EXTENSIONS)


def article_html(
    markdown: str, base_url: str | None = None, unresolved: Callable[[str], None] | None = None
) -> str:
    """A Markdown article's body; relative links resolve against `base_url` (see
    sanitize_html)."""
    return sanitize_html(_ARTICLE.render(markdown), base_url=base_url, unresolved=unresolved)


def note_html(markdown: str) -> str:
    """The editor's note."""
    return sanitize_html(_NOTE.render(markdown))
