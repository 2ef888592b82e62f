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
from ..message import Recipient, envelope_address
from ..store import Store
from ..transport import open_transport
from .plan import AwaitingApproval, NewIssue, NothingNew, ResumeIssue, SendPlan, prepare_send
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


def _ignore(_: str) -> None:
    pass


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


def execute(
    config: Config,
    store: Store,
    plan: SendPlan,
    *,
    progress: Callable[[SendProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Record the plan's issue (when new) and send it; see send_digest."""
    if isinstance(plan, NothingNew):
        return SendReport(plan.digest.name, "nothing", reason=plan.reason)
    if isinstance(plan, NewIssue):
        plan.check_sendable()
    # Everything that can fail for want of a setting fails here, before anything is recorded.
    template = plan.template(config)
    with open_transport(config) as transport:
        transport.check()
        issue = plan.take(store)
        run = SendRun(
            config, store, issue, template, transport,
            resumed=isinstance(plan, ResumeIssue), stop=stop, progress=progress,
        )
        return run.execute()


def send_test_copy(config: Config, plan: NewIssue | ResumeIssue, email: str) -> None:
    """One copy of the planned issue to `email`, recording nothing (its unsubscribe link
    names no subscriber)."""
    template = plan.template(config)
    data = template.fill(Recipient(email, "", 0, "test-" + token_hex(6)))
    with open_transport(config) as transport:
        transport.send_message(envelope_address(template.sender), envelope_address(email), data)
