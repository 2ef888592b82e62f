"""The store's lists, subscribers, memberships, suppressions and events, on real SQLite."""

from __future__ import annotations


import pytest
from sqlalchemy import func, insert, select

from newsletter import tokens
from newsletter.errors import AddressError, NotFound, StoreError
from newsletter.store import Store
from newsletter.store.records import MembershipInfo
from newsletter.store.schema import deliveries, events, issues, memberships, subscribers, suppressions
from newsletter.store.issues import deliverable

BACKENDS = ("sqlite", "postgres")

SECRET = b"test-secret"


@pytest.fixture
def store(database_url: str) -> Store:
    store = Store(database_url)
    store.lists.create("weekly", "Weekly")
    store.lists.create("doi", "Confirmed reading", double_opt_in=True)
    return store


def count(store: Store, table: object, *where: object) -> int:
    with store.write() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()  # type: ignore[arg-type]


def recipients(store: Store, slug: str) -> list[str]:
    with store.write() as conn:
        return [row.email for row in conn.execute(deliverable(store.lists.get(slug).id))]


# -- lists ---------------------------------------------------------------------------------


def test_a_list_is_created_read_back_and_summarized(store: Store) -> None:
    record = store.lists.create("daily", description="Every morning")
    assert (record.slug, record.name, record.description, record.double_opt_in) == (
        "daily", "daily", "Every morning", False
    )
    assert record.created_at.tzinfo is not None
    assert store.lists.get("daily") == record == store.lists.get_by_id(record.id)
    assert [s.list.slug for s in store.lists.all()] == ["daily", "doi", "weekly"]


def test_duplicate_malformed_and_missing_slugs_are_one_line_errors(store: Store) -> None:
    with pytest.raises(StoreError) as duplicate:
        store.lists.create("weekly")
    assert str(duplicate.value) == (
        "list 'weekly' already exists; pick another slug "
        "(or remove it first with `newsletter lists rm weekly`)"
    )
    with pytest.raises(StoreError, match="^invalid list slug 'Bad Slug'"):
        store.lists.create("Bad Slug")
    with pytest.raises(NotFound) as missing:
        store.lists.get("monthly")
    assert str(missing.value) == "no list 'monthly'; create it with `newsletter lists add monthly`"


def test_removing_a_list_drops_its_memberships_but_keeps_subscribers(store: Store) -> None:
    store.subscribers.add("a@example.org", "weekly")
    store.subscribers.add("a@example.org", "doi")
    assert store.lists.summary("weekly").counts == {"confirmed": 1}
    assert store.lists.remove("weekly") == 1
    assert store.subscribers.get("a@example.org").email == "a@example.org"
    assert [s.list.slug for s in store.lists.all()] == ["doi"]


def test_a_list_with_issues_in_its_history_cannot_be_removed(store: Store) -> None:
    with store.write() as conn:
        conn.execute(
            insert(issues).values(
                digest="weekly", number=1, list_id=store.lists.get("weekly").id,
                subject="s", html="h", text="t",
            )
        )
    with pytest.raises(StoreError, match="^list 'weekly' has 1 issue"):
        store.lists.remove("weekly")


# -- adding and confirming -------------------------------------------------------------------


def test_single_opt_in_members_are_confirmed_and_double_opt_in_ones_wait(store: Store) -> None:
    single = store.subscribers.add("Ann@Example.org", "weekly", "Ann")
    double = store.subscribers.add("ann@example.org", "doi")
    assert (single.email, single.status, single.confirm_token, single.previous_status) == (
        "Ann@example.org", "confirmed", None, None
    )
    assert double.subscriber_id == single.subscriber_id  # case-insensitive: one person
    assert double.email == "Ann@example.org"  # the address keeps its first spelling
    assert double.status == "unconfirmed" and double.confirm_token
    assert recipients(store, "doi") == []
    again = store.subscribers.add("ANN@example.org", "doi")
    assert again.confirm_token == double.confirm_token and not again.changed


def test_confirmed_flag_records_consent_given_elsewhere(store: Store) -> None:
    result = store.subscribers.add("b@example.org", "doi", confirmed=True)
    assert result.status == "confirmed" and result.confirm_token is None
    assert recipients(store, "doi") == ["b@example.org"]


def test_a_confirmation_link_confirms_once_and_dies_with_an_unsubscribe(store: Store) -> None:
    added = store.subscribers.add("c@example.org", "doi", source="web", ip="192.0.2.7")
    token = added.confirm_token or ""
    other = store.subscribers.add("d@example.org", "doi")
    with pytest.raises(NotFound):  # a token confirms only the membership it belongs to
        store.memberships.confirm(other.subscriber_id, other.list_id, token)
    info = store.memberships.confirm(added.subscriber_id, added.list_id, token, ip="192.0.2.8")
    assert info == MembershipInfo(added.subscriber_id, added.list_id, "doi", "Confirmed reading",
                                  "c@example.org", "confirmed")
    assert store.memberships.confirm(added.subscriber_id, added.list_id, token) == info  # idempotent
    assert recipients(store, "doi") == ["c@example.org"]
    store.memberships.unsubscribe("c@example.org", "doi", source="cli")
    with pytest.raises(NotFound, match="unknown or no longer valid"):
        store.memberships.confirm(added.subscriber_id, added.list_id, token)
    log = [(e["kind"], e["source"], e["ip"]) for e in store.events.for_subscriber(added.subscriber_id)]
    assert log == [
        ("subscribed", "web", "192.0.2.7"),
        ("confirmed", "web", "192.0.2.8"),
        ("unsubscribed", "cli", None),
    ]


