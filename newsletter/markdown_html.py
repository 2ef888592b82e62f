"""Markdown written by people we publish (the editor's note) as HTML safe in an email."""

from __future__ import annotations

from markdown_it import MarkdownIt

from .sources.sanitize import sanitize_html

# CommonMark with tables and strikethrough; raw HTML in the Markdown is escaped, not passed.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def markdown_to_html(text: str) -> str:
    """Render Markdown, then sanitize the result as feed HTML is (nh3: no scripts, no
    event handlers, only http(s) and mailto links)."""
    return sanitize_html(_MARKDOWN.render(text))
