"""Article sources: folders of article files and RSS/Atom feeds.

A source that fails is skipped with a warning naming it; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config import SourceSettings
from ..errors import SourceError
from ..models import Article
from .feed import read_feed
from .folder import read_folder

if TYPE_CHECKING:
    from ..store.feeds import Feeds

Warn = Callable[[str], None]


def read_source(source: SourceSettings, feeds: Feeds, warn: Warn) -> list[Article]:
    if source.kind == "folder":
        assert source.path is not None
        return read_folder(source.name, source.path, warn)
    return read_feed(source, feeds, warn)


def collect_articles(sources: Iterable[SourceSettings], feeds: Feeds, warn: Warn) -> list[Article]:
    """Every article every source offers, in source order; failed sources only warn."""
    articles: list[Article] = []
    for source in sources:
        try:
            articles.extend(read_source(source, feeds, warn))
        except SourceError as exc:
            warn(str(exc))
    return articles
