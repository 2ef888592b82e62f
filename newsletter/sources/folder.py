"""The folder source: article files that editors drop into a directory.

Two formats:

* plain text, as the example article: the first line is the title, the next paragraph
  the subtitle, then body paragraphs, a line ``Author: NAME`` and the author's bio;
* Markdown (``.md``) with YAML (``---``) or TOML (``+++``) front matter carrying title,
  subtitle or deck, author or authors, date, url and bio.

A file that cannot be read is skipped with a warning naming it; the rest go on.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..errors import SourceError
from ..models import Article, Author, content_fingerprint, stable_id
from ..urls import LINK_SCHEMES, WEB_SCHEMES, allowed, safe_url
from .markdown import article_html
from .sanitize import paragraphs_to_html

TEXT_SUFFIXES = {".txt"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
_AUTHOR_LINE = re.compile(r"^\s*(?:by|author)\s*:\s*(?P<names>.+?)\s*$", re.I)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class ParsedArticle:
    """What a file says about itself; the reader adds id, source and date."""

    title: str
    subtitle: str
    body_html: str
    authors: tuple[Author, ...]
    url: str | None = None
    published: datetime | None = None


def read_folder(
    name: str, folder: Path, warn: Callable[[str], None]
) -> list[Article]:
    """Every readable article file in `folder` (not recursive, hidden files ignored)."""
    if not folder.is_dir():
        raise SourceError(f"source {name!r}: folder {folder} does not exist; create it or fix path")
    articles = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in TEXT_SUFFIXES | MARKDOWN_SUFFIXES:
            continue
        try:
            articles.append(read_article_file(path, source=name, root=folder, warn=warn))
        except SourceError as exc:
            warn(str(exc))
    return articles


def read_article_file(path: Path, *, source: str, root: Path, warn: Callable[[str], None]) -> Article:
    try:
        text = path.read_text(encoding="utf-8-sig")
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    except UnicodeDecodeError as exc:
        raise SourceError(f"skipped {path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except OSError as exc:
        raise SourceError(f"skipped {path}: cannot read it ({exc.strerror})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        parsed = parse_markdown_article(text, path, warn)
    else:
        parsed = parse_text_article(text, path)
    return Article(
        id=stable_id(source, path.relative_to(root).as_posix()),
        title=parsed.title,
        subtitle=parsed.subtitle,
        body_html=parsed.body_html,
        url=parsed.url,
        authors=parsed.authors,
        published=parsed.published or mtime,
        source=source,
        keys=(content_fingerprint(parsed.title, parsed.body_html),),
    )


def parse_text_article(text: str, path: Path) -> ParsedArticle:
    """Title line, subtitle paragraph, body paragraphs, `Author: NAME`, bio paragraph(s)."""
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    if not paragraphs:
        raise SourceError(f"skipped {path}: the file is empty")
    title, _, rest_of_first = paragraphs[0].partition("\n")
    paragraphs = ([rest_of_first.strip()] if rest_of_first.strip() else []) + paragraphs[1:]
    if len(paragraphs) < 2:
        raise SourceError(
            f"skipped {path}: expected a title line, a subtitle paragraph and a body"
        )
    subtitle, body = paragraphs[0], paragraphs[1:]
    authors: tuple[Author, ...] = ()
    for index, paragraph in enumerate(body):
        first_line, _, after = paragraph.partition("\n")
        match = _AUTHOR_LINE.match(first_line)
        if match:
            bio = "\n\n".join(([after.strip()] if after.strip() else []) + body[index + 1:])
            authors = tuple(Author(name=n, bio=bio) for n in split_names(match["names"]))
            body = body[:index]
            break
    if not body:
        raise SourceError(f"skipped {path}: the article has no body text")
    return ParsedArticle(
        title=title.strip(),
        subtitle=subtitle.replace("\n", " "),
        body_html=paragraphs_to_html(body),
        authors=authors,
    )


def split_names(names: str) -> list[str]:
    """'A, B and C' -> ['A', 'B', 'C']."""
    parts = re.split(r"\s*(?:,|&|\band\b)\s*", names.strip())
    return [p for p in parts if p]


def parse_markdown_article(text: str, path: Path, warn: Callable[[str], None]) -> ParsedArticle:
    meta, body = split_front_matter(text, path)
    title = str(meta.get("title") or "").strip()
    if not title:
        raise SourceError(f"skipped {path}: front matter has no title; add `title: ...`")
    bio = str(meta.get("bio") or "").strip()
    names = meta.get("authors", meta.get("author", []))
    if isinstance(names, str):
        names = split_names(names)
    if not isinstance(names, list):
        raise SourceError(f"skipped {path}: `authors` must be a name or a list of names")
    authors = tuple(_author_from_meta(entry, bio, path, warn) for entry in names)
    url = _checked_url(meta.get("url"), "url", WEB_SCHEMES, path, warn)
    dropped: list[str] = []
    body_html = article_html(body, base_url=url, unresolved=dropped.append)
    if dropped:
        warn(
            f"{path}: dropped links and images with no web address: {', '.join(dropped)} "
            "(relative ones resolve against the front matter's url; add it)"
        )
    return ParsedArticle(
        title=title,
        subtitle=str(meta.get("subtitle") or meta.get("deck") or "").strip(),
        body_html=body_html,
        authors=authors,
        url=url,
        published=_front_matter_date(meta.get("date"), path),
    )


def _author_from_meta(entry: Any, bio: str, path: Path, warn: Callable[[str], None]) -> Author:
    if isinstance(entry, str):
        return Author(name=entry.strip(), bio=bio)
    if isinstance(entry, dict) and entry.get("name"):
        url = _checked_url(entry.get("url"), "author url", LINK_SCHEMES, path, warn)
        return Author(name=str(entry["name"]), bio=str(entry.get("bio") or bio), url=url)
    raise SourceError(f"skipped {path}: an author must be a name or a table with a name")


def _checked_url(
    value: Any, key: str, schemes: frozenset[str], path: Path, warn: Callable[[str], None]
) -> str | None:
    """A front matter URL when it is one we may link to; anything else is left out, with a warning."""
    if value is None or value == "":
        return None
    url = safe_url(value, schemes)
    if url is None:
        warn(f"{path}: {key} {value!r} is not {allowed(schemes)}; left it out")
    return url


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    for fence, load in (("---", yaml.safe_load), ("+++", tomllib.loads)):
        if text.startswith(fence + "\n"):
            end = text.find("\n" + fence, len(fence))
            if end < 0:
                raise SourceError(f"skipped {path}: front matter opened by {fence} is never closed")
            try:
                meta = load(text[len(fence) + 1 : end]) or {}
            except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
                reason = str(exc).splitlines()[0]
                raise SourceError(f"skipped {path}: invalid front matter: {reason}") from None
            if not isinstance(meta, dict):
                raise SourceError(f"skipped {path}: front matter must be a mapping of keys")
            return meta, text[end + len(fence) + 1 :].lstrip("\n")
    raise SourceError(f"skipped {path}: no front matter; start the file with --- (YAML) or +++ (TOML)")


def _front_matter_date(value: Any, path: Path) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise SourceError(
                f"skipped {path}: date {value!r} is not ISO 8601 (e.g. 2026-11-24 or 2026-11-24T08:00:00Z)"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

