"""Email addresses: validated and normalized once, on the way into the store.

email-validator does the work, without DNS lookups (a list import must not wait on the
network, and a domain that is down today is not an invalid address). Internationalized
domains are accepted and kept in their Unicode form, so `a@bücher.de` and
`a@xn--bcher-kva.de` are the same subscriber. The local part keeps its case (it may
matter to the receiving server), but uniqueness is case-insensitive: `key()` is the
lower-cased normalized address, stored as `subscribers.email_key`.

A value with CR or LF is refused outright: it would let an address smuggle headers
into the mail it is written into.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from .errors import AddressError

_HEADER_BREAKS = ("\r", "\n")


@dataclass(frozen=True)
class Address:
    email: str  # normalized, as mailed
    key: str  # lower-cased: the uniqueness key
    domain: str  # lower-cased Unicode domain: what a domain suppression matches


def parse(raw: str) -> Address:
    """The normalized address, or AddressError naming the value and what is wrong."""
    if any(br in raw for br in _HEADER_BREAKS):
        raise AddressError(f"invalid address {raw!r}: it contains a line break (CR or LF)")
    candidate = raw.strip()
    if not candidate:
        raise AddressError("invalid address '': it is empty")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid address {candidate!r}: {exc}") from None
    email = result.normalized
    return Address(email=email, key=key(email), domain=result.domain.lower())


def normalize(raw: str) -> str:
    """The normalized form of an address (see module docstring), or AddressError."""
    return parse(raw).email


def key(email: str) -> str:
    """The case-insensitive uniqueness key of a normalized address."""
    return email.lower()


def normalize_domain(raw: str) -> str:
    """A domain as a domain suppression stores it: lower-cased Unicode (IDN decoded)."""
    domain = raw.strip().removeprefix("@")
    if any(br in domain for br in _HEADER_BREAKS):
        raise AddressError(f"invalid domain {raw!r}: it contains a line break (CR or LF)")
    try:
        result = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid domain {raw!r}: {exc}") from None
    return result.domain.lower()
