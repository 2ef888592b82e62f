"""HMAC-signed tokens for the links in emails (unsubscribe, confirm, approve).

A token names its purpose, the subscriber and the list, so a token for one list or one
action cannot be replayed against another. Format: base64url(payload) "." base64url(mac),
payload = "purpose:subscriber_id:list_id", and for a confirm link also ":membership_token"
(the store's random token for that membership): every field a token carries is under its
MAC, so no part of a link can be swapped for a part of another. No expiry: an unsubscribe
link must keep working in an old email.

An approve link (review mails, see review.py) names the digest, the draft's issue number,
the content hash of the version mailed, and the reviewer it was mailed to, each field
percent-encoded (a digest's name or an address may hold a colon), all under one MAC.

A VERP token (`make_verp_token`) names one delivery, an issue and a subscriber, for the
envelope sender `bounces+TOKEN@domain` and the DSN envelope id. It must survive MTAs that
lower-case local parts and stay short: lower-case base 36 ids and a base 32 MAC over
"verp:issue:subscriber", e.g. `1a-2s-k3x5...` (about 25 characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import NewsletterError

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
APPROVE = "approve"
_MAC_BYTES = 16
# How many fields each purpose's payload has: an unsubscribe link names the membership by
# its ids only; a confirm link also carries the membership's token.
_FIELD_COUNTS = {UNSUBSCRIBE: 3, CONFIRM: 4}


class BadToken(NewsletterError):
    """A token that was tampered with, truncated, or signed with another secret."""


@dataclass(frozen=True)
class TokenClaims:
    purpose: str
    subscriber_id: int
    list_id: int
    membership_token: str = ""  # confirm links only


@dataclass(frozen=True)
class ApproveClaims:
    digest: str
    number: int
    content_hash: str
    reviewer: str


def make_token(
    secret: bytes, purpose: str, subscriber_id: int, list_id: int, membership_token: str = ""
) -> str:
    fields = [purpose, str(subscriber_id), str(list_id)]
    if membership_token:
        fields.append(membership_token)
    if len(fields) != _FIELD_COUNTS[purpose] or ":" in membership_token:
        raise ValueError(f"a {purpose} token carries {_FIELD_COUNTS[purpose]} colon-free fields")
    return _sign(secret, ":".join(fields).encode())


def read_token(secret: bytes, token: str, purpose: str) -> TokenClaims:
    """The claims of a valid token for `purpose`, else BadToken."""
    fields = _open(secret, token, purpose)
    try:
        if len(fields) != _FIELD_COUNTS[purpose]:
            raise ValueError("wrong number of fields")
        return TokenClaims(purpose, int(fields[1]), int(fields[2]), *fields[3:])
    except ValueError:
        raise BadToken("the link is malformed; copy the whole link from the email") from None


def make_approve_token(secret: bytes, digest: str, number: int, content_hash: str, reviewer: str) -> str:
    fields = [APPROVE, *(quote(value, safe="") for value in (digest, str(number), content_hash, reviewer))]
    return _sign(secret, ":".join(fields).encode())


def read_approve_token(secret: bytes, token: str) -> ApproveClaims:
    """The claims of a valid approve link, else BadToken."""
    fields = _open(secret, token, APPROVE)
    try:
        digest, number, content_hash, reviewer = (unquote(value) for value in fields[1:])
        return ApproveClaims(digest, int(number), content_hash, reviewer)
    except ValueError:
        raise BadToken("the link is malformed; copy the whole link from the email") from None


def _sign(secret: bytes, payload: bytes) -> str:
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def _open(secret: bytes, token: str, purpose: str) -> list[str]:
    """The fields of a token signed with `secret` for `purpose`, else BadToken."""
    try:
        encoded_payload, encoded_mac = token.split(".")
        payload = _unb64(encoded_payload)
        mac = _unb64(encoded_mac)
    except ValueError:
        raise BadToken("the link is malformed; copy the whole link from the email") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadToken("the link's signature does not match; copy the whole link from the email")
    fields = payload.decode(errors="replace").split(":")
    if fields[0] != purpose:
        raise BadToken(f"this link is for {fields[0]}, not {purpose}")
    return fields


_VERP_MAC_BYTES = 10  # 80 bits: a forged token would need 2**80 tries
_VERP_TOKEN = re.compile(r"([0-9a-z]{1,13})-([0-9a-z]{1,13})-([a-z2-7]{16})")


@dataclass(frozen=True)
class VerpClaims:
    issue_id: int
    subscriber_id: int


def make_verp_token(secret: bytes, issue_id: int, subscriber_id: int) -> str:
    ids = f"{_base36(issue_id)}-{_base36(subscriber_id)}"
    return f"{ids}-{_verp_mac(secret, issue_id, subscriber_id)}"


def read_verp_token(secret: bytes, token: str) -> VerpClaims:
    """The delivery a VERP token names, else BadToken (forged, truncated, another secret)."""
    match = _VERP_TOKEN.fullmatch(token.lower())
    if match is None:
        raise BadToken(f"{token!r} is not a VERP token")
    issue_id, subscriber_id = int(match[1], 36), int(match[2], 36)
    if not hmac.compare_digest(match[3], _verp_mac(secret, issue_id, subscriber_id)):
        raise BadToken(f"the VERP token {token!r} has a wrong signature")
    return VerpClaims(issue_id, subscriber_id)


def _verp_mac(secret: bytes, issue_id: int, subscriber_id: int) -> str:
    # hmac.digest: the one-shot C path (one of these per message sent).
    digest = hmac.digest(secret, f"verp:{issue_id}:{subscriber_id}".encode(), "sha256")
    return base64.b32encode(digest[:_VERP_MAC_BYTES]).decode().lower()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def keyed_hash(secret: bytes, value: str) -> str:
    """A keyed hash for values we must recognise but not keep (a forgotten address)."""
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("bad base64") from None