def test_unsubscribing_by_address_or_by_ids_is_idempotent(store: Store) -> None:
    result = store.subscribers.add("d@example.org", "weekly")
    store.subscribers.add("d@example.org", "doi", confirmed=True)
    assert store.memberships.unsubscribe("D@example.org", "weekly", source="cli") == ["weekly"]
    assert store.memberships.unsubscribe("d@example.org", "weekly", source="cli") == []
    assert store.memberships.unsubscribe("d@example.org", None, source="cli") == ["doi"]
    assert store.memberships.unsubscribe_member(result.subscriber_id, result.list_id, source="web") is False
    assert store.memberships.resubscribe(result.subscriber_id, result.list_id, source="web").status == "confirmed"
    assert store.memberships.unsubscribe_member(result.subscriber_id, result.list_id, source="web") is True
    assert store.memberships.unsubscribe_member(999, result.list_id, source="web") is False
    with pytest.raises(NotFound, match="^no subscriber nobody@example.org"):
        store.memberships.unsubscribe("nobody@example.org", None, source="cli")
    with pytest.raises(AddressError):
        store.memberships.unsubscribe("not an address", None, source="cli")


def test_adding_again_after_an_unsubscribe_resubscribes(store: Store) -> None:
    store.subscribers.add("e@example.org", "weekly")
    store.memberships.unsubscribe("e@example.org", "weekly", source="cli")
    again = store.subscribers.add("e@example.org", "weekly", name="Eve")
    assert (again.previous_status, again.status) == ("unsubscribed", "confirmed")
    assert store.subscribers.get("e@example.org").name == "Eve"


# -- suppression -----------------------------------------------------------------------------


def test_blocked_addresses_and_domains_are_never_recipients(store: Store) -> None:
    for email in ("keep@example.org", "spam@spam.example", "x@mail.spam.example", "bad@example.org"):
        store.subscribers.add(email, "weekly")
    store.suppressions.block("Bad@Example.org", "asked by phone")
    store.suppressions.block("@Spam.Example")
    assert recipients(store, "weekly") == ["keep@example.org", "x@mail.spam.example"]
    assert store.suppressions.is_suppressed("someone@spam.example")
    assert not store.suppressions.is_suppressed("someone@mail.spam.example")  # exact domain only
    with pytest.raises(StoreError, match="^new@spam.example is blocked"):
        store.subscribers.add("new@spam.example", "weekly")
    assert store.suppressions.block("@spam.example").value == "spam.example"  # idempotent
    assert store.suppressions.unblock("bad@example.org") is True
    assert store.suppressions.unblock("bad@example.org") is False
    assert recipients(store, "weekly") == ["keep@example.org", "x@mail.spam.example", "bad@example.org"]


def test_listing_shows_blocked_and_filters_by_status(store: Store) -> None:
    store.subscribers.add("f@example.org", "weekly", "F")
    store.subscribers.add("g@example.org", "doi")
    store.subscribers.add("h@example.org", "weekly")
    store.suppressions.block("h@example.org")
    shown = {item.email: (item.status, item.lists) for item in store.subscribers.listing()}
    assert shown == {
        "f@example.org": ("confirmed", ["weekly"]),
        "g@example.org": ("unconfirmed", ["doi"]),
        "h@example.org": ("blocked", ["weekly"]),
    }
    assert [i.email for i in store.subscribers.listing("weekly", "confirmed")] == ["f@example.org"]
    assert [i.email for i in store.subscribers.listing(status="blocked")] == ["h@example.org"]
    assert [i.email for i in store.subscribers.listing("doi")] == ["g@example.org"]


def test_forget_erases_the_person_and_keeps_only_a_keyed_hash(store: Store) -> None:
    added = store.subscribers.add("Fay@example.org", "weekly", "Fay", source="web", ip="192.0.2.1")
    store.suppressions.block("fay@example.org")
    with store.write() as conn:
        issue_id = conn.execute(
            insert(issues).values(digest="weekly", number=1, list_id=added.list_id,
                                  subject="s", html="h", text="t")
        ).inserted_primary_key[0]
        conn.execute(insert(deliveries).values(issue_id=issue_id, subscriber_id=added.subscriber_id,
                                               email="Fay@example.org", status="sent"))
    assert store.subscribers.forget("fay@EXAMPLE.org", secret=SECRET) is True
    assert store.subscribers.get_by_id(added.subscriber_id) is None
    assert count(store, memberships) == 0
    assert count(store, events, events.c.email.is_not(None)) == 0
    assert count(store, events, events.c.ip.is_not(None)) == 0
    with store.write() as conn:
        assert conn.execute(select(deliveries.c.email, deliveries.c.subscriber_id)).one() == (None, None)
        kept = conn.execute(select(suppressions.c.kind, suppressions.c.value)).all()
    assert kept == [("forgotten", tokens.keyed_hash(SECRET, "fay@example.org"))]
    with pytest.raises(StoreError, match="^fay@example.org is forgotten"):
        store.subscribers.add("fay@example.org", "weekly", secret=SECRET)
    with pytest.raises(StoreError, match="forgotten address.*token secret"):
        store.subscribers.add("other@example.org", "weekly")  # no secret: cannot tell, refuse
    assert store.suppressions.unblock("fay@example.org", secret=SECRET) is True
    assert store.subscribers.add("fay@example.org", "weekly", secret=SECRET).status == "confirmed"


def test_listing_pages_through_more_than_one_page(store: Store) -> None:
    with store.write() as conn:
        conn.execute(
            insert(subscribers),
            [{"email": f"p{i}@example.org", "email_key": f"p{i}@example.org"} for i in range(2500)],
        )
    emails = [item.email for item in store.subscribers.listing()]
    assert len(emails) == 2500 and emails[0] == "p0@example.org" and emails[-1] == "p2499@example.org"
