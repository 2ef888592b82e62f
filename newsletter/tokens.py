"""HMAC-signed tokens for the links in emails (unsubscribe, confirm).

A token names its purpose, the subscriber and the list, so a token for one list or one
action cannot be replayed against another. Format: base64url(payload) "." base64url(mac),
payload = "purpose:subscriber_id:list_id". No expiry: an unsubscribe link must keep
working in an old email.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from .errors import NewsletterError

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
_MAC_BYTES = 16


class BadToken(NewsletterError):
    """A token that was tampered with, truncated, or signed with another secret."""


@dataclass(frozen=True)
class TokenClaims:
    purpose: str
    subscriber_id: int
    list_id: int


def make_token(secret: bytes, purpose: str, subscriber_id: int, list_id: int) -> str:
    payload = f"{purpose}:{subscriber_id}:{list_id}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def read_token(secret: bytes, token: str, purpose: str) -> TokenClaims:
    """The claims of a valid token for `purpose`, else BadToken."""
    try:
        encoded_payload, encoded_mac = token.split(".")
        payload = _unb64(encoded_payload)
        mac = _unb64(encoded_mac)
    except ValueError:
        raise BadToken("the link is malformed; copy the whole link from the email") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise BadToken("the link's signature does not match; copy the whole link from the email")
    try:
        token_purpose, subscriber_id, list_id = payload.decode().split(":")
        claims = TokenClaims(token_purpose, int(subscriber_id), int(list_id))
    except ValueError:
        raise BadToken("the link is malformed; copy the whole link from the email") from None
    if claims.purpose != purpose:
        raise BadToken(f"this link is for {claims.purpose}, not {purpose}")
    return claims


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
