"""Senders that join an issue being sent: `newsletter worker`, and the processes `send`
starts when `[delivery] workers` asks for more than one (see pool.py).

A worker needs nothing but the config and the store: the issue's content, list and
recipients are all recorded there, so a worker on another machine sharing the same
PostgreSQL database sends exactly what the first sender would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from ..config import Config
from ..errors import DeliveryError
from ..store import Store
from ..store.issues import IssueRecord
from ..transport import open_transport
from .template import issue_template
from .report import SendReport
from .run import SendRun
from .tally import SendProgress

IDLE_SECONDS = 2.0


def with_connections(config: Config, connections: int) -> Config:
    """The config for a sender that has `connections` of the configured connections: its
    share of the rate limit goes with them."""
    smtp = config.smtp
    share = smtp.max_per_second * connections / smtp.connections
    return replace(config, smtp=replace(smtp, connections=connections, max_per_second=share))


def work_on(
    config: Config,
    store: Store,
    issue: IssueRecord,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[SendProgress], None] | None = None,
) -> SendReport:
    """Send the issue beside its other senders until every delivery is final (or `stop`)."""
    template = issue_template(config, store.lists.get_by_id(issue.list_id), issue)
    with open_transport(config) as transport:
        transport.check()
        run = SendRun(
            config, store, issue, template, transport, resumed=True, stop=stop, progress=progress
        )
        return run.execute()


def serve(config: Config, store: Store, stop: threading.Event, say: Callable[[str], None]) -> None:
    """`newsletter worker`: join whatever issue is being sent, one after another, until
    `stop` (each run finishes its messages in flight first)."""
    while not stop.is_set():
        issue = store.issues.being_sent()
        if issue is None:
            stop.wait(IDLE_SECONDS)
            continue
        try:
            say(f"{work_on(config, store, issue, stop=stop).worker_line()}")
        except DeliveryError as exc:  # the issue paused, or this worker cannot send
            say(f"issue #{issue.number} of {issue.digest}: {exc}")
            stop.wait(IDLE_SECONDS)
