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
config's templates folder may override them) and sent as a notice (notices.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import tokens
from .config import Config
from .errors import DeliveryError
from .notices import build_notice, send_notices
from .render import compile_mjml, inline_css, render_template, template_environment
from .store import Store
from .store.records import AddResult, ListRecord

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

    def messages() -> Iterator[tuple[str, bytes]]:
        for result in results:
            if result.confirm_token is None:
                continue
            list_record = store.lists.get_by_id(result.list_id)
            subscriber = store.subscribers.get_by_id(result.subscriber_id)
            name = subscriber.name if subscriber else ""
            yield result.email, build_confirmation(config, list_record, result, name)

    report = send_notices(config, messages())
    return ConfirmationReport(sent=len(report.sent), refused=report.refused)


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
    return build_notice(config, to=result.email, subject=subject, text=text, html=html)
