"""The editor's side of an issue: compose or refresh a digest's draft, and edit it.

The draft (store/drafts.py) is a snapshot: each article as it was selected. A refresh
adds the articles published since, each in its place (before the first article the
draft carries that is older, never above the pinned one), while the draft has room
under max_articles; it never drops, reorders or brings back what the editor chose.
The subject is the digest's subject template over the articles as ordered, unless the
editor set one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from .compose import candidate_articles, issue_subject, next_issue
from .config import Config, DigestSettings
from .errors import NewsletterError
from .models import Article, Author, IssueContent
from .store import Store
from .store.drafts import DraftArticle, DraftChange, DraftContent, DraftRecord


class DraftEditError(NewsletterError):
    """An edit names an article the draft does not carry, or a position it does not have."""


@dataclass(frozen=True)
class DraftEdit:
    """One `newsletter edit`: applied in this order, all or nothing."""

    exclude: Sequence[str] = ()
    include: Sequence[str] = ()
    unpin: bool = False
    pin: str | None = None
    moves: Sequence[tuple[str, int]] = ()  # (article id, position from 1)
    subject: str | None = None  # "" goes back to the digest's subject template
    note: str | None = None  # Markdown; "" removes the note


def snapshot(article: Article) -> dict[str, Any]:
    """An article as a draft keeps it: every field an issue renders."""
    return {
        "id": article.id,
        "title": article.title,
        "subtitle": article.subtitle,
        "url": article.url,
        "body_html": article.body_html,
        "excerpt": article.excerpt,
        "published": article.published.isoformat(),
        "source": article.source,
        "authors": [{"name": a.name, "bio": a.bio, "url": a.url} for a in article.authors],
        "keys": list(article.keys),
    }


def from_snapshot(data: dict[str, Any]) -> Article:
    return Article(
        id=data["id"],
        title=data["title"],
        subtitle=data["subtitle"],
        url=data["url"],
        body_html=data["body_html"],
        excerpt=data["excerpt"],
        published=datetime.fromisoformat(data["published"]),
        source=data["source"],
        authors=tuple(Author(a["name"], a["bio"], a["url"]) for a in data["authors"]),
        keys=tuple(data.get("keys", ())),  # drafts stored before identity keys have none
    )


def draft_issue(config: Config, record: DraftRecord) -> IssueContent:
    """The issue a draft stands for, exactly as it is stored."""
    return IssueContent(
        digest=record.digest,
        number=record.number,
        subject=record.content.subject,
        articles=tuple(from_snapshot(entry.article) for entry in record.content.included),
        newsletter_name=config.newsletter.name,
        created=record.content.issue_date,
        note=record.content.note,
    )


def current_issue(
    config: Config, digest: DigestSettings, store: Store, warn: Callable[[str], None]
) -> tuple[IssueContent, DraftRecord | None]:
    """What the digest's next issue carries: its draft when there is one, else what
    the sources offer now (nothing is recorded)."""
    record = store.drafts.current(digest.name)
    if record is not None:
        return draft_issue(config, record), record
    return next_issue(config, digest, store, warn), None


def compose_or_refresh(
    config: Config,
    digest: DigestSettings,
    store: Store,
    warn: Callable[[str], None],
    *,
    actor: str,
    now: datetime | None = None,
) -> DraftRecord | None:
    """Compose the draft of the digest's next issue, or refresh the one there is; None
    when there is no draft and no article to make one of. `now` is the issue's date for
    a new draft (the scheduler passes the time it will be sent)."""
    moment = now or datetime.now(timezone.utc)
    candidates = candidate_articles(config, digest, store, warn, moment)  # before the write lock

    def change(record: DraftRecord | None, number: int) -> DraftChange | None:
        if record is None:
            return _compose(config, digest, candidates, number, moment)
        return _refresh(config, digest, record, candidates, warn)

    return store.drafts.save(digest.name, change, actor=actor, create=True)


def edit_draft(config: Config, digest: DigestSettings, store: Store, edit: DraftEdit, *, actor: str) -> DraftRecord:
    """Apply the edit to the current draft; DraftEditError (nothing changed) for an
    unknown article or a position out of range."""

    def change(record: DraftRecord | None, number: int) -> DraftChange | None:
        assert record is not None  # save(create=False) refuses a digest without a draft
        return _apply_edit(config, digest, record, edit)

    record = store.drafts.save(digest.name, change, actor=actor, create=False)
    assert record is not None
    return record


def _compose(
    config: Config, digest: DigestSettings, candidates: list[Article], number: int, date: datetime
) -> DraftChange | None:
    chosen = candidates[: digest.max_articles]
    if not chosen:
        return None
    entries = tuple(DraftArticle(a.id, snapshot(a)) for a in chosen)
    content = DraftContent(entries, "", None, "", date)
    steps = [("composed", f"{_count(len(chosen), 'article')}: " + ", ".join(_name(e) for e in entries))]
    return DraftChange(_with_subject(config, digest, content, number), steps)


def _refresh(
    config: Config,
    digest: DigestSettings,
    record: DraftRecord,
    candidates: list[Article],
    warn: Callable[[str], None],
) -> DraftChange | None:
    known = frozenset().union(*(from_snapshot(entry.article).identity() for entry in record.content.articles))
    new = [a for a in candidates if not a.identity() & known]  # newest first
    room = max(0, digest.max_articles - len(record.content.included))
    if len(new) > room:
        left = ", ".join(a.id for a in new[room:])
        warn(
            f"{_count(len(new) - room, 'new article')} did not fit in {record.label} "
            f"(max_articles = {digest.max_articles}): {left}; exclude some and run "
            f"`newsletter draft {digest.name}` again, or raise max_articles"
        )
    entries = list(record.content.articles)
    added = [DraftArticle(article.id, snapshot(article)) for article in new[:room]]
    for entry in added:
        entries.insert(_place(entries, from_snapshot(entry.article).published), entry)
    content = replace(record.content, articles=tuple(entries))
    carried = [entry.id for entry in content.included]
    steps = [("refreshed", f"added {_name(e)} at position {carried.index(e.id) + 1}") for e in added]
    return _changed(config, digest, record, content, steps)


def _place(entries: list[DraftArticle], published: datetime) -> int:
    """Where a new article goes: before the first carried (not excluded, not pinned)
    article published earlier, else after the last carried one."""
    last = 0
    for index, entry in enumerate(entries):
        if entry.excluded:
            continue
        if not entry.pinned and from_snapshot(entry.article).published < published:
            return index
        last = index + 1
    return last


def _apply_edit(config: Config, digest: DigestSettings, record: DraftRecord, edit: DraftEdit) -> DraftChange | None:
    entries = list(record.content.articles)
    steps: list[tuple[str, str]] = []
    for article_id in edit.exclude:
        index = _find(entries, article_id, record)
        entries[index] = replace(entries[index], excluded=True, pinned=False)
        steps.append(("excluded", _name(entries[index])))
    for article_id in edit.include:
        index = _find(entries, article_id, record)
        if not entries[index].excluded:
            raise DraftEditError(f"--include {article_id}: {record.label} already carries it")
        entries[index] = replace(entries[index], excluded=False)
        steps.append(("included", _name(entries[index])))
    if edit.unpin and any(entry.pinned for entry in entries):
        steps.append(("unpinned", ", ".join(_name(entry) for entry in entries if entry.pinned)))
        entries = [replace(entry, pinned=False) for entry in entries]
    if edit.pin is not None:
        entries = _pinned(entries, edit.pin, record)
        steps.append(("pinned", f"{_name(entries[0])} leads the issue"))
    for article_id, position in edit.moves:
        entries = _moved(entries, article_id, position, record)
        steps.append(("moved", f"{_name(entries[_index(entries, article_id)])} to position {position}"))
    content = replace(record.content, articles=tuple(entries))
    if edit.subject is not None:
        override = " ".join(edit.subject.split()) or None
        content = replace(content, subject_override=override)
        steps.append(("subject", f"set to {override!r}" if override else "back to the digest's subject template"))
    if edit.note is not None:
        content = replace(content, note=edit.note.strip())
        steps.append(("note", "changed" if content.note else "removed"))
    return _changed(config, digest, record, content, steps)


def _changed(
    config: Config, digest: DigestSettings, record: DraftRecord, content: DraftContent, steps: list[tuple[str, str]]
) -> DraftChange | None:
    """The change with its subject rendered again over the new order (None: nothing
    changed, such as a move to where the article already was)."""
    content = _with_subject(config, digest, content, record.number)
    if content == record.content:
        return None
    if content.subject_override is None and content.subject != record.content.subject:
        steps.append(("subject", f"now {content.subject!r}"))
    return DraftChange(content, steps)


def _with_subject(config: Config, digest: DigestSettings, content: DraftContent, number: int) -> DraftContent:
    if content.subject_override:
        return replace(content, subject=content.subject_override)
    articles = [from_snapshot(entry.article) for entry in content.included]
    return replace(content, subject=issue_subject(config, digest, articles, number, content.issue_date))


def _find(entries: list[DraftArticle], article_id: str, record: DraftRecord) -> int:
    try:
        return _index(entries, article_id)
    except ValueError:
        known = ", ".join(entry.id for entry in entries) or "none"
        raise DraftEditError(
            f"{record.label} has no article with id {article_id!r} (its ids: {known}); "
            f"see `newsletter draft {record.digest}`"
        ) from None


def _index(entries: list[DraftArticle], article_id: str) -> int:
    for index, entry in enumerate(entries):
        if entry.id == article_id:
            return index
    raise ValueError(article_id)


def _pinned(entries: list[DraftArticle], article_id: str, record: DraftRecord) -> list[DraftArticle]:
    """The article first and pinned (an excluded one is included again); no other pinned."""
    entry = entries.pop(_find(entries, article_id, record))
    rest = [replace(other, pinned=False) for other in entries]
    return [replace(entry, pinned=True, excluded=False), *rest]


def _moved(entries: list[DraftArticle], article_id: str, position: int, record: DraftRecord) -> list[DraftArticle]:
    index = _find(entries, article_id, record)
    entry = entries[index]
    if entry.excluded:
        raise DraftEditError(f"--move {article_id}:{position}: the article is excluded; --include it first")
    carried = [e for e in entries if not e.excluded]
    if not 1 <= position <= len(carried):
        raise DraftEditError(
            f"--move {article_id}:{position}: position out of range; {record.label} carries "
            f"{_count(len(carried), 'article')}, positions 1 to {len(carried)}"
        )
    pinned = next((e for e in carried if e.pinned), None)
    if pinned is not None and (position == 1) != (entry.id == pinned.id):
        raise DraftEditError(
            f"--move {article_id}:{position}: {pinned.id} is pinned to position 1; "
            "--unpin it first, or --pin another article"
        )
    rest = entries[:index] + entries[index + 1 :]
    target = [e for e in rest if not e.excluded]
    if position > len(target):  # last: after the last carried article
        at = _index(rest, target[-1].id) + 1 if target else len(rest)
    else:
        at = _index(rest, target[position - 1].id)
    return rest[:at] + [entry] + rest[at:]


def _name(entry: DraftArticle) -> str:
    return f"{entry.id} ({entry.article['title']})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
