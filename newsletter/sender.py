"""Send an issue of a digest to its list, exactly once per recipient.

    plan = prepare_send(...)     # resume the unfinished issue, or compose and render a new one
    report = execute(...)        # record it (new), then claim, send and record, batch by batch

`send_digest` does both (the scheduler calls it). A run holds the issue's lease in the
store and renews it while it works; its main thread claims batches of deliveries into a
bounded queue, one worker thread per transport channel (SMTP connection) fills each
message from the issue's bytes template and sends it, and a recorder thread writes the
outcomes as they arrive (all that are waiting in one transaction: group commit). The
only moment at which a recipient can get a message twice is between the server's final
reply and that write.

A worker sends nothing once the run's view of its lease is older than the lease minus a
margin (it is renewed every HEARTBEAT seconds), so a sender that stalled and lost its
lease to another cannot send a claimed message the other sends as well.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from secrets import token_hex

from .compose import next_issue
from .config import Config, DigestSettings
from .errors import AddressError, DeliveryError
from .message import MessageTemplate, Recipient, envelope_address
from .models import IssueContent
from .render import RenderedIssue, render_issue
from .signing import load_signer
from .store import Store
from .store.issues import (
    FAILED,
    PENDING,
    SENT,
    SKIPPED,
    ArticleEntry,
    ClaimedDelivery,
    DeliveryCounts,
    IssueRecord,
    Outcome,
)
from .store.records import ListRecord
from .transport import (
    Channel,
    Envelope,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportFailure,
    open_transport,
)

LEASE = timedelta(seconds=60)
HEARTBEAT_SECONDS = 10.0
# A worker stops sending this long before the lease it last renewed would run out.
LEASE_MARGIN_SECONDS = 15.0
PROGRESS_SECONDS = 0.25
# How often claimed deliveries are checked for recipients who left or were blocked since
# the claim: the longest an unsubscribe waits before it stops a claimed message. The check
# reads every claimed row (~10-25 ms for 1,600), so it is not run more often.
REVOCATION_POLL_SECONDS = 1.0
IDLE_POLL_SECONDS = 0.05
# Waiting for deferred retries or for another sender's claims to run out: look this often.
RETRY_POLL_SECONDS = 1.0
# The recorder writes at most this many outcomes in one transaction.
RECORD_BATCH = 1000
RECORD_ATTEMPTS = 5
_REPLY_CHARS = 300


def _ignore(_: str) -> None:
    pass


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


@dataclass(frozen=True)
class SendReport:
    digest: str
    status: str  # done | stopped | paused | nothing
    number: int | None = None
    subject: str | None = None
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    sent_this_run: int = 0
    elapsed: float = 0.0
    resumed: bool = False
    reason: str | None = None

    def __str__(self) -> str:
        if self.status == "nothing":
            return f"{self.reason}; nothing sent"
        c = self.counts
        rate = self.sent_this_run / self.elapsed if self.elapsed > 0 else 0.0
        line = (
            f"issue #{self.number} of {self.digest}: {c.sent} sent, {c.failed} failed, "
            f"{c.skipped} skipped, {c.pending} left; this run sent {self.sent_this_run} "
            f"in {self.elapsed:.1f} s ({rate:.0f}/s)"
        )
        if self.status == "stopped":
            return f"{line}; stopped: run `newsletter send {self.digest}` to resume"
        if self.status == "paused":
            return f"{line}; paused: {self.reason}"
        return line


class IssuePaused(DeliveryError):
    """The issue was paused (server unreachable, login refused, too many failures)."""

    def __init__(self, report: SendReport) -> None:
        super().__init__(
            f"issue #{report.number} of {report.digest} paused: {report.reason}; "
            f"then run `newsletter send {report.digest}` to resume"
        )
        self.report = report


@dataclass(frozen=True)
class SendPlan:
    """What a send would do: resume `issue`, or record and send the new `content`."""

    digest: DigestSettings
    list: ListRecord
    issue: IssueRecord | None
    content: IssueContent | None
    rendered: RenderedIssue | None
    recipients: int  # a new issue's recipients, or a resumed issue's deliveries left

    @property
    def nothing_new(self) -> bool:
        return self.issue is None and self.rendered is None

    @property
    def number(self) -> int:
        if self.issue is not None:
            return self.issue.number
        assert self.content is not None
        return self.content.number

    @property
    def subject(self) -> str:
        return self.issue.subject if self.issue else self.content.subject  # type: ignore[union-attr]

    @property
    def created(self) -> datetime:
        return self.issue.created_at if self.issue else self.content.created  # type: ignore[union-attr]

    @property
    def article_count(self) -> int:
        return len(self.content.articles) if self.content else 0

    def nothing_reason(self) -> str:
        return f"no new articles for {self.digest.name} in the last {self.digest.lookback_days} days"

    def check_sendable(self) -> None:
        """DeliveryError when a new issue would go to nobody (nothing is recorded then)."""
        if self.issue is None and self.recipients == 0:
            raise DeliveryError(
                f"list {self.list.slug!r} has no confirmed subscribers; add some with "
                f"`newsletter subscribers add EMAIL --list {self.list.slug}`"
            )

    def template(self, config: Config) -> MessageTemplate:
        """The issue's message; a resumed issue sends exactly what it was recorded with."""
        if self.issue is not None:
            html_part, text_part = self.issue.html, self.issue.text
        else:
            assert self.rendered is not None
            html_part, text_part = self.rendered.html, self.rendered.text
        return MessageTemplate(
            config,
            list_id=self.list.id,
            list_slug=self.list.slug,
            digest=self.digest.name,
            label=f"{self.digest.name}-{self.number}.{self.created:%Y%m%d%H%M%S}",
            subject=self.subject,
            html_part=html_part,
            text_part=text_part,
            signer=load_signer(config),
        )


