"""One inbound message, start to end: classify it, find its delivery, apply the policy.

The same function serves every way in: files and stdin (`inbound process`), IMAP
(`inbound fetch`, and `newsletter run`), LMTP (`inbound receive`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import Any

from ..config import Config
from ..store import Store
from ..store.bounces import MemberEvent
from .classify import BOUNCE, Finding, classify, parse
from .match import Match, NoMatch, find

UNKNOWN = "unknown"
# Headers that tell whom a message was delivered to, when the envelope does not say.
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass(frozen=True)
class Processed:
    """What became of one message (a line of `inbound process`, an element of its --json)."""

    file: str
    kind: str  # bounce | complaint | unsubscribe | autoreply | unknown
    recipient: str | None  # the subscriber's address it concerns
    status: str | None  # the DSN status code
    action: str  # what was done ("none: ..." when nothing)
    severity: str | None = None
    diagnostic: str | None = None
    matched_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "recipient": self.recipient,
            "status": self.status,
            "action": self.action,
            "severity": self.severity,
            "diagnostic": self.diagnostic,
            "matched_by": self.matched_by,
        }

    def line(self) -> str:
        what = self.kind if self.severity is None else f"{self.severity} {self.kind}"
        about = f" for {self.recipient}" if self.recipient else ""
        status = f" ({self.status})" if self.status else ""
        return f"{self.file}: {what}{about}{status}: {self.action}"


def process_message(
    config: Config, store: Store, raw: bytes, *, name: str, source: str, recipient: str | None = None
) -> Processed:
    """Classify, match and apply one message; never raises for what the message holds
    (a StoreError, the database failing, does propagate: the message is then not done)."""
    message = parse(raw)
    finding = classify(message)
    if finding.kind not in (BOUNCE, "complaint", "unsubscribe"):
        return Processed(name, finding.kind, None, None, f"none: {finding.note}")
    arrived_at = [recipient] if recipient else _delivered_to(message)
    found = find(config, store, finding, arrived_at)
    if isinstance(found, NoMatch):
        return Processed(name, UNKNOWN, None, None, f"none: {finding.note}; {found.reason}")
    event = _event(finding, found, source, _fingerprint(finding, raw, found))
    applied = store.bounces.apply(event)
    return Processed(
        name,
        finding.kind,
        applied.email or found.ref.email,
        event.status,
        applied.action,
        severity=event.severity,
        diagnostic=event.diagnostic,
        matched_by=found.how,
    )


def _event(finding: Finding, found: Match, source: str, fingerprint: str) -> MemberEvent:
    report = found.report
    is_bounce = finding.kind == BOUNCE
    return MemberEvent(
        kind=finding.kind,
        subscriber_id=found.ref.subscriber_id,
        list_id=found.ref.list_id,
        source=source,
        issue_id=found.ref.issue_id,
        severity=report.severity if is_bounce and report is not None else None,
        status=report.status if report is not None else None,
        diagnostic=report.diagnostic if report is not None else None,
        fingerprint=fingerprint,
    )


def _fingerprint(finding: Finding, raw: bytes, found: Match) -> str:
    """Names the message and what it is about: the same message processed again (from a
    file, IMAP or LMTP, whatever headers were added on the way) gives the same value."""
    if finding.message_id:
        identity = "id:" + finding.message_id
    else:
        body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
        identity = "body:" + hashlib.sha256(body).hexdigest()
    ref = found.ref
    text = f"{identity}|{finding.kind}|{ref.subscriber_id}|{ref.list_id}"
    return "msg:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _delivered_to(message: Message) -> list[str]:
    found: list[str] = []
    for name in _DELIVERED_TO:
        try:
            values = [str(value) for value in message.get_all(name) or []]
        except Exception:  # noqa: BLE001  (a malformed header is as good as none)
            continue
        found += [address for _, address in getaddresses(values) if "@" in address]
    return found
