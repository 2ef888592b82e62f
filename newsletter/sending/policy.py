"""What a server's answer means for a delivery, and when a run of failures pauses the issue.

Pure rules, testable without SMTP:

- accepted -> `sent`;
- a permanent refusal (5xx) -> `failed`, with the reply, counted as a bounce;
- a temporary one (4xx: greylisting, a full mailbox, a rate limit) -> back to `pending`
  with a growing delay, the other deliveries going on; after `max_retries` -> `failed`;
- an address the message cannot carry -> `failed`, no bounce.

Only a run of `max_consecutive_failures` permanent refusals in a row pauses the issue
(something is wrong beyond one address, such as a blacklisted sender); deferrals never do,
and connection-level failures pause at once (the run decides that, see run.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import DeliverySettings
from ..store.ledger import FAILED, PENDING, SENT, SKIPPED, ClaimedDelivery, Outcome

REPLY_CHARS = 300


@dataclass(frozen=True)
class OutcomePolicy:
    max_retries: int
    retry_backoff: float  # seconds before the first retry; doubled for each next one

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> OutcomePolicy:
        return cls(settings.max_retries, settings.retry_backoff)

    def accepted(self, delivery: ClaimedDelivery) -> Outcome:
        return Outcome(delivery.id, SENT, delivery.subscriber_id)

    def refused(self, delivery: ClaimedDelivery, reply: str) -> Outcome:
        return Outcome(
            delivery.id, FAILED, delivery.subscriber_id, error=reply[:REPLY_CHARS], bounce=True
        )

    def deferred(self, delivery: ClaimedDelivery, reply: str, now: datetime) -> Outcome:
        attempts = delivery.attempts + 1
        if attempts > self.max_retries:
            return Outcome(
                delivery.id, FAILED, delivery.subscriber_id,
                error=f"gave up after {attempts} attempts: {reply[:REPLY_CHARS]}",
            )
        delay = self.retry_backoff * 2 ** (attempts - 1)
        return Outcome(
            delivery.id, PENDING, delivery.subscriber_id,
            error=reply[:REPLY_CHARS], retry_at=now + timedelta(seconds=delay),
        )

    def undeliverable(self, delivery: ClaimedDelivery, reason: str) -> Outcome:
        return Outcome(delivery.id, FAILED, delivery.subscriber_id, error=reason)

    def revoked(self, delivery: ClaimedDelivery, reason: str) -> Outcome:
        return Outcome(delivery.id, SKIPPED, delivery.subscriber_id, error=reason, attempted=False)

    def released(self, delivery: ClaimedDelivery) -> Outcome:
        """Given back unsent (the run stops): pending again, no attempt counted."""
        return Outcome(delivery.id, PENDING, attempted=False)


class FailureStreak:
    """Counts permanent refusals in a row over all connections; a success ends the run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def success(self) -> None:
        with self._lock:
            self._count = 0

    def refusal(self) -> int | None:
        """One more refusal; the streak's length when it reached the limit, else None."""
        with self._lock:
            self._count += 1
            return self._count if self._count >= self.limit else None