def send_digest(
    config: Config,
    store: Store,
    digest_name: str,
    *,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
    warn: Callable[[str], None] = _ignore,
) -> SendReport:
    """Resume the digest's unfinished issue, else compose, record and send the next one.

    Returns when every delivery is final, or when `stop` is set (messages in flight are
    finished; the issue stays resumable). Raises IssuePaused when the issue had to pause.
    """
    plan = prepare_send(config, store, digest_name, warn)
    return execute(config, store, plan, progress=progress, stop=stop)


def prepare_send(
    config: Config, store: Store, digest_name: str, warn: Callable[[str], None] = _ignore
) -> SendPlan:
    """Find the unfinished issue, or compose and render the next one; records nothing."""
    digest = config.digest(digest_name)
    issue = store.issues.unfinished(digest.name)
    if issue is not None:
        # The list it was recorded for, even if the config now names another.
        list_record = store.lists.get_by_id(issue.list_id)
        left = store.issues.counts(issue.id).pending
        return SendPlan(digest, list_record, issue, None, None, left)
    list_record = store.lists.get(digest.list)
    content = next_issue(config, digest, store, warn)
    if len(content.articles) < max(1, digest.min_articles):
        return SendPlan(digest, list_record, None, content, None, 0)
    rendered = render_issue(config, digest, content)
    for message in rendered.warnings:
        warn(message)
    recipients = store.issues.recipient_count(list_record.id)
    return SendPlan(digest, list_record, None, content, rendered, recipients)


