"""Plain objects that flow through the pipeline: sources -> issue -> render."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Author:
    name: str
    bio: str = ""
    url: str | None = None


@dataclass(frozen=True)
class Image:
    """An article's lead image: an http(s) URL, its alt text, its width in pixels if known."""

    src: str
    alt: str
    width: int | None = None


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body_html: str
    published: datetime  # always timezone-aware
    source: str
    subtitle: str = ""
    url: str | None = None
    authors: tuple[Author, ...] = ()
    excerpt: str = ""
    image: Image | None = None
    # What else identifies the article beyond `id` (which names its source and file or
    # entry): a feed item's guid, a file's content fingerprint. See identity().
    keys: tuple[str, ...] = ()

    def identity(self) -> frozenset[str]:
        """Every key under which a digest remembers carrying this article: its id, its
        canonical URL, and its own keys. Two articles sharing any key are the same one, so
        renaming a source or moving a file does not make a carried article new again."""
        found = {f"id:{self.id}", *self.keys}
        if self.url:
            found.add(f"url:{self.url}")
        return frozenset(_short(key) for key in found)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "subtitle": self.subtitle,
            "url": self.url,
            "authors": [{"name": a.name, "bio": a.bio} for a in self.authors],
            "published": self.published.isoformat(),
            "source": self.source,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True)
class IssueContent:
    """What one issue of a digest carries, before rendering."""

    digest: str
    number: int
    subject: str
    articles: tuple[Article, ...]
    newsletter_name: str
    created: datetime
    note: str = ""  # the editor's note, Markdown


def content_fingerprint(*parts: str) -> str:
    """The identity key of an article's text, whitespace aside (see Article.identity)."""
    normal = "\x1f".join(" ".join(part.split()) for part in parts)
    return "text:" + hashlib.sha256(normal.encode("utf-8")).hexdigest()[:32]


def stable_id(*parts: str) -> str:
    """A short id that stays the same for the same article across runs."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


def _short(key: str) -> str:
    """A key the store can index (at most 200 characters): a long one by its hash."""
    if len(key) <= 194:
        return key
    kind, _, value = key.partition(":")
    return f"{kind}#:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]
