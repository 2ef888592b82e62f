"""The review mail: a digest's draft mailed to its reviewers, exactly as subscribers will
see it, below a banner that lists its articles and carries an Approve link.

Each reviewer's link (`/approve/TOKEN`, served by web_approve.py) is signed over the
digest, the draft's number, the content hash of the version mailed, and the reviewer:
it approves that version only, and names who approved. A mail for a version after an
earlier review mail lists what changed since (from the draft's history). The same mail,
headed "not sent", tells the reviewers that a scheduled send waits for their approval.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from . import tokens
from .config import Config, DigestSettings
from .drafting import draft_issue
from .errors import ConfigError, NotFound
from .notices import NoticeReport, build_notice, send_notices
from .render import render_issue, render_template, template_environment
from .store import Store
from .store.drafts import DraftRecord, changes_since_review

BANNER_HTML = "review_banner.html.j2"
BANNER_TEXT = "review_banner.txt.j2"
SUBJECT_PREFIX = "[DRAFT] "
WAITING_PREFIX = "[DRAFT] Not sent, waiting for approval: "

_BODY_TAG = re.compile(r"<body\b[^>]*>", re.I)


def approve_url(config: Config, record: DraftRecord, reviewer: str) -> str:
    token = tokens.make_approve_token(
        config.token_secret, record.digest, record.number, record.content_hash, reviewer
    )
    return f"{config.newsletter.base_url.rstrip('/')}/approve/{token}"


def send_review(
    config: Config,
    store: Store,
    digest: DigestSettings,
    *,
    actor: str,
    send_at: datetime | None = None,
    waiting_until: datetime | None = None,
) -> NoticeReport:
    """Mail the digest's current draft to each of its reviewers over one connection.

    `send_at`: when the scheduler will send it; `waiting_until`: the scheduled send did
    not happen for want of approval, and an approval until then still sends it. The
    version mailed is noted in the draft's history. ConfigError without reviewers,
    NotFound without a draft, DeliveryError when the server cannot be reached.
    """
    if not digest.reviewers:
        raise ConfigError(
            f"{config.path}: [digests.{digest.name}] has no reviewers; add "
            'reviewers = ["editor@example.org"] to mail its draft for review'
        )
    record = store.drafts.current(digest.name)
    if record is None:
        raise NotFound(f"{digest.name} has no draft to review; compose one with `newsletter draft {digest.name}`")
    rendered = render_issue(config, digest, draft_issue(config, record))
    changes = changes_since_review(store.drafts.history(record.id)) if record.reviewed_hash else []
    env = template_environment(config)
    issue_html = rendered.markers.neutral(rendered.html, escape_html=True)
    issue_text = rendered.markers.neutral(rendered.text, escape_html=False)
    prefix = SUBJECT_PREFIX if waiting_until is None else WAITING_PREFIX
    tz = config.newsletter.tz

    def messages() -> Iterator[tuple[str, bytes]]:
        for reviewer in digest.reviewers:
            context: dict[str, Any] = {
                "newsletter": {"name": config.newsletter.name},
                "draft": record,
                "articles": record.content.included,
                "excluded": record.content.excluded,
                "changes": changes,
                "approval_required": digest.approval == "required",
                "approve_url": approve_url(config, record, reviewer),
                "send_at": send_at.astimezone(tz) if send_at else None,
                "waiting_until": waiting_until.astimezone(tz) if waiting_until else None,
            }
            banner_html = render_template(env, BANNER_HTML, context)
            banner_text = render_template(env, BANNER_TEXT, context)
            yield reviewer, build_notice(
                config,
                to=reviewer,
                subject=prefix + record.content.subject,
                text=banner_text + "\n" + issue_text,
                html=below_body(issue_html, banner_html),
            )

    report = send_notices(config, messages())
    if report.sent:
        what = "review mail" if waiting_until is None else "not-sent mail (waiting for approval)"
        store.drafts.mark_reviewed(record, report.sent, actor=actor, what=what)
    return report


def review_again(
    config: Config, store: Store, digest: DigestSettings, record: DraftRecord, *, actor: str
) -> NoticeReport | None:
    """After a refresh or an edit: when the reviewers were mailed an earlier version of
    this draft, mail them this one (saying what changed); else nothing (None)."""
    if not digest.reviewers or record.reviewed_hash in (None, record.content_hash):
        return None
    return send_review(config, store, digest, actor=actor)


def below_body(document: str, banner: str) -> str:
    """The banner as the first thing in the document's body."""
    match = _BODY_TAG.search(document)
    if match is None:
        return banner + document
    return document[: match.end()] + banner + document[match.end() :]
