"""The feed source: RSS 0.9x/1.0/2.0 and Atom through feedparser (to be filled in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import SourceSettings
from ..models import Article

if TYPE_CHECKING:
    from ..store.feeds import Feeds


def read_feed(source: SourceSettings, feeds: Feeds, warn: Callable[[str], None]) -> list[Article]:
    return []
