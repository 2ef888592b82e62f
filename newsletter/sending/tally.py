"""The counts a run keeps for its progress bar and its report."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..store.ledger import FAILED, SENT, SKIPPED, DeliveryCounts, Outcome


@dataclass(frozen=True)
class SendProgress:
    digest: str
    number: int
    total: int
    sent: int
    failed: int
    skipped: int
    sent_this_run: int
    elapsed: float

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def rate(self) -> float:
        """Messages per second sent by this run."""
        return self.sent_this_run / self.elapsed if self.elapsed > 0 else 0.0


class Tally:
    """Outcomes as they are recorded, and how many claimed deliveries await theirs."""

    def __init__(self, digest: str, number: int, start: DeliveryCounts) -> None:
        self.digest = digest
        self.number = number
        self.total = start.total
        self.sent, self.failed, self.skipped = start.sent, start.failed, start.skipped
        self.sent_this_run = 0
        self.in_flight = 0  # claimed by this run, outcome not yet recorded
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def claimed(self, deliveries: int, skipped: int) -> None:
        with self._lock:
            self.in_flight += deliveries
            self.skipped += skipped

    def recorded(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                self.in_flight -= 1
                if outcome.status == SENT:
                    self.sent += 1
                    self.sent_this_run += 1
                elif outcome.status == FAILED:
                    self.failed += 1
                elif outcome.status == SKIPPED:
                    self.skipped += 1

    def awaiting(self) -> int:
        with self._lock:
            return self.in_flight

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> SendProgress:
        with self._lock:
            return SendProgress(
                digest=self.digest,
                number=self.number,
                total=self.total,
                sent=self.sent,
                failed=self.failed,
                skipped=self.skipped,
                sent_this_run=self.sent_this_run,
                elapsed=self.elapsed,
            )
