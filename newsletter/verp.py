"""VERP: the envelope sender that tells which delivery a bounce is about.

With `[delivery] bounce_address = "bounces@example.org"`, the message to subscriber S of
issue I goes out with MAIL FROM `bounces+TOKEN@example.org`, TOKEN being the signed VERP
token of (I, S) (tokens.py). A bounce comes back to that address, so the address alone
names the delivery; a token whose signature does not match names nothing.
"""

from __future__ import annotations


def verp_address(bounce_address: str, token: str) -> str:
    """bounces@example.org and a VERP token (tokens.make_verp_token): bounces+TOKEN@example.org."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def verp_token_of(bounce_address: str, recipient: str) -> str | None:
    """The token in `recipient` when it is a VERP form of `bounce_address` (compared
    without regard to case), else None."""
    local, _, domain = bounce_address.lower().rpartition("@")
    their_local, _, their_domain = recipient.strip().strip("<>").rpartition("@")
    if their_domain.lower() != domain or not their_local.lower().startswith(local + "+"):
        return None
    return their_local[len(local) + 1 :]
