"""One issue's email as a bytes template: built once per issue, filled per recipient.

Everything that is the same for every recipient (the header block, the MIME structure,
both parts in quoted-printable) is encoded to bytes once. Each part is split at the
personal markers (personal.py) and every static chunk is encoded on its
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
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from secrets import token_hex
from typing import TYPE_CHECKING

import idna

from .config import Config
from .errors import AddressError, ConfigError
from .folding import MAX_LINE, fold_words
from .personal import PersonalMarkers, neutralize_markers, personal_values
from .tokens import UNSUBSCRIBE, make_token, make_verp_token
from .smtp import DATA_END, dot_stuffed
from .urls import archive_url
from .verp import verp_address

if TYPE_CHECKING:
    from .signing import DkimSigner

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
    "List-Archive",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
)
# The subscriber id a test copy's links carry: no subscriber has it (the web side says
# that the link came in a test copy).
TEST_COPY_SUBSCRIBER = 0
# Signed once more than they occur (RFC 6376 8.15): a second one added in transit breaks
# the signature instead of riding on it (a second From or a forged unsubscribe target).
OVERSIGNED_HEADERS = ("From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post")
# Control characters (C0, DEL, C1) never reach a header; a name's line breaks become spaces.
_CONTROLS = {code: " " for code in [*range(0x20), *range(0x7F, 0xA0)]}
# A display name with any of these must be a quoted-string (RFC 5322 3.2.3 specials).
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


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


# A value quoted-printable leaves as it is: short printable ASCII without "=", not
# ending in a blank (most names, addresses and unsubscribe URLs; checked per recipient).
_QP_AS_IS = re.compile(r"[ !-<>-~]{0,%d}[!-<>-~]" % (_QP_LINE - 2))


def qp_chunk(text: str) -> bytes:
    """Quoted-printable for one chunk of a part, ending on a line boundary."""
    if not text:
        return b""
    if _QP_AS_IS.fullmatch(text):
        return f"{text}={CRLF}".encode("ascii")
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


def display_name(name: str) -> str:
    """A subscriber's name as headers and bodies show it: one line, no control characters,
    and no personal-placeholder marker."""
    return neutralize_markers(_one_line(name.translate(_CONTROLS)))


class MessageTemplate:
    """An issue's message: `fill(recipient)` gives the complete message bytes."""

    def __init__(
        self,
        config: Config,
        *,
        list_id: int,
        list_slug: str,
        digest: str,
        label: str,
        subject: str,
        html_part: str,
        text_part: str,
        markers: PersonalMarkers,
        signer: DkimSigner | None = None,
        date: datetime | None = None,
        feedback_id: str | None = None,
    ) -> None:
        settings = config.newsletter
        self._markers = markers
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
        self._headers = self._header_fields(config, list_slug, digest, domain, subject, date)
        self._body_pieces, self._body_slots = self._body(text_part, html_part)
        # The same pieces as SMTP DATA carries them. Every piece, and every personal value
        # between them, begins at the start of a line, so each is dot-stuffed on its own:
        # the static ones here, once per issue, not 25 KB scanned per recipient.
        self._stuffed_pieces = [dot_stuffed(piece) for piece in self._body_pieces]

    # -- built once -------------------------------------------------------------------

    def _header_fields(
        self, config: Config, list_slug: str, digest: str, domain: str, subject: str, date: datetime | None
    ) -> list[tuple[str, str | None]]:
        """(name, folded value) in message order; None marks a per-recipient header."""
        settings = config.newsletter
        fields: list[tuple[str, str | None]] = [
            ("From", _folded("From", _configured_mailbox(settings.from_, self.sender))),
            ("To", None),
            ("Subject", _folded("Subject", _one_line(subject))),
            ("Date", format_datetime(date or datetime.now(timezone.utc))),
            ("Message-ID", None),
            ("MIME-Version", "1.0"),
            ("List-Id", _folded("List-Id", f"{_phrase(display_name(settings.name))} <{list_slug}.{domain}>")),
            ("List-Archive", f"<{archive_url(self._base_url, digest)}>"),
            ("List-Unsubscribe", None),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if self._feedback_id is not None:
            fields.append(("Feedback-ID", _folded("Feedback-ID", _one_line(self._feedback_id))))
        if settings.reply_to:
            reply_to = _address_of(settings.reply_to, "[newsletter].reply_to")
            fields.append(("Reply-To", _folded("Reply-To", _configured_mailbox(settings.reply_to, reply_to))))
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
            split = self._markers.template(_normalize_newlines(content), escape_html=is_html)
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

    def fill(self, recipient: Recipient, *, stuffed: bool = False) -> bytes:
        """The complete message for one recipient, DKIM-signed when a signer is set;
        `stuffed`: as SMTP DATA carries it (dot-stuffed, ending in the "." line)."""
        url = self.unsubscribe_url(recipient.subscriber_id)
        name = display_name(recipient.name)
        address = envelope_address(recipient.email)
        personal = {
            "To": _to_header(name, address),
            "Message-ID": f"{self._message_id_prefix}{recipient.message_key}{self._message_id_suffix}",
            "List-Unsubscribe": self._list_unsubscribe(url),
        }
        fields = [(n, personal[n] if v is None else v) for n, v in self._headers]
        # Header lines never begin with a dot: the header block needs no stuffing.
        head = "".join(f"{n}: {v}{CRLF}" for n, v in fields).encode("utf-8") + CRLF.encode()
        values = self._encoded_values(personal_values(url, name, recipient.email))
        body = self._join(self._body_pieces, values) if self._signer or not stuffed else b""
        if self._signer is not None:
            signed = [(n, v) for n, v in fields if n in SIGNED_HEADERS]
            head = self._signer.sign(signed, body, oversign=OVERSIGNED_HEADERS) + head
        if not stuffed:
            return head + body
        stuffed_values = {slot: dot_stuffed(value) for slot, value in values.items()}
        return head + self._join(self._stuffed_pieces, stuffed_values) + DATA_END

    def _list_unsubscribe(self, url: str) -> str:
        if not self._mailto:
            return f"<{url}>"
        token = url.rpartition("/")[2]
        return f"<{url}>,{CRLF} <mailto:{self._mailto}?subject=unsubscribe%20{token}>"

    def _encoded_values(self, values: dict[str, str]) -> dict[tuple[bool, str], bytes]:
        """Each slot's value as its part carries it (HTML-escaped there, quoted-printable)."""
        encoded: dict[tuple[bool, str], bytes] = {}
        for slot in self._body_slots:
            if slot not in encoded:
                is_html, name = slot
                raw = html.escape(values[name], quote=True) if is_html else values[name]
                encoded[slot] = qp_chunk(raw)
        return encoded

    def _join(self, pieces: list[bytes], values: dict[tuple[bool, str], bytes]) -> bytes:
        out = [pieces[0]]
        for slot, piece in zip(self._body_slots, pieces[1:]):
            out.append(values[slot])
            out.append(piece)
        return b"".join(out)


def _to_header(name: str, address: str) -> str:
    """`Name <address>`, the name quoted or RFC 2047-encoded as it needs, folded when long.

    The address is put in as it is: a UTF-8 local part is only allowed raw (RFC 6532),
    which the email package's encoders refuse. Most names give a short line and cost one
    string join; a long one is folded at its spaces (ASCII, inside the quotes) or split
    into encoded-words, one per line.
    """
    if not name:
        return address
    line = f"{_phrase(name)} <{address}>"
    if len("To: ") + len(line) <= MAX_LINE:
        return line
    if name.isascii():
        words = line.split(" ")
    else:
        encoded = Header(name, "utf-8", header_name="To").encode(splitchars=" ", maxlinelen=MAX_LINE)
        words = [*encoded.split(), f"<{address}>"]
    return fold_words("To:", words)[len("To: ") :]


def _phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: as it is when it can be, else quoted (ASCII)
    or an RFC 2047 encoded-word (not ASCII)."""
    if not name.isascii():
        return formataddr((name, "x@x"), charset="utf-8").rpartition(" <")[0]
    if _SPECIALS.search(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def _configured_mailbox(value: str, address: str) -> str:
    """A `Name <address>` setting written back with its name as a proper phrase."""
    name = display_name(parseaddr(value)[0])
    return f"{_phrase(name)} <{address}>" if name else address


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
