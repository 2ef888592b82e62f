"""What a send tells its caller when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DeliveryError
from ..store.ledger import DeliveryCounts


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
    # With several sender processes: what each of them sent in this run.
    by_worker: tuple[int, ...] = ()

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
        if len(self.by_worker) > 1:
            line += f"; {len(self.by_worker)} sender processes sent {', '.join(map(str, self.by_worker))}"
        if self.status == "stopped":
            return f"{line}; stopped: run `newsletter send {self.digest}` to resume"
        if self.status == "paused":
            return f"{line}; paused: {self.reason}"
        return line

    def as_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "number": self.number,
            "status": self.status,
            "sent_this_run": self.sent_this_run,
            "elapsed": round(self.elapsed, 3),
            "sent": self.counts.sent,
            "failed": self.counts.failed,
            "skipped": self.counts.skipped,
            "pending": self.counts.pending,
            "reason": self.reason,
        }

    def worker_line(self) -> str:
        """What a worker that joined the issue says when it leaves it."""
        state = {"done": "done", "stopped": "still sending"}.get(self.status, self.status)
        return (
            f"issue #{self.number} of {self.digest}: this worker sent {self.sent_this_run} "
            f"in {self.elapsed:.1f} s; the issue is {state}"
        )


class IssuePaused(DeliveryError):
    """The issue was paused (server unreachable, login refused, too many refusals)."""

    def __init__(self, report: SendReport) -> None:
        super().__init__(
            f"issue #{report.number} of {report.digest} paused: {report.reason}; "
            f"then run `newsletter send {report.digest}` to resume"
        )
        self.report = report
