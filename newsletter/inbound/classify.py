"""What an incoming message is: a bounce, a complaint, an unsubscribe, an auto-reply, or unknown.

Read only from the message itself, never trusted further than it proves (matching it to a
delivery is match.py's job):

- a DSN (RFC 3464: multipart/report; report-type=delivery-status) is read with the
  standard library: per recipient its Action, Status, Final-/Original-Recipient and
  Diagnostic-Code, and per message its Original-Envelope-Id; 5.x.x is a hard bounce, 4.x.x
  (or Action: delayed) a soft one; a report that only says delivered or relayed is not;
- an ARF report (RFC 5965: report-type=feedback-report) with Feedback-Type abuse (or
  fraud, or a report without a type) is a complaint;
- a subject "unsubscribe TOKEN", as our List-Unsubscribe mailto link writes it, is an
  unsubscribe (the token is checked by match.py);
- anything else that flufl.bounce recognises (qmail, Exim, Exchange, Yahoo, old Postfix,
  ...) is a bounce without a status code: hard for its permanent failures, soft for its
  warnings; X-Failed-Recipients (Exim) names the address;
- RFC 3834 auto-replies (Auto-Submitted: auto-replied, vacation headers and subjects);
- else unknown.

The returned original (message/rfc822 or text/rfc822-headers) gives its Message-ID,
Return-Path and List-Unsubscribe. A malformed message never raises: what cannot be read
is left out, and a message with nothing readable is unknown.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from flufl.bounce import all_failures

from ..store.bounces import enhanced_status

BOUNCE = "bounce"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
AUTOREPLY = "autoreply"
UNKNOWN = "unknown"
HARD = "hard"
SOFT = "soft"

# Feedback types (RFC 5965, 6650) that mean "the recipient says this is spam".
COMPLAINT_TYPES = frozenset({"abuse", "fraud", ""})
DIAGNOSTIC_CHARS = 500
_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
    r"abwesenheitsnotiz|vacation|absence|r[ée]ponse automatique)",
    re.IGNORECASE,
)
_NOT_FAILED = ("delivered", "relayed", "expanded")
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")

# flufl.bounce logs every detector it runs at INFO: that is not news here.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)


@dataclass(frozen=True)
class RecipientReport:
    """One recipient of a DSN (or one address a non-standard bounce names)."""

    address: str
    severity: str  # hard | soft
    status: str | None
    diagnostic: str | None
    original: str | None = None  # a DSN's Original-Recipient, when it differs

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address,) if self.original in (None, self.address) else (self.address, self.original)  # type: ignore[return-value]


@dataclass(frozen=True)
class Returned:
    """What a bounce or a report carries of the original message."""

    message_id: str | None = None
    return_path: str | None = None
    list_unsubscribe: str | None = None


@dataclass(frozen=True)
class Finding:
    kind: str
    recipients: tuple[RecipientReport, ...] = ()
    envelope_id: str | None = None
    returned: Returned = field(default_factory=Returned)
    unsubscribe_token: str | None = None
    note: str = ""  # why it is what it is, for `unknown` above all
    message_id: str | None = None  # the incoming message's own


def parse(raw: bytes) -> Message:
    """The message as the email package reads it (compat32, as flufl.bounce expects)."""
    return message_from_bytes(raw, policy=compat32)


def classify(message: Message) -> Finding:
    """What `message` is (see the module docstring); never raises."""
    own_id = _header(message, "Message-ID")
    try:
        finding = _classify(message)
    except Exception as exc:  # noqa: BLE001  (hostile input: a parser bug must not escape)
        finding = Finding(UNKNOWN, note=f"unreadable ({type(exc).__name__})")
    return Finding(
        finding.kind,
        finding.recipients,
        finding.envelope_id,
        finding.returned,
        finding.unsubscribe_token,
        finding.note,
        own_id,
    )


def _classify(message: Message) -> Finding:
    if _first_part(message, "message/feedback-report") is not None:
        return _feedback_report(message)
    if _first_part(message, "message/delivery-status") is not None:
        finding = _delivery_status(message)
        if finding is not None:
            return finding
    token = _unsubscribe_token(message)
    if token is not None:
        return Finding(UNSUBSCRIBE, unsubscribe_token=token)
    finding = _non_standard_bounce(message)
    if finding is not None:
        return finding
    if _is_autoreply(message):
        return Finding(AUTOREPLY, note="an automatic reply (RFC 3834)")
    return Finding(UNKNOWN, note="not a bounce, complaint or unsubscribe")


# -- DSN (RFC 3464) ------------------------------------------------------------------


def _delivery_status(message: Message) -> Finding | None:
    """A DSN's failed and delayed recipients; None when it has no readable status part."""
    part = _first_part(message, "message/delivery-status")
    if part is None:
        return None
    payload = part.get_payload()
    blocks = [b for b in payload if isinstance(b, Message) and b.keys()] if isinstance(payload, list) else []
    if not blocks:
        return None
    per_message, per_recipient = blocks[0], blocks[1:]
    if not per_recipient and _header(per_message, "Final-Recipient"):
        per_message, per_recipient = Message(), blocks  # no per-message block
    reports: dict[str, RecipientReport] = {}
    delivered = 0
    for block in per_recipient:
        report = _recipient_report(block)
        if report is None:
            delivered += (_header(block, "Action") or "").lower() in _NOT_FAILED
        else:
            reports.setdefault(report.address.lower(), report)
    returned = _returned(message)
    envelope_id = _header(per_message, "Original-Envelope-Id")
    if not reports:
        if not delivered:
            return None  # nothing readable: perhaps flufl.bounce can read it
        return Finding(
            UNKNOWN, envelope_id=envelope_id, returned=returned,
            note="a delivery report without failures",
        )
    severity = HARD if any(r.severity == HARD for r in reports.values()) else SOFT
    return Finding(
        BOUNCE,
        tuple(reports.values()),
        envelope_id,
        returned,
        note=f"a DSN ({severity})",
    )


