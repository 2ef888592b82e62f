"""Make article HTML safe to put in an email, and derive plain excerpts from it."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import nh3

from ..urls import LINK_SCHEMES, WEB_SCHEMES, resolve_url

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
# The attributes that hold a URL, and what that URL may be: a link may be mailto, an image
# is fetched by the mail client and must be on the web.
_URL_ATTRIBUTES = {("a", "href"): LINK_SCHEMES, ("img", "src"): WEB_SCHEMES}
_CLEAN_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template"}
# nh3 writes ">" inside attribute values as &gt;, so a tag ends at the first ">".
_IMG_WITHOUT_SRC = re.compile(r"<img\b(?![^>]*\ssrc=)[^>]*>")


def sanitize_html(
    fragment: str, base_url: str | None = None, unresolved: Callable[[str], None] | None = None
) -> str:
    """Strip scripts, event handlers, javascript: URLs and anything email cannot show.

    Relative links and images resolve against `base_url` (the article's own URL). One that
    resolves to no web (or mailto) address is dropped: a link keeps its text, an image goes
    whole; `unresolved` hears of each.
    """

    def check_url(tag: str, attribute: str, value: str) -> str | None:
        schemes = _URL_ATTRIBUTES.get((tag, attribute))
        if schemes is None:
            return value
        url = resolve_url(value, base_url, schemes)
        if url is None and unresolved is not None:
            unresolved(value)
        return url

    cleaned = nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=set(LINK_SCHEMES),
        clean_content_tags=_CLEAN_CONTENT,
        link_rel="noopener",
        attribute_filter=check_url,
    )
    return _IMG_WITHOUT_SRC.sub("", cleaned).strip()


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
