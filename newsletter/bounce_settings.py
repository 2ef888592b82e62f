"""The [bounces] and [inbound] tables and the bounce settings of [delivery], and their checks.

(config.py reads every table; these live here to keep it one size.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import addresses
from .errors import AddressError

if TYPE_CHECKING:
    from .config import DeliverySettings

MAX_PORT = 65535


@dataclass(frozen=True)
class BounceSettings:
    """When bounces make a member `bounced` on a list (defaults after Mailman's)."""

    hard_limit: int = 1  # hard bounces (5.x.x) that set `bounced`
    soft_limit: int = 5  # soft bounces (4.x.x, counted at most once a day) within soft_days
    soft_days: int = 30


@dataclass(frozen=True)
class InboundSettings:
    """The IMAP mailbox that bounces, complaints and mailto unsubscribes arrive in."""

    host: str
    username: str
    port: int = 993
    password_env: str = "NEWSLETTER_IMAP_PASSWORD"
    folder: str = "INBOX"
    # Processed messages are moved here (created when missing); until then they stay put.
    processed_folder: str = "newsletter-processed"
    poll_minutes: float = 5.0
    timeout: float = 30.0


def bounce_settings_problems(
    delivery: DeliverySettings, bounces: BounceSettings, inbound: InboundSettings | None
) -> list[tuple[str, str]]:
    """(key, problem) for each bounce setting that cannot work: a bounce address that
    cannot carry a VERP token, a Feedback-ID sender id with a colon, a limit below 1."""
    problems = []
    if delivery.bounce_address is not None:
        problem = verp_base_problem(delivery.bounce_address)
        if problem is not None:
            problems.append(("[delivery].bounce_address", f"{delivery.bounce_address!r} {problem}"))
    feedback_id = delivery.feedback_id
    if feedback_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", feedback_id):
        problems.append((
            "[delivery].feedback_id",
            f"{feedback_id!r}: use 1 to 64 letters, digits, dots, dashes or underscores "
            "(it is the last field of Feedback-ID, whose fields are separated by colons)",
        ))
    problems += [
        (f"[bounces].{key}", "must be at least 1")
        for key in ("hard_limit", "soft_limit", "soft_days")
        if getattr(bounces, key) < 1
    ]
    if inbound is not None:
        if not 1 <= inbound.port <= MAX_PORT:
            problems.append(("[inbound].port", f"must be a port from 1 to {MAX_PORT}"))
        problems += [
            (f"[inbound].{key}", "must be a positive number")
            for key in ("poll_minutes", "timeout")
            if getattr(inbound, key) <= 0
        ]
        if inbound.processed_folder == inbound.folder:
            problems.append((
                "[inbound].processed_folder",
                f"must differ from folder ({inbound.folder!r}): processed messages are moved there",
            ))
    return problems


def verp_base_problem(address: str) -> str | None:
    """What keeps `address` from being a VERP base (local@domain, ASCII, no "+"), or None."""
    try:
        parsed = addresses.parse(address)
    except AddressError:
        return "is not an email address; write it as bounces@example.org"
    local, _, _domain = parsed.email.rpartition("@")
    if not parsed.email.isascii():
        return "must be ASCII (MTAs must be able to carry the token in its local part)"
    if "+" in local:
        return 'must not hold "+" (the token is added after a "+")'
    return None