def execute(
    config: Config,
    store: Store,
    plan: SendPlan,
    *,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Record the plan's issue (when new) and send it; see send_digest."""
    if plan.nothing_new:
        return SendReport(plan.digest.name, "nothing", reason=plan.nothing_reason())
    plan.check_sendable()
    # Everything that can fail for want of a setting fails here, before anything is recorded.
    template = plan.template(config)
    owner = new_owner()
    with open_transport(config) as transport:
        transport.check()
        issue = _take_issue(store, plan, owner)
        run = _Run(config, store, plan, issue, template, transport, owner, stop, progress)
        return run.execute()


def send_test_copy(config: Config, plan: SendPlan, email: str) -> None:
    """One copy of the planned issue to `email`, recording nothing (its unsubscribe link
    names no subscriber)."""
    template = plan.template(config)
    data = template.fill(Recipient(email, "", 0, "test-" + token_hex(6)))
    with open_transport(config) as transport:
        transport.send_message(envelope_address(template.sender), envelope_address(email), data)


def new_owner() -> str:
    """Who holds a lease: host, process and a random part (two runs in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner was a process on this host that no longer exists."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, _ = parts
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _lease_end() -> datetime:
    return datetime.now(timezone.utc) + LEASE


def _take_issue(store: Store, plan: SendPlan, owner: str) -> IssueRecord:
    """Record the new issue (its lease ours), or take over the unfinished one's lease."""
    if plan.issue is None:
        assert plan.content is not None and plan.rendered is not None
        return store.issues.record(
            digest=plan.digest.name,
            number=plan.number,
            list_id=plan.list.id,
            subject=plan.content.subject,
            html=plan.rendered.html,
            text=plan.rendered.text,
            articles=[ArticleEntry(a.id, a.title, a.url) for a in plan.content.articles],
            owner=owner,
            lease_until=_lease_end(),
            created_at=plan.content.created,
        )
    current = store.issues.get(plan.issue.id)
    holder = current.lease_owner
    free = (
        holder is None
        or current.lease_expires is None
        or current.lease_expires < datetime.now(timezone.utc)
        or owner_is_dead(holder)
    )
    if free and store.issues.take_lease(
        current.id,
        owner,
        _lease_end(),
        previous_owner=holder,
        previous_dead=holder is not None and owner_is_dead(holder),
    ):
        return store.issues.get(current.id)
    latest = store.issues.get(current.id)
    if latest.status == "done":
        raise DeliveryError(f"issue #{latest.number} of {latest.digest} was just finished by another sender")
    until = f"{latest.lease_expires:%H:%M:%S} UTC" if latest.lease_expires else "soon"
    raise DeliveryError(
        f"issue #{latest.number} of {latest.digest} is being sent by {latest.lease_owner} "
        f"(lease until {until}); let it finish, or run send again once that lease ran out"
    )


class _Run:
    """One sending run of one issue: the main thread dispatches, workers send, one
    thread records."""

    def __init__(
        self,
        config: Config,
        store: Store,
        plan: SendPlan,
        issue: IssueRecord,
        template: MessageTemplate,
        transport: Transport,
        owner: str,
        stop: threading.Event | None,
        progress: Callable[[SendProgress], None] | None,
    ) -> None:
        self.delivery = config.delivery
        self.store = store
        self.plan = plan
        self.issue = issue
        self.template = template
        self.sender = envelope_address(template.sender)
        self.transport = transport
        self.owner = owner
        self.stop = stop or threading.Event()
        self.progress = progress
        self.halt = threading.Event()  # workers: send nothing more
        self.batches: queue.Queue[list[ClaimedDelivery] | None] = queue.Queue(
            maxsize=transport.connections
        )
        self.outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        # delivery id -> why its recipient may no longer be mailed (replaced, never mutated)
        self.revoked: dict[int, str] = {}
        self.lock = threading.Lock()
        self.lease_valid_until = time.monotonic() + LEASE.total_seconds() - LEASE_MARGIN_SECONDS
        start = store.issues.counts(issue.id)
        self.total = start.total
        self.sent, self.failed, self.skipped = start.sent, start.failed, start.skipped
        self.sent_this_run = 0
        self.in_flight = 0  # claimed, outcome not yet written
        self.consecutive_failures = 0
        self.pause_reason: str | None = None
        self.lease_lost = False
        self.error: BaseException | None = None
        self.started = time.monotonic()

    # -- main thread -----------------------------------------------------------------------

    def execute(self) -> SendReport:
        workers = [
            threading.Thread(target=self.work, args=(self.transport.channel(),), daemon=True)
            for _ in range(self.transport.connections)
        ]
        recorder = threading.Thread(target=self.record, daemon=True)
        for thread in (*workers, recorder):
            thread.start()
        try:
            self.dispatch()
        except BaseException as exc:
            self.fail(exc)
        finally:
            for _ in workers:
                self.batches.put(None)
            for worker in workers:
                worker.join()
            self.outcomes.put(None)
            recorder.join()
        return self.finish()

    def dispatch(self) -> None:
        next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        next_progress = next_revocation_check = 0.0
        while not self.halt.is_set():
            if self.stop.is_set():
                self.halt.set()
                return
            now = time.monotonic()
            if now >= next_heartbeat:
                self.heartbeat()
                next_heartbeat = now + HEARTBEAT_SECONDS
            if now >= next_progress:
                self.report_progress()
                next_progress = now + PROGRESS_SECONDS
            if now >= next_revocation_check:
                self.revoked = self.store.issues.revoked_claims(
                    self.issue.id, self.issue.list_id, self.owner
                )
                next_revocation_check = now + REVOCATION_POLL_SECONDS
            if self.batches.full():
                self.stop.wait(IDLE_POLL_SECONDS)
                continue
            claim = self.store.issues.claim(
                self.issue.id, self.issue.list_id, self.owner, _lease_end(), self.delivery.batch_size
            )
            if claim is None:
                self.lose_lease()
                return
            with self.lock:
                self.skipped += claim.skipped
                self.in_flight += len(claim.deliveries)
            if claim.deliveries:
                self.batches.put(claim.deliveries)
            elif not claim.skipped and not self.wait_for_more():
                return

    def wait_for_more(self) -> bool:
        """Nothing is claimable now: wait for outcomes in flight, deferred retries and
        other senders' expired claims. False when every delivery is final."""
        with self.lock:
            in_flight = self.in_flight
        if not in_flight:
            self.store.issues.reclaim_expired(self.issue.id, self.owner)
            wake = self.store.issues.next_wakeup(self.issue.id)
            if wake is None:
                return False
            delay = (wake - datetime.now(timezone.utc)).total_seconds()
            self.stop.wait(min(max(delay, IDLE_POLL_SECONDS), RETRY_POLL_SECONDS))
        else:
            self.stop.wait(IDLE_POLL_SECONDS)
        return True

    def heartbeat(self) -> None:
        renewed_at = time.monotonic()
        if self.store.issues.renew(self.issue.id, self.owner, _lease_end()):
            self.lease_valid_until = renewed_at + LEASE.total_seconds() - LEASE_MARGIN_SECONDS
        else:
            self.lose_lease()

    def lose_lease(self) -> None:
        self.lease_lost = True
        self.halt.set()

    def report_progress(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            snapshot = SendProgress(
                digest=self.issue.digest,
                number=self.issue.number,
                total=self.total,
                sent=self.sent,
                failed=self.failed,
                skipped=self.skipped,
                sent_this_run=self.sent_this_run,
                elapsed=time.monotonic() - self.started,
            )
        self.progress(snapshot)

    def finish(self) -> SendReport:
        """Leave the issue done, paused, or resumable, and say which."""
        self.report_progress()
        issues = self.store.issues
        if self.lease_lost:
            issues.release(self.issue.id, self.owner)  # only rows still claimed by this run
            raise DeliveryError(
                f"issue #{self.issue.number} of {self.issue.digest}: another sender took over "
                "its lease (this run stalled for longer than the lease); it goes on sending"
            )
        if self.error is not None:
            issues.release(self.issue.id, self.owner)
            raise self.error
        if self.pause_reason is not None:
            issues.release(self.issue.id, self.owner, pause_reason=self.pause_reason)
            raise IssuePaused(self.report("paused"))
        if issues.finish(self.issue.id, self.owner):
            return self.report("done")
        issues.release(self.issue.id, self.owner)
        return self.report("stopped")

    def report(self, status: str) -> SendReport:
        return SendReport(
            digest=self.issue.digest,
            status=status,
            number=self.issue.number,
            subject=self.issue.subject,
            counts=self.store.issues.counts(self.issue.id),
            sent_this_run=self.sent_this_run,
            elapsed=time.monotonic() - self.started,
            resumed=self.plan.issue is not None,
            reason=self.pause_reason,
        )

    def fail(self, exc: BaseException) -> None:
        """Any thread: stop everything; the error is raised once all threads are done."""
        with self.lock:
            if self.error is None:
                self.error = exc
        self.halt.set()

    def pause(self, reason: str) -> None:
        with self.lock:
            if self.pause_reason is None:
                self.pause_reason = reason
        self.halt.set()

    # -- workers -------------------------------------------------------------------------

    def work(self, channel: Channel) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                for position, delivery in enumerate(batch):
                    if self.halt.is_set() or time.monotonic() > self.lease_valid_until:
                        self.release(batch[position:])
                        break
                    self.outcomes.put(self.deliver(channel, delivery))
        except BaseException as exc:
            self.fail(exc)
            # Keep draining so the main thread's put() of the end markers never blocks.
            while (batch := self.batches.get()) is not None:
                self.release(batch)
        finally:
            channel.close()

    def deliver(self, channel: Channel, delivery: ClaimedDelivery) -> Outcome:
        revoked = self.revoked.get(delivery.id)
        if revoked is not None:
            return Outcome(delivery.id, SKIPPED, delivery.subscriber_id, error=revoked, attempted=False)
        recipient = Recipient(delivery.email, delivery.name, delivery.subscriber_id, str(delivery.id))
        try:
            data = self.template.fill(recipient)
            envelope = Envelope(self.sender, envelope_address(delivery.email), self.issue.label, str(delivery.id))
            channel.send(envelope, data)
        except AddressError as exc:
            return Outcome(delivery.id, FAILED, delivery.subscriber_id, error=str(exc))
        except PermanentFailure as exc:
            self.count_failure(delivery, exc.reply)
            return Outcome(delivery.id, FAILED, delivery.subscriber_id, error=exc.reply[:_REPLY_CHARS], bounce=True)
        except TemporaryFailure as exc:
            self.count_failure(delivery, exc.reply)
            return self.deferral(delivery, exc.reply[:_REPLY_CHARS])
        except TransportFailure as exc:
            self.pause(str(exc))
            return Outcome(delivery.id, PENDING, attempted=False)
        with self.lock:
            self.consecutive_failures = 0
        return Outcome(delivery.id, SENT, delivery.subscriber_id)

    def deferral(self, delivery: ClaimedDelivery, reply: str) -> Outcome:
        """Try again after a growing pause, up to max_retries; then it failed."""
        attempts = delivery.attempts + 1
        if attempts > self.delivery.max_retries:
            return Outcome(
                delivery.id, FAILED, delivery.subscriber_id,
                error=f"gave up after {attempts} attempts: {reply}",
            )
        delay = self.delivery.retry_backoff * 2 ** (attempts - 1)
        retry_at = datetime.now(timezone.utc) + timedelta(seconds=delay)
        return Outcome(delivery.id, PENDING, delivery.subscriber_id, error=reply, retry_at=retry_at)

    def count_failure(self, delivery: ClaimedDelivery, reply: str) -> None:
        with self.lock:
            self.consecutive_failures += 1
            failures = self.consecutive_failures
        if failures >= self.delivery.max_consecutive_failures:
            self.pause(
                f"{failures} deliveries in a row failed (the last to {delivery.email}: "
                f"{reply[:120]}); check the server's replies and the [smtp] settings"
            )

    def release(self, batch: list[ClaimedDelivery]) -> None:
        for delivery in batch:
            self.outcomes.put(Outcome(delivery.id, PENDING, attempted=False))

    # -- recorder ----------------------------------------------------------------------------

    def record(self) -> None:
        """Write outcomes as they arrive: whatever is waiting goes in one transaction."""
        finished = False
        while not finished:
            first = self.outcomes.get()
            batch: list[Outcome] = []
            if first is None:
                finished = True
            else:
                batch.append(first)
            while not finished and len(batch) < RECORD_BATCH:
                try:
                    item = self.outcomes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    finished = True
                else:
                    batch.append(item)
            if batch:
                self.write(batch)

    def write(self, batch: list[Outcome]) -> None:
        for attempt in range(RECORD_ATTEMPTS):
            try:
                self.store.issues.record_outcomes(self.owner, batch)
                break
            except Exception as exc:  # the database is busy or failing: messages went out
                if attempt + 1 == RECORD_ATTEMPTS:
                    self.fail(exc)
                    return
                time.sleep(2**attempt)
        with self.lock:
            self.in_flight -= len(batch)
            for outcome in batch:
                if outcome.status == SENT:
                    self.sent += 1
                    self.sent_this_run += 1
                elif outcome.status == FAILED:
                    self.failed += 1
                elif outcome.status == SKIPPED:
                    self.skipped += 1
