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


def stable_id(*parts: str) -> str:
    """A short id that stays the same for the same article across runs."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]
