"""One sender's run on one issue: the main thread dispatches, workers send, one records.

The main thread (the dispatcher) keeps the lease, watches for revocations and claims
batches of deliveries into a bounded queue; one worker thread per transport channel (SMTP
connection) fills each message from the issue's bytes template and sends it; the
recorder writes the outcomes (recorder.py: at most a window of messages unrecorded).

A run ends for one reason, the first that occurs: nothing is left, a stop was requested
(Ctrl-C, SIGTERM), the issue pauses, the lease is lost, the store stays unwritable, or an
unexpected error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Config
from ..errors import AddressError, DeliveryError, StoreError
from ..message import MessageTemplate, Recipient, envelope_address
from ..store import Store
from ..store.issues import IssueRecord
from ..store.ledger import ClaimedDelivery, DeliveryCounts, Outcome
from ..store.records import DONE, PAUSED
from ..transport import (
    Channel,
    Envelope,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportFailure,
)
from .lease import SenderLease, lease_end, owner_is_dead
from .policy import FailureStreak, OutcomePolicy
from .recorder import WINDOW_PER_CONNECTION, LedgerUnavailable, Patience, Recorder
from .report import IssuePaused, SendReport
from .revocations import RevocationWatch
from .tally import SendProgress, Tally

PROGRESS_SECONDS = 0.25
IDLE_POLL_SECONDS = 0.01
# Waiting for deferred retries or for another sender's claims: look at least this often.
RETRY_POLL_SECONDS = 1.0

# Why a run ended.
FINISHED = "finished"
REQUESTED = "requested"
PAUSE = "paused"
LEASE_LOST = "lease lost"
STORE_UNAVAILABLE = "store unavailable"
ERROR = "error"


@dataclass(frozen=True)
class Stop:
    reason: str
    detail: str = ""
    error: BaseException | None = None


class SendRun:
    def __init__(
        self,
        config: Config,
        store: Store,
        issue: IssueRecord,
        template: MessageTemplate,
        transport: Transport,
        *,
        resumed: bool,
        stop: threading.Event | None = None,
        progress: Callable[[SendProgress], None] | None = None,
    ) -> None:
        settings = config.delivery
        self.batch_size = settings.batch_size
        self.store = store
        self.ledger = store.ledger
        self.issue = issue
        self.template = template
        self.transport = transport
        self.resumed = resumed
        self.requested = stop or threading.Event()
        self.progress = progress
        self.policy = OutcomePolicy.from_settings(settings)
        self.streak = FailureStreak(settings.max_consecutive_failures)
        self.patience = Patience(settings.ledger_timeout)
        self.lease = SenderLease(self.ledger, issue.id)
        self.tally = Tally(issue.digest, issue.number, self.patience.call(self.ledger.counts, issue.id))
        self.recorder = Recorder(
            self.ledger,
            self.lease.owner,
            self.tally,
            WINDOW_PER_CONNECTION * transport.connections,
            self.patience,
            lambda exc: self.end(Stop(STORE_UNAVAILABLE, str(exc))),
        )
        self.batches: queue.Queue[list[ClaimedDelivery] | None] = queue.Queue(
            maxsize=transport.connections
        )
        self.halt = threading.Event()  # workers: start nothing more
        self.watch: RevocationWatch | None = None
        self._stop: Stop | None = None
        self._stop_lock = threading.Lock()

    def end(self, stop: Stop) -> None:
        """Any thread: the run ends for this reason (the first one given counts)."""
        with self._stop_lock:
            if self._stop is None:
                self._stop = stop
        self.halt.set()

    # -- the main thread ----------------------------------------------------------------

    def execute(self) -> SendReport:
        epoch = self.patience.call(self.lease.join)
        if epoch is None:  # finished or paused by another sender meanwhile
            return self._report_as_stored()
        watch = self.watch = RevocationWatch(
            self.ledger, self.issue.id, self.issue.list_id, self.lease.owner,
            self.transport.connections, epoch,
        )
        workers = [
            threading.Thread(target=self._work, args=(index, watch, self.transport.channel()), daemon=True)
            for index in range(self.transport.connections)
        ]
        self.recorder.start()
        for thread in workers:
            thread.start()
        try:
            self._dispatch(watch)
        except LedgerUnavailable as exc:
            self.end(Stop(STORE_UNAVAILABLE, str(exc)))
        except BaseException as exc:
            self.end(Stop(ERROR, error=exc))
        finally:
            self.halt.set()
            for _ in workers:
                self.batches.put(None)
            for thread in workers:
                thread.join()
            unrecorded = self.recorder.close()
        return self._conclude(unrecorded)

    def _dispatch(self, watch: RevocationWatch) -> None:
        next_progress = 0.0
        while not self.halt.is_set():
            if self.requested.is_set():
                self.end(Stop(REQUESTED))
                return
            if self.lease.heartbeat_due() and not self.patience.call(self.lease.heartbeat):
                self.end(Stop(LEASE_LOST))
                return
            if watch.poll_due():
                self.patience.call(watch.poll)
            if time.monotonic() >= next_progress:
                self._report_progress()
                next_progress = time.monotonic() + PROGRESS_SECONDS
            if self.batches.full():
                self.requested.wait(IDLE_POLL_SECONDS)
                continue
            claim = self.patience.call(
                self.ledger.claim,
                self.issue.id, self.issue.list_id, self.lease.owner, lease_end(), self.batch_size,
            )
            if claim is None:
                self.end(Stop(LEASE_LOST))
                return
            self.tally.claimed(len(claim.deliveries), claim.skipped)
            if claim.deliveries:
                self.batches.put(claim.deliveries)
            elif not claim.skipped and not self._wait_for_more():
                self.end(Stop(FINISHED))
                return

    def _wait_for_more(self) -> bool:
        """Nothing is claimable now: wait for outcomes in flight, deferred retries and
        other senders' claims. False when every delivery is final."""
        if self.tally.awaiting():
            self.requested.wait(IDLE_POLL_SECONDS)
            return True
        self.patience.call(self.ledger.reap, self.issue.id, owner_is_dead)
        wake = self.patience.call(self.ledger.next_wakeup, self.issue.id)
        if wake is None:
            return False
        delay = (wake - datetime.now(timezone.utc)).total_seconds()
        self.requested.wait(min(max(delay, IDLE_POLL_SECONDS), RETRY_POLL_SECONDS))
        return True

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self.tally.snapshot())

    # -- the end -----------------------------------------------------------------------

    def _conclude(self, unrecorded: int) -> SendReport:
        """Leave the issue done, paused or resumable, and say which."""
        stop = self._stop or Stop(ERROR, error=RuntimeError("the run ended without a reason"))
        self._report_progress()
        if stop.reason == STORE_UNAVAILABLE:
            raise DeliveryError(self._unavailable_message(stop.detail, unrecorded))
        try:
            if stop.reason == PAUSE:
                self.patience.call(self.ledger.pause, self.issue.id, stop.detail)
            self.patience.call(self.lease.leave)
            if stop.reason == ERROR:
                assert stop.error is not None
                raise stop.error
            if stop.reason == LEASE_LOST:
                return self._report_as_stored()
            if stop.reason == PAUSE:
                raise IssuePaused(self._report("paused", stop.detail))
            if self.patience.call(self.ledger.finish, self.issue.id):
                return self._report("done")
            return self._report("stopped")
        except LedgerUnavailable as exc:
            raise DeliveryError(self._unavailable_message(str(exc), unrecorded)) from None

    def _report_as_stored(self) -> SendReport:
        """The run stopped because the issue changed under it: say what it is now."""
        current = self.patience.call(self.store.issues.get, self.issue.id)
        if current.status == DONE:
            return self._report("done")
        if current.status == PAUSED:
            raise IssuePaused(self._report("paused", current.paused_reason))
        raise DeliveryError(
            f"issue #{self.issue.number} of {self.issue.digest}: this sender stalled for longer "
            "than its lease and others took over its deliveries; it stopped"
        )

    def _unavailable_message(self, detail: str, unrecorded: int) -> str:
        return (
            f"issue #{self.issue.number} of {self.issue.digest} stopped: {detail}; "
            f"{unrecorded} message(s) the server accepted could not be recorded and may go "
            f"out again; run `newsletter send {self.issue.digest}` once the database is writable"
        )

    def _report(self, status: str, reason: str | None = None) -> SendReport:
        try:
            counts = self.ledger.counts(self.issue.id)
        except StoreError:
            counts = None
        snapshot = self.tally.snapshot()
        if counts is None:  # the store is unavailable: what this run knows
            counts = DeliveryCounts(
                snapshot.total - snapshot.done, snapshot.sent, snapshot.failed, snapshot.skipped
            )
        return SendReport(
            digest=self.issue.digest,
            status=status,
            number=self.issue.number,
            subject=self.issue.subject,
            counts=counts,
            sent_this_run=snapshot.sent_this_run,
            elapsed=snapshot.elapsed,
            resumed=self.resumed,
            reason=reason,
        )

    # -- workers -------------------------------------------------------------------------

    def _work(self, index: int, watch: RevocationWatch, channel: Channel) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                self._send_batch(index, watch, channel, batch)
        except BaseException as exc:
            self.end(Stop(ERROR, error=exc))
            # Keep draining so the main thread's put() of the end markers never blocks.
            while (batch := self.batches.get()) is not None:
                self._release(batch)
        finally:
            channel.close()

    def _send_batch(
        self, index: int, watch: RevocationWatch, channel: Channel, batch: list[ClaimedDelivery]
    ) -> None:
        for position, delivery in enumerate(batch):
            if self.halt.is_set() or not self.lease.valid() or not self.recorder.take_slot(self.halt):
                self._release(batch[position:])
                return
            reason = watch.starting(index, delivery.id)
            if reason is not None:
                outcome = self.policy.revoked(delivery, reason)
            else:
                try:
                    outcome = self._deliver(channel, delivery)
                finally:
                    watch.finished(index)
            if not outcome.attempted:  # nothing went out: no duplicate possible
                self.recorder.return_slot()
            self.recorder.put(outcome)

    def _deliver(self, channel: Channel, delivery: ClaimedDelivery) -> Outcome:
        recipient = Recipient(delivery.email, delivery.name, delivery.subscriber_id, str(delivery.id))
        stuffed = self.transport.takes_stuffed
        try:
            data = self.template.fill(recipient, stuffed=stuffed)
            sender, envelope_id = self.template.envelope(self.issue.id, delivery.subscriber_id)
            envelope = Envelope(
                sender, envelope_address(delivery.email), self.issue.label, str(delivery.id), envelope_id
            )
            channel.send(envelope, data, stuffed=stuffed)
        except AddressError as exc:
            return self.policy.undeliverable(delivery, str(exc))
        except PermanentFailure as exc:
            streak = self.streak.refusal()
            if streak is not None:
                self.end(Stop(PAUSE, (
                    f"{streak} deliveries in a row were refused (the last to {delivery.email}: "
                    f"{exc.reply[:120]}); check the server's replies and the [smtp] settings"
                )))
            return self.policy.refused(delivery, exc.reply)
        except TemporaryFailure as exc:
            return self.policy.deferred(delivery, exc.reply, datetime.now(timezone.utc))
        except TransportFailure as exc:
            self.end(Stop(PAUSE, str(exc)))
            return self.policy.released(delivery)
        self.streak.success()
        return self.policy.accepted(delivery)

    def _release(self, batch: list[ClaimedDelivery]) -> None:
        for delivery in batch:
            self.recorder.put(self.policy.released(delivery))
