"""Decide what the next issue of a digest carries: the step between sources and render."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from .config import AuthorSettings, Config, DigestSettings
from .models import Article, Author, IssueContent
from .render import render_subject
from .sources import collect_articles
from .sources.sanitize import excerpt
from .store import Store


def next_issue(
    config: Config,
    digest: DigestSettings,
    store: Store,
    warn: Callable[[str], None],
    now: datetime | None = None,
) -> IssueContent:
    """The articles and subject of the digest's next issue (nothing is recorded)."""
    now = now or datetime.now(timezone.utc)
    chosen = candidate_articles(config, digest, store, warn, now)[: digest.max_articles]
    number = store.issues.next_number(digest.name)
    return IssueContent(
        digest=digest.name,
        number=number,
        subject=issue_subject(config, digest, chosen, number, now),
        articles=tuple(chosen),
        newsletter_name=config.newsletter.name,
        created=now,
    )


def candidate_articles(
    config: Config, digest: DigestSettings, store: Store, warn: Callable[[str], None], now: datetime
) -> list[Article]:
    """Every article the digest's next issue may carry, newest first, as it would carry
    them (authors from the config, excerpts cut); max_articles is the caller's to apply."""
    sources = [s for s in config.sources if not digest.sources or s.name in digest.sources]
    articles = collect_articles(sources, store.feeds, warn)
    fresh = fresh_articles(articles, digest, store.issues.carried_keys(digest.name), now)
    return [
        replace(article, excerpt=excerpt(article.excerpt or article.body_html, digest.excerpt_words))
        for article in resolve_authors(fresh, config.authors)
    ]


def issue_subject(
    config: Config, digest: DigestSettings, articles: Sequence[Article], number: int, date: datetime
) -> str:
    """The digest's subject template rendered over the issue's articles, in their order."""
    context = {
        "newsletter": config.newsletter,
        "articles": list(articles),
        "date": date.astimezone(config.newsletter.tz),
        "number": number,
        "digest": digest.name,
    }
    return render_subject(digest.subject, context, digest.name)


def select_articles(
    articles: list[Article], digest: DigestSettings, carried: set[str], now: datetime
) -> list[Article]:
    """Published within lookback_days, not carried before, newest first, at most max_articles."""
    return fresh_articles(articles, digest, carried, now)[: digest.max_articles]


def fresh_articles(
    articles: list[Article], digest: DigestSettings, carried: set[str], now: datetime
) -> list[Article]:
    """Published within lookback_days and not carried before (under any of its identity
    keys), newest first; an article met twice (in two sources) counts once."""
    cutoff = now - timedelta(days=digest.lookback_days)
    seen = set(carried)
    fresh: list[Article] = []
    for article in articles:
        identity = article.identity()
        if identity & seen or not cutoff <= article.published <= now + timedelta(hours=1):
            continue
        seen |= identity
        fresh.append(article)
    return sorted(fresh, key=lambda a: a.published, reverse=True)


def resolve_authors(articles: list[Article], registry: dict[str, AuthorSettings]) -> list[Article]:
    """One bio and url per author across the issue: the config's [authors."NAME"] first,
    else the first article of the issue that carries one, so an author reads the same
    under every article."""
    known: dict[str, Author] = {}
    for author in (author for article in articles for author in article.authors):
        seen = known.get(author.name, Author(author.name))
        known[author.name] = Author(author.name, seen.bio or author.bio, seen.url or author.url)
    for name, seen in known.items():
        entry = registry.get(name)
        if entry is not None:
            known[name] = Author(name, entry.bio or seen.bio, entry.url or seen.url)
    return [replace(a, authors=tuple(known[author.name] for author in a.authors)) for a in articles]
