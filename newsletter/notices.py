"""One-off mails from the newsletter itself (confirmation links, review mails): built
whole, one at a time, and sent over one connection of the configured transport.

Unlike an issue (message.py) there is nothing to fill per recipient and no unsubscribe
link: these go to one person, about one thing, and say so (`Auto-Submitted`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr

from .config import Config
from .message import SIGNED_HEADERS, envelope_address
from .signing import load_signer
from .transport import MessageFailure, open_transport


@dataclass
class NoticeReport:
    sent: list[str] = field(default_factory=list)  # addresses
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, server reply)


def build_notice(config: Config, *, to: str, subject: str, text: str, html: str) -> bytes:
    """The whole message (text then HTML), as bytes with CRLF line ends, DKIM-signed
    when [dkim] is configured. `subject` must be one line."""
    message = EmailMessage(policy=SMTP)
    message["From"] = config.newsletter.from_
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = make_msgid(domain=_domain(config.newsletter.from_))
    # RFC 3834: an automatic mail; auto-responders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    if config.newsletter.reply_to:
        message["Reply-To"] = config.newsletter.reply_to
    # Quoted-printable keeps every line short and ASCII, as DKIM's simple body rule wants.
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return dkim_signed(config, message.as_bytes())


def send_notices(config: Config, messages: Iterable[tuple[str, bytes]]) -> NoticeReport:
    """Send each (address, message) over one connection. A refused address is reported
    and the rest go on; a transport failure (server down) raises DeliveryError."""
    sender = envelope_address(parseaddr(config.newsletter.from_)[1])
    report = NoticeReport()
    with open_transport(config) as transport:
        for address, data in messages:
            try:
                transport.send_message(sender, envelope_address(address), data)
            except MessageFailure as exc:
                report.refused.append((address, exc.reply))
            else:
                report.sent.append(address)
    return report


def dkim_signed(config: Config, data: bytes) -> bytes:
    """The message with a DKIM-Signature on top when [dkim] is configured."""
    signer = load_signer(config)
    if signer is None:
        return data
    head, _, body = data.partition(b"\r\n\r\n")
    fields: list[tuple[str, str]] = []
    for line in head.decode("utf-8").split("\r\n"):
        if line[:1] in (" ", "\t"):  # a folded continuation of the field above
            name, value = fields[-1]
            fields[-1] = (name, f"{value}\r\n{line}")
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.lstrip(" ")))
    signed = [(name, value) for name, value in fields if name in SIGNED_HEADERS]
    return signer.sign(signed, body) + data


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"
