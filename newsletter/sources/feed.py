"""The feed source: RSS 0.9x/1.0/2.0 and Atom through feedparser, from a URL or a file.

URLs are fetched here with urllib rather than by feedparser, so the timeout, the
User-Agent and the conditional GET (ETag / Last-Modified kept in the store, a 304 answered
from the stored body) are ours. feedparser only parses bytes; it never opens a URL or a
path itself.

All entry HTML goes through nh3 (sanitize_html); feedparser's own sanitizer is off so
that one sanitizer, with one allow-list, decides what reaches an email.
"""

from __future__ import annotations

import html
import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from time import struct_time
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser

from .. import __version__
from ..config import SourceSettings
from ..errors import SourceError
from ..images import IMG_TAG, attributes, pixels
from ..models import Article, Author, Image, stable_id
from ..urls import WEB_SCHEMES, safe_url
from .folder import split_names
from .sanitize import excerpt, html_to_plain, sanitize_html

if TYPE_CHECKING:
    from ..store.feeds import Feeds

Warn = Callable[[str], None]

USER_AGENT = f"newsletter/{__version__}"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"
)
# A feed is a few hundred KB at most; anything far larger is not a feed we want in memory
# (a file or a URL alike).
MAX_FEED_BYTES = 10 * 1024 * 1024
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)$", re.I)
_UNTITLED_WORDS = 10


@dataclass(frozen=True)
class FeedDocument:
    """The raw bytes of a feed and the URL its relative links resolve against (if known)."""

    body: bytes
    base_url: str | None


def read_feed(source: SourceSettings, feeds: Feeds, warn: Warn) -> list[Article]:
    """Every entry of the feed as an Article; raises SourceError when nothing can be read."""
    document = fetch_feed(source, feeds)
    parsed = parse_feed(source, document, warn)
    # Atom entries without an author inherit the feed's (RFC 4287 4.2.1); an RSS channel's
    # managingEditor is not the author of its items.
    feed_authors = _author_names(parsed.feed) if parsed.version.startswith("atom") else []
    now = datetime.now(timezone.utc)
    articles = []
    skipped = 0
    dropped: list[str] = []
    for entry in parsed.entries:
        article = entry_to_article(source.name, entry, feed_authors, feeds, now, dropped.append)
        if article is None:
            skipped += 1
        else:
            articles.append(article)
    if skipped:
        warn(f"source {source.name!r}: skipped {skipped} feed entries with no title, link or text")
    if dropped:
        warn(
            f"source {source.name!r}: dropped {len(dropped)} links or images with no web address "
            f"(first: {dropped[0]}); relative ones need the feed's URL or an entry link"
        )
    return articles


# --- fetching -------------------------------------------------------------------------


def fetch_feed(source: SourceSettings, feeds: Feeds) -> FeedDocument:
    location = source.url or ""
    scheme = urlsplit(location).scheme.lower()
    if "://" not in location:
        return read_feed_file(source.name, Path(location))
    if scheme not in ("http", "https"):
        raise SourceError(
            f"source {source.name!r}: cannot fetch {location} ({scheme}: is not supported); "
            "use an http(s) URL or a file path"
        )
    return fetch_feed_url(source, feeds)


def read_feed_file(name: str, path: Path) -> FeedDocument:
    try:
        with path.open("rb") as file:
            body = file.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise SourceError(
            f"source {name!r}: cannot read feed file {path} ({exc.strerror}); fix its url"
        ) from None
    _check_size(name, str(path), body)
    return FeedDocument(body=body, base_url=None)


