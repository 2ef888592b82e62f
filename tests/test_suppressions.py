"""The suppression rule's two forms agree: `address_suppressed` (SQL, choosing recipients
and checking claims) and `SuppressionLookup` (Python, for adds and imports)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, literal, select

from newsletter.store import Store
from newsletter.store.records import SUPPRESS_ADDRESS, SUPPRESS_DOMAIN
from newsletter.store.schema import suppressions
from newsletter.store.suppressions import SuppressionLookup, address_suppressed

BACKENDS = ("sqlite", "postgres")

labels = st.sampled_from(["a", "b", "mail", "xn--bcher-kva", "bücher", "ex-ample", "co"])
domains = st.lists(labels, min_size=1, max_size=3).map(".".join)
locals_ = st.sampled_from(["ann", "bob", "a.b", "x+tag", "o'neil"])
keys = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blocked_addresses=st.lists(keys, max_size=4, unique=True),
    blocked_domains=st.lists(domains, max_size=4, unique=True),
    candidates=st.lists(keys, min_size=1, max_size=8, unique=True),
)
def test_the_sql_and_python_forms_of_the_rule_agree(
    store: Store, blocked_addresses: list[str], blocked_domains: list[str], candidates: list[str]
) -> None:
    with store.write() as conn:
        conn.execute(delete(suppressions))
        rows = [{"kind": SUPPRESS_ADDRESS, "value": key, "reason": ""} for key in blocked_addresses]
        rows += [{"kind": SUPPRESS_DOMAIN, "value": domain, "reason": ""} for domain in blocked_domains]
        if rows:
            conn.execute(insert(suppressions), rows)
        by_python = set(SuppressionLookup(conn, None).reasons(candidates))
        by_sql = {
            key for key in candidates
            if conn.execute(select(address_suppressed(literal(key)))).scalar()
        }
    assert by_sql == by_python
    expected = {
        key for key in candidates
        if key in blocked_addresses or key.rpartition("@")[2] in blocked_domains
    }
    assert by_python == expected


def test_a_domain_block_is_exact(store: Store) -> None:
    store.lists.create("weekly")
    for email in ("a@example.com", "b@mail.example.com", "c@notexample.com"):
        store.subscribers.add(email, "weekly")
    store.suppressions.block("@example.com")
    assert [s.email for s in store.subscribers.listing(status="blocked")] == ["a@example.com"]
