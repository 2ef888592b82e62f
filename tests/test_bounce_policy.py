"""The bounce policy (store/bounces.py): hard and soft limits, soft bounces once a day, a
complaint, a mailto unsubscribe, duplicates, undo, forget; a 5xx at send time. On SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from newsletter.config import BounceSettings
from newsletter.store import Store
from newsletter.store.bounces import BOUNCE, COMPLAINT, HARD, SOFT, UNSUBSCRIBE, MemberEvent
from newsletter.store.issues import ArticleEntry, IssueRecord
from newsletter.errors import NotFound
from newsletter.store.records import BOUNCED, CONFIRMED, UNSUBSCRIBED, ImportReport, ImportRow
from smtp_server import subscribe

BACKENDS = ("sqlite", "postgres")

# After the members joined (only bounces since a member was confirmed count).
NOW = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def store(database_url: str) -> Store:
    store = Store(database_url, bounce_policy=BounceSettings(hard_limit=1, soft_limit=3, soft_days=10))
    store.lists.create("weekly")
    subscribe(store, "weekly", [("ann@example.org", "Ann"), ("ben@example.org", "Ben")])
    return store


def record_issue(store: Store, number: int = 1) -> IssueRecord:
    weekly = store.lists.get("weekly")
    return store.issues.record(
        digest="weekly", number=number, list_id=weekly.id, subject=f"#{number}", html="<p>x</p>",
        text="x", articles=[ArticleEntry(f"a{number}", "A", None, frozenset())], created_at=NOW, marker_nonce=None,
    )


def event(store: Store, email: str, kind: str = BOUNCE, severity: str | None = HARD, **extra: object) -> MemberEvent:
    subscriber = store.subscribers.get(email)
    weekly = store.lists.get("weekly")
    fields: dict = {"severity": severity, "status": "5.1.1" if severity == HARD else "4.2.2",
                    "diagnostic": "550 5.1.1 no such user", "source": "test"} | extra
    return MemberEvent(kind, subscriber.id, weekly.id, **fields)


def status_of(store: Store, email: str) -> str:
    subscriber = store.subscribers.get(email)
    membership = store.memberships.get(subscriber.id, store.lists.get("weekly").id)
    assert membership is not None
    return membership.status


def test_a_hard_bounce_sets_bounced_and_records_why(store: Store) -> None:
    issue = record_issue(store)
    applied = store.bounces.apply(event(store, "ann@example.org", issue_id=issue.id), now=NOW)
    assert applied.changed and applied.action == "bounced on weekly (hard bounce 1 of 1)"
    assert status_of(store, "ann@example.org") == BOUNCED
    assert status_of(store, "ben@example.org") == CONFIRMED
    assert store.subscribers.get("ann@example.org").bounces == 1
    [recent] = store.bounces.recent()
    assert (recent.kind, recent.severity, recent.email, recent.list_slug, recent.issue, recent.status) == (
        "bounce", "hard", "ann@example.org", "weekly", "weekly #1", "5.1.1"
    )
    assert recent.diagnostic == "550 5.1.1 no such user" and recent.at == NOW
    logged = store.events.for_subscriber(store.subscribers.get("ann@example.org").id)[-1]
    assert logged["kind"] == "bounced" and logged["detail"]["issue_id"] == issue.id
    assert logged["detail"]["status"] == "5.1.1"
    assert store.issues.recipient_count(store.lists.get("weekly").id) == 1  # never mailed again


def test_soft_bounces_count_once_a_day_and_bounce_at_the_limit_within_soft_days(store: Store) -> None:
    ann = "ann@example.org"
    actions = [
        store.bounces.apply(event(store, ann, severity=SOFT), now=NOW).action,
        store.bounces.apply(event(store, ann, severity=SOFT), now=NOW + timedelta(hours=5)).action,
        store.bounces.apply(event(store, ann, severity=SOFT), now=NOW + timedelta(days=2)).action,
    ]
    assert actions == [
        "counted: soft bounce in 10 days 1 of 3 on weekly",
        "none: a soft bounce on weekly was already counted today",
        "counted: soft bounce in 10 days 2 of 3 on weekly",
    ]
    assert status_of(store, ann) == CONFIRMED
    # The first one falls out of the 10 days: still 2 of 3.
    late = store.bounces.apply(event(store, ann, severity=SOFT), now=NOW + timedelta(days=10, hours=2))
    assert late.action == "counted: soft bounce in 10 days 2 of 3 on weekly"
    third = store.bounces.apply(event(store, ann, severity=SOFT), now=NOW + timedelta(days=11, hours=3))
    assert third.action == "bounced on weekly (soft bounce in 10 days 3 of 3)"
    assert status_of(store, ann) == BOUNCED
    assert store.subscribers.get(ann).bounces == 4  # counted ones, not the one of the same day


def test_the_same_message_processed_twice_counts_once(store: Store) -> None:
    first = store.bounces.apply(event(store, "ann@example.org", severity=SOFT, fingerprint="msg:1"), now=NOW)
    again = store.bounces.apply(
        event(store, "ann@example.org", severity=SOFT, fingerprint="msg:1"), now=NOW + timedelta(days=2)
    )
    assert first.changed and not again.changed
    assert again.action == "none: this message was processed before"
    assert len(store.bounces.recent()) == 1 and store.subscribers.get("ann@example.org").bounces == 1


def test_resubscribing_a_bounced_member_starts_afresh(store: Store) -> None:
    store.bounces.apply(event(store, "ann@example.org"))  # now, before the resubscription
    result = store.subscribers.add("ann@example.org", "weekly")
    assert (result.previous_status, result.status) == (BOUNCED, CONFIRMED)
    # Old bounces no longer count: the next hard bounce is 1 of 1 again, not 2.
    applied = store.bounces.apply(event(store, "ann@example.org"), now=NOW + timedelta(days=1))
    assert applied.action == "bounced on weekly (hard bounce 1 of 1)"


def test_an_import_does_not_bring_a_bounced_member_back_nor_does_an_old_confirm_link(store: Store) -> None:
    store.bounces.apply(event(store, "ann@example.org"), now=NOW)
    report = ImportReport(file="old.csv", list_slug="weekly", dry_run=False)
    store.subscribers.import_rows(
        [ImportRow(2, "ann@example.org", "Ann", CONFIRMED, False, None, {})], report, list_slug="weekly", source="test"
    )
    assert report.skipped == [(2, "ann@example.org", "bounced on weekly; an import does not resubscribe "
                                                    "(`newsletter subscribers add` does)")]
    assert status_of(store, "ann@example.org") == BOUNCED
    # A double opt-in member keeps the link's token once confirmed; a bounce voids it.
    doi = store.lists.create("doi", double_opt_in=True)
    joined = store.subscribers.add("cy@example.org", "doi")
    assert joined.confirm_token is not None
    store.memberships.confirm(joined.subscriber_id, doi.id, joined.confirm_token)
    store.bounces.apply(MemberEvent(BOUNCE, joined.subscriber_id, doi.id, "test", severity=HARD), now=NOW)
    with pytest.raises(NotFound):
        store.memberships.confirm(joined.subscriber_id, doi.id, joined.confirm_token)


def test_a_complaint_unsubscribes_and_blocks_and_unblock_undoes_the_block(store: Store) -> None:
    issue = record_issue(store)
    applied = store.bounces.apply(event(store, "ben@example.org", kind=COMPLAINT, severity=None, status=None,
                                        diagnostic=None, issue_id=issue.id), now=NOW)
    assert applied.action == "unsubscribed from weekly and blocked"
    assert status_of(store, "ben@example.org") == UNSUBSCRIBED
    [block] = store.suppressions.all()
    assert (block.kind, block.value, block.reason) == (
        "address", "ben@example.org", "complaint (spam report) about weekly #1"
    )
    assert store.suppressions.unblock("ben@example.org")
    assert store.subscribers.add("ben@example.org", "weekly").status == CONFIRMED


def test_a_mailto_unsubscribe_leaves_the_list_only(store: Store) -> None:
    applied = store.bounces.apply(event(store, "ben@example.org", kind=UNSUBSCRIBE, severity=None), now=NOW)
    assert applied.action == "unsubscribed from weekly"
    assert status_of(store, "ben@example.org") == UNSUBSCRIBED and store.suppressions.all() == []
    again = store.bounces.apply(event(store, "ben@example.org", kind=UNSUBSCRIBE, severity=None), now=NOW)
    assert again.action == "none: already unsubscribed from weekly"


def test_a_bounce_of_someone_who_left_counts_but_changes_no_status(store: Store) -> None:
    store.memberships.unsubscribe("ann@example.org", "weekly", source="test")
    applied = store.bounces.apply(event(store, "ann@example.org"), now=NOW)
    assert applied.action == "counted; not a confirmed member of weekly (unsubscribed)"
    assert status_of(store, "ann@example.org") == UNSUBSCRIBED


def test_forget_erases_the_address_and_diagnostic_of_bounce_events(store: Store) -> None:
    store.bounces.apply(event(store, "ann@example.org", diagnostic="550 <ann@example.org>: unknown"), now=NOW)
    store.subscribers.forget("ann@example.org", secret=b"s")
    [recent] = store.bounces.recent()
    assert (recent.email, recent.diagnostic, recent.action) == (None, None, "bounced on weekly (hard bounce 1 of 1)")


def test_a_5xx_at_send_time_is_a_hard_bounce_with_the_reply_kept(store: Store) -> None:
    from newsletter.store.ledger import FAILED, Outcome

    issue = record_issue(store)
    owner = "test-sender"
    store.ledger.join(issue.id, owner, datetime.now(timezone.utc) + timedelta(minutes=5), lambda _: False)
    claim = store.ledger.claim(issue.id, issue.list_id, owner, datetime.now(timezone.utc) + timedelta(minutes=5), 10)
    assert claim is not None
    ann = next(d for d in claim.deliveries if d.email == "ann@example.org")
    reply = "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown"
    store.ledger.record_outcomes(owner, [Outcome(ann.id, FAILED, ann.subscriber_id, error=reply, bounce=True)])
    assert status_of(store, "ann@example.org") == BOUNCED
    [recent] = store.bounces.recent()
    assert (recent.source, recent.status, recent.diagnostic, recent.issue) == ("send", "5.1.1", reply, "weekly #1")
    lines = store.issues.deliveries(issue.id, FAILED)
    assert [(line.email, line.reply) for line in lines] == [("ann@example.org", reply)]