def fetch_feed_url(source: SourceSettings, feeds: Feeds) -> FeedDocument:
    """GET the feed, conditionally when the store holds validators; a 304 reuses the stored body."""
    url = source.url or ""
    cached = feeds.get_cache(url)
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if cached is not None and cached.body is not None:
        if cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=source.timeout) as response:
            body = response.read(MAX_FEED_BYTES + 1)
            final_url = response.geturl()
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
            content_location = response.headers.get("Content-Location")
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and cached is not None and cached.body is not None:
            return FeedDocument(body=cached.body, base_url=exc.geturl() or url)
        raise SourceError(
            f"source {source.name!r}: {url} answered HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise SourceError(
            f"source {source.name!r}: cannot fetch {url} ({_reason(exc, source)})"
        ) from None
    _check_size(source.name, url, body)
    feeds.save_cache(url, etag, last_modified, body)
    base_url = urljoin(final_url, content_location) if content_location else final_url
    return FeedDocument(body=body, base_url=base_url)


def _check_size(name: str, location: str, body: bytes) -> None:
    """Read with MAX_FEED_BYTES + 1 as the limit: more than the cap means skip the feed."""
    if len(body) > MAX_FEED_BYTES:
        raise SourceError(
            f"source {name!r}: {location} is larger than {MAX_FEED_BYTES // (1024 * 1024)} MB; "
            "skipped it (is it really a feed?)"
        )


def _reason(exc: BaseException, source: SourceSettings) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return f"no answer within {source.timeout:g} s"
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


# --- parsing --------------------------------------------------------------------------


def parse_feed(source: SourceSettings, document: FeedDocument, warn: Warn) -> Any:
    """Parse the bytes; a malformed feed keeps the entries that parsed, with one warning.

    The server's Content-Type is not passed on, so the body is decoded by its own BOM and
    XML declaration the same way whether it came from a 200, from the store after a 304,
    or from a file.
    """
    parsed = _parse(document.body, document.base_url)
    if document.base_url is None:
        # A file has no URL of its own; the feed's self (or home page) link stands in for
        # it so that relative entry links and images still come out absolute.
        base_url = _declared_base(parsed.feed)
        if base_url:
            parsed = _parse(document.body, base_url)
    if parsed.bozo and not parsed.entries:
        raise SourceError(
            f"source {source.name!r}: {source.url} is not a readable feed "
            f"({_bozo_reason(parsed.bozo_exception)})"
        )
    if not parsed.version and not parsed.entries:
        raise SourceError(f"source {source.name!r}: {source.url} is not an RSS or Atom feed")
    if parsed.bozo:
        warn(
            f"source {source.name!r}: malformed feed ({_bozo_reason(parsed.bozo_exception)}); "
            f"kept the {len(parsed.entries)} entries that parsed"
        )
    return parsed


def _parse(body: bytes, base_url: str | None) -> Any:
    # application/xml without a charset: the document's BOM or XML declaration decides.
    headers = {"content-type": "application/xml"}
    if base_url:
        headers["content-location"] = base_url
    return feedparser.parse(
        body, response_headers=headers, resolve_relative_uris=True, sanitize_html=False
    )


def _declared_base(feed: Any) -> str | None:
    links = feed.get("links", [])
    for rel in ("self", "alternate"):
        for link in links:
            href = link.get("href", "")
            if link.get("rel") == rel and safe_url(href, WEB_SCHEMES):
                return str(href)
    return None


def _bozo_reason(exc: BaseException | None) -> str:
    if isinstance(exc, SAXParseException):
        return f"line {exc.getLineNumber()}: {exc.getMessage()}"
    return str(exc).splitlines()[0] if exc is not None and str(exc) else "not well-formed"


# --- entries --------------------------------------------------------------------------


def entry_to_article(
    source: str,
    entry: Any,
    feed_authors: list[str],
    feeds: Feeds,
    now: datetime,
    unresolved: Callable[[str], None],
) -> Article | None:
    """The Article an entry describes, or None for an empty entry (nothing to show)."""
    url = _entry_url(entry)
    body_html = sanitize_html(_body_html(entry), base_url=url, unresolved=unresolved)
    title = _plain(entry.get("title", ""), entry.get("title_detail", {}).get("type"))
    if not (title or url or html_to_plain(body_html)):
        return None
    guid = entry.get("id")
    article_id = stable_id(source, guid or entry.get("link") or title)
    title = title or excerpt(body_html, _UNTITLED_WORDS) or url or "Untitled"
    return Article(
        id=article_id,
        title=title,
        subtitle=_plain(entry.get("subtitle", ""), entry.get("subtitle_detail", {}).get("type")),
        url=url,
        authors=tuple(Author(name=name) for name in _author_names(entry) or feed_authors),
        body_html=body_html,
        excerpt=_excerpt(entry, body_html),
        published=_published(entry) or feeds.first_seen(article_id, now),
        source=source,
        image=lead_image(entry, body_html, title),
        keys=(f"guid:{guid}",) if guid else (),
    )


