"""The sender's side of the revocation clock (see store/revocations.py).

The dispatcher polls the clock (one row) every REVOCATION_POLL_SECONDS. When it moved,
it re-checks this sender's claims, publishes the deliveries whose recipient left, waits
for any worker that is in the middle of sending one of them, and acknowledges the epoch.
A worker marks the delivery it is about to send *before* it looks at the published set,
so after the acknowledgement no message to a revoked recipient is started or in flight.
"""

from __future__ import annotations

import time

from ..store.ledger import Ledger

REVOCATION_POLL_SECONDS = 0.02
_IN_FLIGHT_POLL = 0.001


class RevocationWatch:
    def __init__(
        self, ledger: Ledger, issue_id: int, list_id: int, owner: str, workers: int, epoch: int
    ) -> None:
        self.ledger = ledger
        self.issue_id = issue_id
        self.list_id = list_id
        self.owner = owner
        self.seen = epoch
        # delivery id -> why its recipient may no longer be mailed (replaced, never mutated)
        self.reasons: dict[int, str] = {}
        self._current: list[int | None] = [None] * workers
        self._next_poll = 0.0

    # -- workers ------------------------------------------------------------------------

    def starting(self, worker: int, delivery_id: int) -> str | None:
        """A worker is about to send this delivery: None to go on, else why not to."""
        self._current[worker] = delivery_id
        reason = self.reasons.get(delivery_id)
        if reason is not None:
            self._current[worker] = None
        return reason

    def finished(self, worker: int) -> None:
        self._current[worker] = None

    # -- the dispatcher -----------------------------------------------------------------

    def poll_due(self) -> bool:
        return time.monotonic() >= self._next_poll

    def poll(self) -> None:
        self._next_poll = time.monotonic() + REVOCATION_POLL_SECONDS
        if self.ledger.revocation_epoch() <= self.seen:
            return
        epoch, revoked = self.ledger.revoked_claims(self.issue_id, self.list_id, self.owner)
        newly = set(revoked) - set(self.reasons)
        if newly:
            self.reasons = {**self.reasons, **revoked}
            while any(current in newly for current in self._current):
                time.sleep(_IN_FLIGHT_POLL)
        self.ledger.acknowledge(self.owner, epoch)
        self.seen = epoch
