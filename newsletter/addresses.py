"""Email addresses: validated and normalized once, on the way into the store.

email-validator does the work, without DNS lookups (a list import must not wait on the
network, and a domain that is down today is not an invalid address). Internationalized
domains are accepted and kept in their Unicode form, so `a@bücher.de` and
`a@xn--bcher-kva.de` are the same subscriber. The local part keeps its case (it may
matter to the receiving server), but uniqueness is case-insensitive: `key()` is the
lower-cased normalized address, stored as `subscribers.email_key`.

A value with CR or LF is refused outright: it would let an address smuggle headers
into the mail it is written into. A subscriber's name goes into the same `To:` header:
`check_name` refuses control characters in it, at every way in (add, import, web form).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple


from .errors import AddressError


# The common case, checked without email-validator's general parser: an ASCII dot-atom
# local part (RFC 5322 atext, no leading, trailing or doubled dots) at an ASCII domain.
# email-validator accepts every such local part unchanged, so only the domain needs its
# verdict, and a list repeats a few thousand domains: that verdict is cached. Anything
# else (quoted or non-ASCII local parts, IDN domains, every failure) takes the full path,
# which also words the error. tests/test_addresses.py checks both paths agree.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


@lru_cache(maxsize=8192)
def _ascii_domain(domain: str) -> str | None:
    """email-validator's normalized form of an ASCII domain, None if it refuses it."""
    from email_validator import EmailNotValidError, validate_email  # see _parse_with_validator

    try:
        return validate_email(f"postmaster@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def _parse_common(candidate: str) -> Address | None:
    local, at, domain = candidate.rpartition("@")
    if not at or len(local) > _MAX_LOCAL or not domain.isascii():
        return None
    if not _DOT_ATOM_LOCAL.fullmatch(local):
        return None
    normalized_domain = _ascii_domain(domain)
    if normalized_domain is None:
        return None
    email = f"{local}@{normalized_domain}"
    if len(email) > _MAX_ADDRESS:
        return None
    return Address(email, key(email), normalized_domain.lower())


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
    common = _parse_common(candidate)
    if common is not None:
        return common
    return _parse_with_validator(candidate)


def _parse_with_validator(candidate: str) -> Address:
    # Imported where used: loading email-validator's tables costs more than a command's
    # whole start-up otherwise (`newsletter --help` never parses an address).
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid address {candidate!r}: {exc}") from None
    email = result.normalized
    return Address(email, key(email), result.domain.lower())


# "Display Name <address>": the form a From header takes when it carries a name.
_NAMED_MAILBOX = re.compile(r"[^<>]*<(?P<address>[^<>]*)>\s*")


def mailbox_address(raw: str) -> Address:
    """The address of a bare address or of `Name <address>`, as a From header carries
    it; AddressError when it is neither (a name without angle brackets) or the address
    is invalid (email-validator also refuses a domain without a dot)."""
    named = _NAMED_MAILBOX.fullmatch(raw)
    candidate = named["address"] if named else raw.strip()
    if not named and any(c.isspace() or c in "<>" for c in candidate):
        raise AddressError(
            f"{raw!r} is neither an address nor a name with the address in angle brackets"
        )
    return parse(candidate)


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
    from email_validator import EmailNotValidError, validate_email  # see _parse_with_validator

    try:
        result = validate_email(f"postmaster@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid domain {raw!r}: {exc}") from None
    return result.domain.lower()


# What a name must not contain: the control characters (Unicode category Cc: C0 with NUL,
# tab, CR, LF and ESC; DEL; C1) and the line and paragraph separators. Spaces are fine.
_FORBIDDEN_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# The store keeps at most this many characters of a name (subscribers.name is VARCHAR(200)).
NAME_MAX_CHARS = 200


def check_name(name: str) -> str:
    """The name unchanged, or AddressError naming what is wrong: a control character in
    it, or more than NAME_MAX_CHARS characters."""
    if len(name) > NAME_MAX_CHARS:
        raise AddressError(
            f"invalid name {name[:40]!r}...: it has {len(name)} characters, at most "
            f"{NAME_MAX_CHARS} are kept; shorten it"
        )
    found = _FORBIDDEN_IN_NAMES.search(name)
    if found is not None:
        raise AddressError(
            f"invalid name {name!r}: it contains the control character "
            f"U+{ord(found.group()):04X} at position {found.start() + 1}; remove it"
        )
    return name