def lead_image(entry: Any, body_html: str, title: str) -> Image | None:
    """The entry's image: media:content or an enclosure of an image type, else the first
    image of its (sanitized) content. Only http(s) URLs; the alt text is the image's own
    or the article's title (feedparser folds media:title and media:description into the
    entry's own title and summary)."""
    for media in entry.get("media_content", []):
        if _is_image(media.get("medium"), media.get("type"), media.get("url")):
            src = safe_url(media.get("url"), WEB_SCHEMES)
            if src:
                return Image(src, title, pixels(media.get("width")))
    for enclosure in entry.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/"):
            src = safe_url(enclosure.get("href"), WEB_SCHEMES)
            if src:
                return Image(src, title)
    for tag in IMG_TAG.findall(body_html):
        found = attributes(tag)
        src = safe_url(html.unescape(found.get("src", "")), WEB_SCHEMES)
        if src:
            alt = html.unescape(found.get("alt") or found.get("title") or "").strip()
            return Image(src, alt or title, pixels(found.get("width")))
    return None


def _is_image(medium: object, content_type: object, url: object) -> bool:
    """media:content says so by medium or type; without either, the URL's extension does."""
    if medium or content_type:
        return medium == "image" or str(content_type or "").startswith("image/")
    return bool(_IMAGE_PATH.search(urlsplit(str(url or "")).path))


def _body_html(entry: Any) -> str:
    """content:encoded (or Atom content) over the summary; plain text becomes paragraphs."""
    for detail in [*entry.get("content", []), entry.get("summary_detail")]:
        if detail and detail.get("value", "").strip():
            return _as_html(detail["value"], detail.get("type"))
    return ""


def _as_html(value: str, content_type: str | None) -> str:
    if content_type in _HTML_TYPES:
        return value
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", value) if p.strip()]
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _excerpt(entry: Any, body_html: str) -> str:
    """The summary as plain text when the feed gives one besides a different full body."""
    if not entry.get("content"):
        return ""
    summary = entry.get("summary_detail")
    if not summary:
        return ""
    text = html_to_plain(sanitize_html(_as_html(summary.get("value", ""), summary.get("type"))))
    return "" if text == html_to_plain(body_html) else text


def _plain(value: str, content_type: str | None) -> str:
    """Titles are text: markup in an HTML/XHTML title is dropped, whitespace folded."""
    if content_type in _HTML_TYPES:
        return html_to_plain(value)
    return " ".join(value.split())


def _entry_url(entry: Any) -> str | None:
    """The entry's link if it is an absolute web URL (nothing else belongs in an email)."""
    return safe_url(entry.get("link", ""), WEB_SCHEMES)


def _author_names(item: Any) -> list[str]:
    """dc:creator / author / Atom author names; "A and B" split in two, addresses left out."""
    raw = [a.get("name", "") for a in item.get("authors", [])] or [item.get("author", "")]
    names: list[str] = []
    for value in raw:
        for name in split_names(html.unescape(value or "")):
            if name not in names and "@" not in name:
                names.append(name)
    return names


def _published(entry: Any) -> datetime | None:
    # `"updated_parsed" in entry` is asked first because feedparser's get() would fall back
    # to published_parsed with a DeprecationWarning.
    moment: struct_time | None = entry.get("published_parsed") or (
        entry["updated_parsed"] if "updated_parsed" in entry else None
    )
    if moment is None:
        return None
    # feedparser normalizes every parsed date to UTC.
    return datetime(*moment[:6], tzinfo=timezone.utc)
