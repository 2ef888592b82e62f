"""Which delivery an inbound message is about, trusting only what the message proves.

In this order, the first that applies decides:

1. An unsubscribe: the signed token of our List-Unsubscribe mailto link (subject
   "unsubscribe TOKEN") names the subscriber and the list.
2. The VERP token in the address the message came to (`bounces+TOKEN@...`), or in the
   Return-Path of the original a report returns. A token whose signature does not match
   is forged: the message matches nothing, whatever else it says.
3. The DSN's Original-Envelope-Id, which carries the same signed token (ENVID).
4. The returned original's Message-ID, which names the issue (digest, number and the
   second it was made) and the delivery; the report must name that delivery's address,
   when it names any.
5. A complaint: the signed unsubscribe link in the original's List-Unsubscribe.
6. A bounce: its Final-Recipient (or Original-Recipient, X-Failed-Recipients, or the
   address a non-standard bounce names) against the newest delivery sent to that
   address within [bounces].soft_days.

Nothing matched: the message is `unknown` and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .. import addresses
from ..config import Config
from ..errors import AddressError
from ..message import envelope_address, issue_label, message_id_prefix
from ..store import Store
from ..store.bounces import DeliveryRef
from ..store.schema import utcnow
from ..tokens import UNSUBSCRIBE, BadToken, read_token, read_verp_token
from ..verp import verp_token_of
from .classify import BOUNCE, COMPLAINT, Finding, RecipientReport

_MESSAGE_ID = re.compile(r"<?([^<>@\s]+)\.(\d{1,18})@([^<>@\s]+)>?")
_UNSUBSCRIBE_URL = re.compile(r"/u/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Match:
    ref: DeliveryRef
    how: str  # what proved it
    report: RecipientReport | None  # the DSN recipient it concerns, when there is one


@dataclass(frozen=True)
class NoMatch:
    reason: str


def find(config: Config, store: Store, finding: Finding, arrived_at: list[str]) -> Match | NoMatch:
    """The delivery (or membership) `finding` is about; `arrived_at`: the addresses the
    message was delivered to (the envelope recipient first, when known)."""
    secret = config.token_secret
    if finding.unsubscribe_token is not None:
        return _by_unsubscribe_token(store, secret, finding.unsubscribe_token, "unsubscribe link", None)
    verp = _verp_token(config, finding, arrived_at)
    if verp is not None:
        try:
            claims = read_verp_token(secret, verp)
        except BadToken:
            return NoMatch(f"a forged or damaged VERP token ({verp[:40]})")
        return _delivery(store.bounces.delivery_of(claims.issue_id, claims.subscriber_id), "VERP token", finding)
    if finding.envelope_id:
        try:
            claims = read_verp_token(secret, finding.envelope_id.strip())
        except BadToken:
            pass  # another sender's envelope id: not a proof of anything here
        else:
            ref = store.bounces.delivery_of(claims.issue_id, claims.subscriber_id)
            return _delivery(ref, "Original-Envelope-Id", finding)
    matched = _by_message_id(config, store, finding)
    if matched is not None:
        return matched
    if finding.kind == COMPLAINT:
        token = _unsubscribe_url_token(finding.returned.list_unsubscribe)
        if token is not None:
            return _by_unsubscribe_token(store, secret, token, "List-Unsubscribe of the original", None)
        return NoMatch("a complaint that does not carry the original message")
    if finding.kind == BOUNCE:
        return _by_failed_recipient(config, store, finding)
    return NoMatch("nothing in it names a delivery")


def _verp_token(config: Config, finding: Finding, arrived_at: list[str]) -> str | None:
    bounce_address = config.delivery.bounce_address
    if bounce_address is None:
        return None
    candidates = list(arrived_at)
    if finding.returned.return_path:
        candidates.append(finding.returned.return_path)
    for address in candidates:
        token = verp_token_of(bounce_address, address)
        if token is not None:
            return token
    return None


def _delivery(ref: DeliveryRef | None, how: str, finding: Finding) -> Match | NoMatch:
    if ref is None:
        return NoMatch(f"the {how} names no delivery in this database")
    return Match(ref, how, _report_for(finding, ref.email) or _first(finding))


def _by_message_id(config: Config, store: Store, finding: Finding) -> Match | None:
    returned_id = finding.returned.message_id
    parsed = _MESSAGE_ID.fullmatch(returned_id.strip()) if returned_id else None
    if parsed is None:
        return None
    ref = store.bounces.delivery_by_id(int(parsed[2]))
    if ref is None or ref.digest is None or ref.number is None or ref.created_at is None:
        return None
    sender = envelope_address(addresses.mailbox_address(config.newsletter.from_).email)
    own_domain = sender.rpartition("@")[2]
    expected = message_id_prefix(issue_label(ref.digest, ref.number, ref.created_at))
    if not returned_id.strip().startswith(expected) or parsed[3].lower() != own_domain.lower():
        return None
    report = _report_for(finding, ref.email)
    if finding.recipients and report is None:
        return None  # our message, but the report is about someone else
    return Match(ref, "Message-ID of the original", report)


def _by_unsubscribe_token(
    store: Store, secret: bytes, token: str, how: str, report: RecipientReport | None
) -> Match | NoMatch:
    try:
        claims = read_token(secret, token, UNSUBSCRIBE)
    except BadToken:
        return NoMatch(f"the {how} carries a forged or damaged token")
    ref = store.bounces.membership(claims.subscriber_id, claims.list_id)
    if ref is None:
        return NoMatch(f"the {how} names no member of a list in this database")
    return Match(ref, how, report)


def _by_failed_recipient(config: Config, store: Store, finding: Finding) -> Match | NoMatch:
    since = utcnow() - timedelta(days=config.bounces.soft_days)
    for report in finding.recipients:
        for address in report.addresses:
            try:
                key = addresses.parse(address).key
            except AddressError:
                continue
            ref = store.bounces.last_sent_to(key, since)
            if ref is not None:
                return Match(ref, "failed recipient", report)
    named = ", ".join(r.address for r in finding.recipients) or "no address"
    return NoMatch(f"a bounce for {named}, to whom nothing was sent in the last {config.bounces.soft_days} days")


def _report_for(finding: Finding, email: str) -> RecipientReport | None:
    wanted = email.lower()
    for report in finding.recipients:
        if wanted in (address.lower() for address in report.addresses):
            return report
    return None


def _first(finding: Finding) -> RecipientReport | None:
    return finding.recipients[0] if finding.recipients else None


def _unsubscribe_url_token(header: str | None) -> str | None:
    found = _UNSUBSCRIBE_URL.search(header or "")
    return found[1] if found else None
