"""One issue's email as a bytes template: built once per issue, filled per recipient.

Everything that is the same for every recipient (the header block, the MIME structure,
both parts in quoted-printable) is encoded to bytes once. Each part is split at the
personal placeholders (render.PersonalTemplate) and every static chunk is encoded on its
own so that it ends on a line boundary: a hard line break where the text has one, else
a soft break ("=" CRLF), which a decoder removes. A recipient's value is then encoded by
itself and dropped in between, so quoted-printable never splits a placeholder and the
part is never re-encoded. Per recipient only To, Message-ID, List-Unsubscribe and the
personal values in the body change; filling is a join of byte strings (plus the DKIM
signature when a signer is given).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy, quoprimime
from email.utils import format_datetime, formataddr, parseaddr
from secrets import token_hex

import idna

from .config import Config
from .errors import AddressError, ConfigError
from .render import PersonalTemplate, personal_values
from .signing import DkimSigner
from .tokens import UNSUBSCRIBE, make_token, make_verp_token
from .verp import verp_address

CRLF = "\r\n"
# Quoted-printable lines may hold 76 characters; a chunk that ends mid-line gets a
# trailing "=", so its lines are encoded one shorter.
_QP_LINE = 75
# The headers DKIM signs, in signing order (those a message lacks are left out).
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
)
@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    subscriber_id: int
    # Unique per message of the issue: the delivery id (a test copy uses a random key).
    message_key: str


def build_unsubscribe_url(config: Config, subscriber_id: int, list_id: int) -> str:
    """The one-click unsubscribe link of one subscriber on one list (served by `serve`)."""
    return _unsubscribe_url(config.token_secret, config.newsletter.base_url, subscriber_id, list_id)


def _unsubscribe_url(secret: bytes, base_url: str, subscriber_id: int, list_id: int) -> str:
    token = make_token(secret, UNSUBSCRIBE, subscriber_id, list_id)
    return f"{base_url.rstrip('/')}/u/{token}"


def issue_label(digest: str, number: int, created: datetime) -> str:
    """What names an issue in its Message-IDs: digest-number.creation time."""
    return f"{digest}-{number}.{created:%Y%m%d%H%M%S}"


def message_id_prefix(label: str) -> str:
    """The start of every Message-ID of an issue, <label. (then the delivery id, @domain>)."""
    return "<" + re.sub(r"[^A-Za-z0-9.-]", "-", label) + "."


def feedback_id(config: Config, number: int, digest: str, list_slug: str) -> str | None:
    """Gmail's Feedback-ID, ISSUE:DIGEST:LIST:SENDERID, when [delivery].feedback_id is set
    (colons in a name become dashes: they separate the fields)."""
    sender_id = config.delivery.feedback_id
    if sender_id is None:
        return None
    fields = (str(number), digest, list_slug)
    return ":".join(field.replace(":", "-") for field in fields) + f":{sender_id}"


def envelope_address(email: str) -> str:
    """The address as SMTP carries it: the domain in ASCII (IDNA); a non-ASCII local part
    stays UTF-8 and needs SMTPUTF8 (the transport asks the server for it)."""
    if "\r" in email or "\n" in email:
        raise AddressError(f"invalid address {email!r}: it contains a line break (CR or LF)")
    local, _, domain = email.rpartition("@")
    if domain.isascii():
        return email
    try:
        return f"{local}@{idna.encode(domain).decode('ascii')}"
    except idna.IDNAError as exc:
        raise AddressError(f"invalid address {email!r}: domain is not valid IDNA ({exc})") from None


def qp_chunk(text: str) -> bytes:
    """Quoted-printable for one chunk of a part, ending on a line boundary."""
    if not text:
        return b""
    # quoprimime wants bytes as latin-1 characters (what email.charset does for UTF-8).
    encoded = quoprimime.body_encode(
        text.encode("utf-8").decode("latin-1"), maxlinelen=_QP_LINE, eol=CRLF
    )
    if not text.endswith("\n"):
        encoded += "=" + CRLF
    return encoded.encode("ascii")


def _one_line(value: str) -> str:
    """Collapse all whitespace (CR and LF included) so a value can never break a header."""
    return " ".join(value.split())


class MessageTemplate:
    """An issue's message: `fill(recipient)` gives the complete message bytes."""

    def __init__(
        self,
        config: Config,
        *,
        list_id: int,
        list_slug: str,
        label: str,
        subject: str,
        html_part: str,
        text_part: str,
        signer: DkimSigner | None = None,
        date: datetime | None = None,
        feedback_id: str | None = None,
    ) -> None:
        settings = config.newsletter
        self.sender = _address_of(settings.from_, "[newsletter].from")
        self._bounce_address = config.delivery.bounce_address
        self._envelope_sender = envelope_address(self.sender)
        self._feedback_id = feedback_id
        self.list_id = list_id
        self._secret = config.token_secret
        self._base_url = settings.base_url.rstrip("/")
        self._mailto = settings.unsubscribe_mailto
        self._signer = signer
        domain = envelope_address(self.sender).rpartition("@")[2]
        # Message-IDs: <label.key@domain>; the label names the issue and when it was made.
        self._message_id_suffix = f"@{domain}>"
        self._message_id_prefix = message_id_prefix(label)
        self._boundary = "=_nl_" + token_hex(12)  # "=_" never occurs in quoted-printable
        self._headers = self._header_fields(config, list_slug, domain, subject, date)
        self._body_pieces, self._body_slots = self._body(text_part, html_part)

    # -- built once -------------------------------------------------------------------

    def _header_fields(
        self, config: Config, list_slug: str, domain: str, subject: str, date: datetime | None
    ) -> list[tuple[str, str | None]]:
        """(name, folded value) in message order; None marks a per-recipient header."""
        settings = config.newsletter
        fields: list[tuple[str, str | None]] = [
            ("From", _folded("From", settings.from_)),
            ("To", None),
            ("Subject", _folded("Subject", _one_line(subject))),
            ("Date", format_datetime(date or datetime.now(timezone.utc))),
            ("Message-ID", None),
            ("MIME-Version", "1.0"),
            ("List-Id", _folded("List-Id", f"{_one_line(settings.name)} <{list_slug}.{domain}>")),
            ("List-Unsubscribe", None),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if self._feedback_id is not None:
            fields.append(("Feedback-ID", _folded("Feedback-ID", _one_line(self._feedback_id))))
        if settings.reply_to:
            _address_of(settings.reply_to, "[newsletter].reply_to")
            fields.append(("Reply-To", _folded("Reply-To", settings.reply_to)))
        fields.append(("Content-Type", f'multipart/alternative;{CRLF} boundary="{self._boundary}"'))
        for name, value in fields:
            if value is not None and re.search(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n", value):
                raise ConfigError(f"the {name} header would carry a line break; fix its setting")
        for key, value in (("base_url", self._base_url), ("unsubscribe_mailto", self._mailto or "")):
            if any(c.isspace() for c in value):
                raise ConfigError(f"[newsletter].{key} must not hold spaces or line breaks")
        return fields

    def _body(self, text_part: str, html_part: str) -> tuple[list[bytes], list[tuple[bool, str]]]:
        """The body as static byte pieces and the slots between them: (is_html, placeholder)."""
        pieces: list[bytes] = []
        slots: list[tuple[bool, str]] = []
        current = [f"This is a multi-part message in MIME format.{CRLF}".encode()]
        for is_html, content in ((False, text_part), (True, html_part)):
            subtype = "html" if is_html else "plain"
            current.append(
                f"{CRLF}--{self._boundary}{CRLF}"
                f"Content-Type: text/{subtype}; charset=utf-8{CRLF}"
                f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}".encode()
            )
            split = PersonalTemplate(_normalize_newlines(content), escape_html=is_html)
            current.append(qp_chunk(split.pieces[0]))
            for slot, piece in zip(split.slots, split.pieces[1:]):
                pieces.append(b"".join(current))
                slots.append((is_html, slot))
                current = [qp_chunk(piece)]
        current.append(f"{CRLF}--{self._boundary}--{CRLF}".encode())
        pieces.append(b"".join(current))
        return pieces, slots

    # -- per recipient ----------------------------------------------------------------

    def envelope(self, issue_id: int, subscriber_id: int) -> tuple[str, str]:
        """(MAIL FROM, ENVID) for one recipient. MAIL FROM is the VERP address naming the
        delivery when [delivery].bounce_address is set, else the From address; the DSN
        envelope id is the same signed token, so a DSN names the delivery either way."""
        token = make_verp_token(self._secret, issue_id, subscriber_id)
        if self._bounce_address is None:
            return self._envelope_sender, token
        return verp_address(self._bounce_address, token), token

    def unsubscribe_url(self, subscriber_id: int) -> str:
        return _unsubscribe_url(self._secret, self._base_url, subscriber_id, self.list_id)

    def fill(self, recipient: Recipient) -> bytes:
        """The complete message for one recipient, DKIM-signed when a signer is set."""
        url = self.unsubscribe_url(recipient.subscriber_id)
        name = _one_line(recipient.name)
        address = envelope_address(recipient.email)
        personal = {
            "To": _to_header(name, address),
            "Message-ID": f"{self._message_id_prefix}{recipient.message_key}{self._message_id_suffix}",
            "List-Unsubscribe": self._list_unsubscribe(url),
        }
        fields = [(n, personal[n] if v is None else v) for n, v in self._headers]
        header_block = "".join(f"{n}: {v}{CRLF}" for n, v in fields).encode("utf-8")
        body = self._fill_body(personal_values(url, name, recipient.email))
        if self._signer is None:
            return header_block + CRLF.encode() + body
        signed = [(n, v) for n, v in fields if n in SIGNED_HEADERS]
        return self._signer.sign(signed, body) + header_block + CRLF.encode() + body

    def _list_unsubscribe(self, url: str) -> str:
        if not self._mailto:
            return f"<{url}>"
        token = url.rpartition("/")[2]
        return f"<{url}>,{CRLF} <mailto:{self._mailto}?subject=unsubscribe%20{token}>"

    def _fill_body(self, values: dict[str, str]) -> bytes:
        encoded: dict[tuple[bool, str], bytes] = {}
        out = [self._body_pieces[0]]
        for slot, piece in zip(self._body_slots, self._body_pieces[1:]):
            value = encoded.get(slot)
            if value is None:
                is_html, name = slot
                raw = html.escape(values[name], quote=True) if is_html else values[name]
                value = encoded[slot] = qp_chunk(raw)
            out.append(value)
            out.append(piece)
        return b"".join(out)


def _to_header(name: str, address: str) -> str:
    """`"Name" <address>`; the name RFC 2047-encoded when not ASCII. The address is put in
    as it is: a UTF-8 local part is only allowed raw (RFC 6532), which formataddr refuses."""
    if not name:
        return address
    display = formataddr((name, "x@x"), charset="utf-8").rpartition(" <")[0]
    return f"{display} <{address}>"


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _folded(name: str, value: str) -> str:
    """A header value as the SMTP policy writes it (RFC 2047 when not ASCII, folded)."""
    line = policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP)
    return line[len(name) + 2 :].removesuffix(CRLF)


def _address_of(value: str, setting: str) -> str:
    address = parseaddr(value)[1]
    if "@" not in address:
        raise ConfigError(f"{setting} = {value!r} holds no email address; use \"Name <addr@domain>\"")
    return address
