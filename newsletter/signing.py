"""DKIM signatures (RFC 6376), rsa-sha256, c=relaxed/simple, made with `cryptography`.

dkimpy's own RSA is pure Python and costs several milliseconds a message; OpenSSL signs
in well under one. The message module hands over the signed headers exactly as it writes
them and the body bytes; the header block it then writes matches what was signed, and
dkimpy verifies it in the tests.

Body canonicalization is "simple": the body is our own quoted-printable output, lines
of at most 76 characters without trailing blanks, which no relay needs to touch.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .config import Config, DkimSettings
from .errors import ConfigError
from .folding import fold_words

CRLF = "\r\n"
_WSP_RUN = re.compile(r"[ \t]+")
_MIN_KEY_BITS = 1024
# The signature goes out in pieces that fit a folded line (whitespace in b= is ignored).
_B_FIRST = 40
_B_CHUNK = 72
_H_CHUNK = 60


class DkimSigner:
    def __init__(self, domain: str, selector: str, key: rsa.RSAPrivateKey) -> None:
        self.domain = domain
        self.selector = selector
        self._key = key

    @classmethod
    def from_settings(cls, settings: DkimSettings) -> DkimSigner:
        return cls(settings.domain, settings.selector, load_private_key(settings.private_key))

    def sign(
        self,
        fields: Sequence[tuple[str, str]],
        body: bytes,
        now: int | None = None,
        oversign: Sequence[str] = (),
    ) -> bytes:
        """The `DKIM-Signature:` header line (CRLF-terminated) for these headers and body.

        Each name in `oversign` that the fields carry is listed once more in h= than it
        occurs: the extra instance is signed as absent, so a verifier fails the message
        if one is added.
        """
        body_hash = base64.b64encode(hashlib.sha256(_simple_body(body)).digest()).decode()
        present = {name.lower() for name, _ in fields}
        names = [name.lower() for name, _ in fields] + [n.lower() for n in oversign if n.lower() in present]
        now = int(time.time()) if now is None else now
        # The tags as words of the header's value; each space between two words is where
        # the header may be folded (h= is cut after a colon, where FWS is allowed too).
        words = f"v=1; a=rsa-sha256; c=relaxed/simple; d={self.domain}; s={self.selector}; t={now};".split(" ")
        words += _cut_after_colons("h=" + ":".join(names) + ";", _H_CHUNK)
        words += [f"bh={body_hash};", "b="]
        # Relaxed canonicalization turns each fold (CRLF + space) back into one space, so the
        # header as written canonicalizes to exactly this signed text. An over-signed name
        # adds nothing: an absent header is signed as the empty string (RFC 6376 5.4.2).
        signed = "".join(_relaxed(name, value) for name, value in fields)
        signed += "dkim-signature:" + " ".join(words)
        signature = self._key.sign(signed.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        encoded = base64.b64encode(signature).decode()
        words[-1] += encoded[:_B_FIRST]
        words += [encoded[i : i + _B_CHUNK] for i in range(_B_FIRST, len(encoded), _B_CHUNK)]
        return (fold_words("DKIM-Signature:", words) + CRLF).encode()


def _cut_after_colons(value: str, size: int) -> list[str]:
    """`value` in pieces of about `size` characters, each ending at a colon (or the end)."""
    pieces = [""]
    for part in value.split(":"):
        if pieces[-1] and len(pieces[-1]) + len(part) > size:
            pieces.append("")
        pieces[-1] += part + ":"
    pieces[-1] = pieces[-1][:-1]
    return pieces


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key of [dkim].private_key (PEM), or one ConfigError naming the problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"[dkim].private_key: cannot read {path} ({exc.strerror}); fix the path or remove [dkim]"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"[dkim].private_key: {path} is not an unencrypted PEM private key; "
            "create one with `openssl genrsa -out dkim.pem 2048`"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"[dkim].private_key: {path} is not an RSA key; DKIM signing here needs RSA")
    if key.key_size < _MIN_KEY_BITS:
        raise ConfigError(
            f"[dkim].private_key: {path} is a {key.key_size}-bit key; receivers ignore DKIM keys "
            f"under {_MIN_KEY_BITS} bits (use 2048)"
        )
    return key


def load_signer(config: Config) -> DkimSigner | None:
    return DkimSigner.from_settings(config.dkim) if config.dkim else None


def dns_record(key: rsa.RSAPrivateKey) -> str:
    """The TXT record to publish at SELECTOR._domainkey.DOMAIN for this key."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def _relaxed(name: str, value: str) -> str:
    """Relaxed header canonicalization: lower-case name, unfolded value, blanks squeezed."""
    unfolded = value.replace(CRLF, "")
    return f"{name.lower().strip()}:{_WSP_RUN.sub(' ', unfolded).strip()}{CRLF}"


def _simple_body(body: bytes) -> bytes:
    """Simple body canonicalization: no trailing empty lines, one final CRLF."""
    if body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n"):
        return body  # already canonical: the usual case, no copy
    return body.rstrip(b"\r\n") + b"\r\n"
