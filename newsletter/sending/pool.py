"""Several sender processes on one issue, started by `newsletter send` (or `run`).

With `[delivery] workers` above one (the default "auto" is one per CPU core), the issue
is recorded here and then sent by that many `newsletter worker --issue ID` processes,
which share the `[smtp] connections` (and the rate limit) between them. Each claims its
own batches under its own lease; if one dies, the others free its claims and send them.
This process shows the progress from the ledger, passes Ctrl-C and SIGTERM on (each
worker finishes its messages in flight), and reports on the issue when all are done.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO

from ..config import Config
from ..errors import DeliveryError
from ..store import Store
from ..store.issues import IssueRecord
from ..store.records import DONE, PAUSED
from .report import IssuePaused, SendReport
from .tally import SendProgress

PROGRESS_SECONDS = 0.25


def shares(connections: int, workers: int) -> list[int]:
    """`connections` split over `workers` (each gets at least one; no more workers than
    connections)."""
    workers = max(1, min(workers, connections))
    return [connections // workers + (1 if n < connections % workers else 0) for n in range(workers)]


class WorkerPool:
    def __init__(
        self,
        config: Config,
        store: Store,
        issue: IssueRecord,
        workers: int,
        connections: int,
        *,
        resumed: bool,
        stop: threading.Event | None = None,
        progress: Callable[[SendProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.issue = issue
        self.connections = shares(connections, workers)
        self.resumed = resumed
        self.requested = stop or threading.Event()
        self.progress = progress
        self.start = store.ledger.counts(issue.id)
        self.started = time.monotonic()

    def run(self) -> SendReport:
        outputs = [(tempfile.TemporaryFile(), tempfile.TemporaryFile()) for _ in self.connections]
        processes = [self._spawn(count, *files) for count, files in zip(self.connections, outputs)]
        signalled = False
        while any(process.poll() is None for process in processes):
            if self.requested.is_set() and not signalled:
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
                signalled = True
            self._report_progress()
            time.sleep(PROGRESS_SECONDS)
        self._report_progress()
        by_worker = tuple(_sent(output) for output, _ in outputs)
        failures = [_last_line(error) for process, (_, error) in zip(processes, outputs) if process.returncode]
        return self._conclude([failure for failure in failures if failure], by_worker)

    def _spawn(self, connections: int, output: IO[bytes], error: IO[bytes]) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "newsletter", "--config", str(self.config.path),
            "worker", "--issue", str(self.issue.id), "--connections", str(connections), "--json",
        ]
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=error)

    def _report_progress(self) -> None:
        if self.progress is not None:
            self.progress(self._snapshot())

    def _snapshot(self) -> SendProgress:
        counts = self.store.ledger.counts(self.issue.id)
        return SendProgress(
            digest=self.issue.digest,
            number=self.issue.number,
            total=counts.total,
            sent=counts.sent,
            failed=counts.failed,
            skipped=counts.skipped,
            sent_this_run=counts.sent - self.start.sent,
            elapsed=time.monotonic() - self.started,
        )

    def _conclude(self, failures: list[str], by_worker: tuple[int, ...]) -> SendReport:
        issue = self.store.issues.get(self.issue.id)
        snapshot = self._snapshot()
        report = SendReport(
            digest=issue.digest,
            status={DONE: "done", PAUSED: "paused"}.get(issue.status, "stopped"),
            number=issue.number,
            subject=issue.subject,
            counts=self.store.ledger.counts(issue.id),
            sent_this_run=snapshot.sent_this_run,
            elapsed=snapshot.elapsed,
            resumed=self.resumed,
            reason=issue.paused_reason,
            by_worker=by_worker,
        )
        if report.status == "paused":
            raise IssuePaused(report)
        if report.status != "done" and failures and not self.requested.is_set():
            raise DeliveryError(failures[0].removeprefix("Error: "))
        return report


def _sent(stream: IO[bytes]) -> int:
    """What a worker sent, from its JSON report (0 if it died before it wrote one)."""
    stream.seek(0)
    try:
        return int(json.loads(stream.read() or b"{}").get("sent_this_run", 0))
    except ValueError:
        return 0
    finally:
        stream.close()


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = stream.read().decode("utf-8", "replace").strip().splitlines()
    stream.close()
    return lines[-1] if lines else ""
