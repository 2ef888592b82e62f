"""Make article HTML safe to put in an email, and derive plain excerpts from it."""

from __future__ import annotations

import html
import re

import nh3

# Email clients render a small subset of HTML; everything else is dropped with its content
# where the content is code (script, style) and unwrapped where it is text.
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl",
    "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "abbr": {"title"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_CLEAN_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template"}


def sanitize_html(fragment: str) -> str:
    """Strip scripts, event handlers, javascript: URLs and anything email cannot show."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        clean_content_tags=_CLEAN_CONTENT,
        link_rel="noopener",
    ).strip()


_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|blockquote|tr)>|<br\s*/?>", re.I)
_SPACE = re.compile(r"\s+")


def html_to_plain(fragment: str) -> str:
    """Text content of an HTML fragment, whitespace folded (for excerpts and titles)."""
    text = _BLOCK_END.sub(" ", fragment)
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", text))).strip()


def excerpt(fragment: str, words: int) -> str:
    """The first `words` words of the fragment's text, with an ellipsis when cut."""
    tokens = html_to_plain(fragment).split(" ")
    if len(tokens) <= words:
        return " ".join(tokens)
    return " ".join(tokens[:words]).rstrip(",;:.") + "…"


def paragraphs_to_html(paragraphs: list[str]) -> str:
    """Plain-text paragraphs as escaped <p> elements (single newlines become <br>)."""
    return "\n".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
