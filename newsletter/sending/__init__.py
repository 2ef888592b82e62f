"""Send an issue of a digest to its list, exactly once per recipient.

    plan = prepare_send(...)     # resume the unfinished issue, or compose and render a new one
    report = execute(...)        # record it (new), then claim, send and record, batch by batch

`send_digest` does both (the scheduler calls it). The pieces: plan.py (what to send),
run.py (one sender's run: dispatcher, workers, recorder), policy.py (what a server's
answer means), recorder.py (the bounded window of unrecorded messages), lease.py (the
sender's lease), revocations.py (honouring unsubscribes mid-send), tally.py and report.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from secrets import token_hex

from ..config import Config
from ..message import TEST_COPY_SUBSCRIBER, Recipient, envelope_address
from ..store import Store
from ..transport import open_transport
from .plan import AwaitingApproval, NewIssue, NothingNew, ResumeIssue, SendPlan, ignore_warnings, prepare_send
from .pool import WorkerPool
from .report import IssuePaused, SendReport
from .run import SendRun
from .tally import SendProgress

__all__ = [
    "AwaitingApproval",
    "IssuePaused",
    "NewIssue",
    "NothingNew",
    "ResumeIssue",
    "SendPlan",
    "SendProgress",
    "SendReport",
    "execute",
    "prepare_send",
    "send_digest",
    "send_test_copy",
]


TEST_SUBJECT_PREFIX = "[TEST] "


def send_digest(
    config: Config,
    store: Store,
    digest_name: str,
    *,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
    warn: Callable[[str], None] = ignore_warnings,
    workers: int | None = None,
) -> SendReport:
    """Resume the digest's unfinished issue, else compose, record and send the next one.

    Returns when every delivery is final, or when `stop` is set (messages in flight are
    finished; the issue stays resumable). Raises IssuePaused when the issue had to pause.
    `progress` runs on the sender's dispatcher, which also acknowledges unsubscribes:
    it must return promptly, and an unsubscribe made inside it waits for its timeout.
    """
    plan = prepare_send(config, store, digest_name, warn)
    return execute(config, store, plan, workers=workers, progress=progress, stop=stop)


def execute(
    config: Config,
    store: Store,
    plan: SendPlan,
    *,
    workers: int | None = None,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Record the plan's issue (when new) and send it, in this process or with a pool of
    `workers` sender processes (default: [delivery] workers); see send_digest."""
    if isinstance(plan, NothingNew):
        return SendReport(plan.digest.name, "nothing", reason=plan.reason)
    if isinstance(plan, NewIssue):
        plan.check_sendable()
    # Everything that can fail for want of a setting fails here, before anything is recorded.
    template = plan.template(config)
    resumed = isinstance(plan, ResumeIssue)
    with open_transport(config) as transport:
        transport.check()
        issue = plan.take(store)
        connections = transport.connections
        processes = _processes(config, store, issue.id, workers, connections)
        if processes == 1:
            run = SendRun(
                config, store, issue, template, transport, resumed=resumed, stop=stop, progress=progress
            )
            return run.execute()
    pool = WorkerPool(
        config, store, issue, processes, connections, resumed=resumed, stop=stop, progress=progress
    )
    return pool.run()


def _processes(config: Config, store: Store, issue_id: int, workers: int | None, connections: int) -> int:
    """Sender processes for the issue: as many as asked for, but no more than there are
    connections to share or batches to send."""
    wanted = workers if workers is not None else config.delivery.worker_count(store.dialect == "sqlite")
    batches = -(-store.ledger.counts(issue_id).pending // config.delivery.batch_size)
    return max(1, min(wanted, connections, batches))


def send_test_copy(config: Config, plan: NewIssue | ResumeIssue, emails: list[str]) -> None:
    """A copy of the planned issue to each address, recording nothing. Its subject says
    [TEST]; its unsubscribe link names no subscriber (the web side says it was a test)."""
    template = plan.template(config, subject_prefix=TEST_SUBJECT_PREFIX)
    with open_transport(config) as transport:
        for email in emails:
            data = template.fill(Recipient(email, "", TEST_COPY_SUBSCRIBER, "test-" + token_hex(6)))
            transport.send_message(envelope_address(template.sender), envelope_address(email), data)