def _recipient_report(block: Message) -> RecipientReport | None:
    """A failed or delayed recipient; None for delivered, relayed or expanded ones."""
    action = (_header(block, "Action") or "").lower()
    original = _address_field(_header(block, "Original-Recipient"))
    address = _address_field(_header(block, "Final-Recipient")) or original
    if not address or action in _NOT_FAILED:
        return None
    diagnostic = _header(block, "Diagnostic-Code")
    if diagnostic:
        diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
    status_field = _header(block, "Status")
    status = (
        enhanced_status(status_field)
        or enhanced_status(diagnostic)
        or _status_class(status_field)
        or _status_class(diagnostic)
    )
    if status is None:
        status = "4.0.0" if action == "delayed" else "5.0.0" if action.startswith("fail") else None
    if status is None or status.startswith("2"):
        return None
    severity = SOFT if status.startswith("4") or action == "delayed" else HARD
    return RecipientReport(address, severity, status, _short(diagnostic), original)


# -- ARF (RFC 5965) ------------------------------------------------------------------


def _feedback_report(message: Message) -> Finding:
    part = _first_part(message, "message/feedback-report")
    fields: Message | None = None
    if part is not None:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            fields = payload[0]
        elif isinstance(payload, str):
            fields = message_from_bytes(payload.encode("utf-8", "replace"), policy=compat32)
    feedback_type = (_header(fields, "Feedback-Type") or "").lower() if fields is not None else ""
    if feedback_type not in COMPLAINT_TYPES:
        return Finding(UNKNOWN, note=f"a feedback report of type {feedback_type!r}, not a complaint")
    returned = _returned(message)
    recipients: tuple[RecipientReport, ...] = ()
    if fields is not None:
        original = _address_field(_header(fields, "Original-Rcpt-To") or _header(fields, "Removal-Recipient"))
        if original:
            recipients = (RecipientReport(original, HARD, None, None),)
    return Finding(COMPLAINT, recipients, returned=returned, note="a spam complaint (ARF)")


# -- everything else -------------------------------------------------------------------


def _unsubscribe_token(message: Message) -> str | None:
    found = _UNSUBSCRIBE_SUBJECT.search(_header(message, "Subject") or "")
    return found[1] if found else None


def _non_standard_bounce(message: Message) -> Finding | None:
    temporary, permanent = all_failures(message)
    addresses = [(a, HARD) for a in sorted(permanent)] + [(a, SOFT) for a in sorted(temporary)]
    failed_header = _header(message, "X-Failed-Recipients")
    if failed_header:
        known = {a for a, _ in addresses}
        for item in failed_header.split(","):
            address = item.strip().encode("utf-8", "replace")
            if address and address not in known:
                addresses.append((address, HARD))
    if not addresses:
        return None
    reports = tuple(
        RecipientReport(text, severity, None, None)
        for address, severity in addresses
        if "@" in (text := address.decode("utf-8", "replace").strip().strip("<>"))
    )
    if not reports:
        return None
    return Finding(BOUNCE, reports, returned=_returned(message), note="a non-standard bounce")


def _is_autoreply(message: Message) -> bool:
    auto_submitted = (_header(message, "Auto-Submitted") or "").lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    if any(_header(message, name) for name in _AUTOREPLY_HEADERS):
        return True
    if (_header(message, "Precedence") or "").lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.match(_header(message, "Subject") or ""))


# -- helpers -------------------------------------------------------------------------


def _returned(message: Message) -> Returned:
    """The returned original's headers, from a message/rfc822 or text/rfc822-headers part."""
    for part in message.walk():
        content_type = part.get_content_type()
        original: Message | None = None
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                original = payload[0]
        elif content_type == "text/rfc822-headers":
            body = part.get_payload(decode=True) or b""
            original = message_from_bytes(body, policy=compat32)
        if original is not None and any(
            _header(original, name) for name in ("Message-ID", "Return-Path", "List-Unsubscribe")
        ):
            return Returned(
                message_id=_header(original, "Message-ID"),
                return_path=_header(original, "Return-Path"),
                list_unsubscribe=_header(original, "List-Unsubscribe"),
            )
    return Returned()


def _first_part(message: Message, content_type: str) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _header(message: Message | None, name: str) -> str | None:
    """A header as one line of text, or None (absent, or unreadable)."""
    if message is None:
        return None
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001  (a malformed header is as good as none)
        return None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _address_field(value: str | None) -> str | None:
    """The address of `rfc822; user@example.org` (a DSN address field)."""
    if not value:
        return None
    address = value.partition(";")[2] if ";" in value else value
    address = address.strip().strip("<>").strip()
    return address if "@" in address else None


def _status_class(value: str | None) -> str | None:
    """X.0.0 for a text that starts with a basic reply code (553 ... -> 5.0.0)."""
    found = re.match(r"\s*([245])\d\d\b", value or "")
    return f"{found[1]}.0.0" if found else None


def _short(value: str | None) -> str | None:
    return None if not value else value[:DIAGNOSTIC_CHARS]
