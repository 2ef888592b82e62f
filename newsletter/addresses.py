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

import importlib
from functools import lru_cache
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

from .errors import AddressError


def _memoize_domain_checks() -> None:
    """email-validator spends two thirds of each call on the domain (UTS-46 and IDNA
    checks, character by character), and a subscriber list repeats a few thousand domains.
    That check is a pure function of its arguments, so it is memoized where validate_email
    looks it up: an import validates about twice as many rows per second. Failures are
    not cached (lru_cache re-raises), so every invalid domain is checked afresh."""
    module = importlib.import_module("email_validator.validate_email")
    check = module.validate_email_domain_name
    if not hasattr(check, "cache_info"):
        setattr(module, "validate_email_domain_name", lru_cache(maxsize=8192)(check))


_memoize_domain_checks()


class Address(NamedTuple):
    email: str  # normalized, as mailed
    key: str  # lower-cased: the uniqueness key
    domain: str  # lower-cased Unicode domain: what a domain suppression matches


def parse(raw: str) -> Address:
    """The normalized address, or AddressError naming the value and what is wrong."""
    if "\r" in raw or "\n" in raw:
        raise AddressError(f"invalid address {raw!r}: it contains a line break (CR or LF)")
    candidate = raw.strip()
    if not candidate:
        raise AddressError("invalid address '': it is empty")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid address {candidate!r}: {exc}") from None
    email = result.normalized
    return Address(email, key(email), result.domain.lower())


def normalize(raw: str) -> str:
    """The normalized form of an address (see module docstring), or AddressError."""
    return parse(raw).email


def key(email: str) -> str:
    """The case-insensitive uniqueness key of a normalized address."""
    return email.lower()


def normalize_domain(raw: str) -> str:
    """A domain as a domain suppression stores it: lower-cased Unicode (IDN decoded)."""
    domain = raw.strip().removeprefix("@")
    if "\r" in domain or "\n" in domain:
        raise AddressError(f"invalid domain {raw!r}: it contains a line break (CR or LF)")
    try:
        result = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid domain {raw!r}: {exc}") from None
    return result.domain.lower()
