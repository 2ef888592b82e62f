"""The double opt-in confirmation mail, and the link it carries.

The link is `{base_url}/confirm/{token}`: an HMAC token (tokens.CONFIRM) over the
subscriber, the list and the random token the store keeps on the membership (and clears
on unsubscribe, so an old link cannot undo a later unsubscribe). A tampered link is
refused before the store is asked, the page can say what it confirms, and a link cannot
carry one member's store token under another member's signature.

Links mailed before the store token was signed (`{signed}.{membership_token}`, the token
outside the MAC) are refused with a page that says to sign up again, which mails the
same membership a link of today's form.

One mail per sign-up, rendered from templates/confirm.mjml.j2 and confirm.txt.j2 (a
config's templates folder may override them) and sent through the configured transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr

from . import tokens
from .config import Config
from .errors import DeliveryError
from .message import SIGNED_HEADERS, envelope_address
from .render import compile_mjml, inline_css, render_template, template_environment
from .signing import load_signer
from .store import Store
from .store.records import AddResult, ListRecord
from .transport import MessageFailure, open_transport

HTML_TEMPLATE = "confirm.mjml.j2"
TEXT_TEMPLATE = "confirm.txt.j2"


def confirm_url(config: Config, result: AddResult) -> str:
    """The link that confirms this membership; ValueError if it has nothing to confirm."""
    if result.confirm_token is None:
        raise ValueError(f"{result.email} has nothing to confirm (status {result.status})")
    token = tokens.make_token(
        config.token_secret, tokens.CONFIRM, result.subscriber_id, result.list_id, result.confirm_token
    )
    return f"{config.newsletter.base_url.rstrip('/')}/confirm/{token}"


def read_confirm_token(secret: bytes, token: str) -> tokens.TokenClaims:
    """The claims of a confirm link, the store's membership token among them; BadToken if
    forged, malformed or of the unsigned old form (see module docstring)."""
    if token.count(".") == 2:
        raise tokens.BadToken(
            "it comes from an older confirmation email; sign up again to get a new link"
        )
    return tokens.read_token(secret, token, tokens.CONFIRM)


def send_confirmation(config: Config, store: Store, result: AddResult) -> bool:
    """Mail the confirmation link of a new unconfirmed member; False if none is due.

    DeliveryError when the mail cannot go out; the member stays unconfirmed and signing
    up again sends the same link again.
    """
    report = send_confirmations(config, store, [result])
    if report.refused:
        email, reply = report.refused[0]
        raise DeliveryError(f"the confirmation mail to {email} was not accepted: {reply}")
    return report.sent == 1


@dataclass
class ConfirmationReport:
    sent: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, server reply)


def send_confirmations(
    config: Config, store: Store, results: Iterable[AddResult]
) -> ConfirmationReport:
    """Mail each unconfirmed member its link over one connection. A refused address is
    reported and the rest go on; a transport failure (server down) raises DeliveryError."""
    sender = envelope_address(parseaddr(config.newsletter.from_)[1])
    report = ConfirmationReport()
    with open_transport(config) as transport:
        for result in results:
            if result.confirm_token is None:
                continue
            list_record = store.lists.get_by_id(result.list_id)
            subscriber = store.subscribers.get_by_id(result.subscriber_id)
            name = subscriber.name if subscriber else ""
            message = build_confirmation(config, list_record, result, name)
            try:
                transport.send_message(sender, envelope_address(result.email), message)
            except MessageFailure as exc:
                report.refused.append((result.email, exc.reply))
            else:
                report.sent += 1
    return report


def build_confirmation(config: Config, list_record: ListRecord, result: AddResult, name: str) -> bytes:
    """The whole message (text then HTML), as bytes with CRLF line ends."""
    subject = f"Confirm your subscription to {list_record.name}"
    env = template_environment(config)
    context = {
        "newsletter": {
            "name": config.newsletter.name,
            "postal_address": config.newsletter.postal_address,
        },
        "list": list_record,
        "subject": subject,
        "email": result.email,
        "subscriber_name": name or "reader",
        "confirm_url": confirm_url(config, result),
    }
    html = inline_css(compile_mjml(render_template(env, HTML_TEMPLATE, context), HTML_TEMPLATE))
    text = render_template(env, TEXT_TEMPLATE, context)

    message = EmailMessage(policy=SMTP)
    message["From"] = config.newsletter.from_
    message["To"] = result.email
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
