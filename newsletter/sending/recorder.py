"""Writing outcomes down, with a bounded window of messages not yet recorded.

The only moment a recipient can get an issue twice is between the server's acceptance
of their message and the ledger's record of it. The recorder keeps that window small and
fixed: a worker takes a slot before it starts a message and the slot is given back only
when the message's outcome is committed, so at most `window` messages
(WINDOW_PER_CONNECTION per connection) are ever out unrecorded. Outcomes are written as
they come, all that are waiting in one transaction (group commit).

When the ledger cannot be written (another process holds the write lock, the disk is
full), no slot comes back: the workers stop within the window and wait, the recorder
retries, and sending goes on when the store is writable again. After `ledger_timeout`
seconds of failures the run stops with one line (`LedgerUnavailable`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import StoreError
from ..store.ledger import SENT, Ledger, Outcome
from .tally import Tally

WINDOW_PER_CONNECTION = 4
RECORD_BATCH = 1000
# How long the recorder waits for more outcomes to write in the same transaction.
LINGER_SECONDS = 0.005
_SLOT_WAIT = 0.1
_FIRST_RETRY = 0.05
_LONGEST_RETRY = 1.0

T = TypeVar("T")


class LedgerUnavailable(Exception):
    """The store stayed unwritable for longer than the ledger timeout."""


class Patience:
    """Retries a ledger call while the store is busy or failing, for `timeout` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def call(self, function: Callable[..., T], *args: object) -> T:
        failing_since: float | None = None
        delay = _FIRST_RETRY
        while True:
            try:
                return function(*args)
            except StoreError as exc:
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.timeout:
                    raise LedgerUnavailable(
                        f"the store could not be written for {self.timeout:g} s ({exc})"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, _LONGEST_RETRY)


class Recorder:
    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        tally: Tally,
        window: int,
        patience: Patience,
        on_failure: Callable[[LedgerUnavailable], None],
    ) -> None:
        self.ledger = ledger
        self.owner = owner
        self.tally = tally
        self.window = window
        self.patience = patience
        self.on_failure = on_failure
        self._slots = threading.Semaphore(window)
        self._queue: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._unwritten: list[Outcome] = []  # kept after a failure, for a last try
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def take_slot(self, halt: threading.Event) -> bool:
        """Wait for room in the window; False when the run halts meanwhile."""
        while not self._slots.acquire(timeout=_SLOT_WAIT):
            if halt.is_set():
                return False
        return True

    def return_slot(self) -> None:
        """A slot taken for a message that was not started after all."""
        self._slots.release()

    def put(self, outcome: Outcome) -> None:
        """An outcome to record; an attempted one gives its slot back once written."""
        self._queue.put(outcome)

    def close(self) -> int:
        """Write what is left and stop; how many accepted messages stayed unrecorded."""
        self._queue.put(None)
        self._thread.join()
        if self._unwritten:
            try:
                self.ledger.record_outcomes(self.owner, self._unwritten)
            except StoreError:
                return sum(1 for outcome in self._unwritten if outcome.status == SENT)
            self.tally.recorded(self._unwritten)
        return 0

    def _run(self) -> None:
        finished = False
        while not finished:
            batch, finished = self._next_batch()
            if batch:
                self._write(batch)

    def _next_batch(self) -> tuple[list[Outcome], bool]:
        """The outcomes to write together (and whether the run ended): at least the next
        one, then whatever follows within LINGER_SECONDS, up to half the window. A
        transaction costs far more than a row, and one per message would be the cost."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + LINGER_SECONDS
        while len(batch) < max(1, self.window // 2) and len(batch) < RECORD_BATCH:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        while len(batch) < RECORD_BATCH:  # and all that is waiting already
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _write(self, batch: list[Outcome]) -> None:
        if self._unwritten:  # the store already failed: keep everything for close()
            self._unwritten.extend(batch)
            return
        try:
            self.patience.call(self.ledger.record_outcomes, self.owner, batch)
        except LedgerUnavailable as exc:
            self._unwritten.extend(batch)
            self.on_failure(exc)
            return
        self.tally.recorded(batch)
        attempted = sum(1 for outcome in batch if outcome.attempted)
        if attempted:
            self._slots.release(attempted)
