"""What the config asks `newsletter run` to do, and when: a job per scheduled digest (its
send, at its crontab), and for a digest that is reviewed (reviewers, or approval =
"required") a review job `review_before` ahead of each send. scheduler.py keeps the
stored jobs in line with this list.

Stored jobs name their function by text, so these names must not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from .config import Config

RUN_DIGEST = "newsletter.scheduler:run_digest"
REVIEW_DIGEST = "newsletter.scheduler:review_digest"
CRON_PREFIX = "digest:"
REVIEW_PREFIX = "review:"


class ReviewTrigger(BaseTrigger):
    """Fires `lead` before each time of a digest's send trigger: when its review mail goes out."""

    def __init__(self, send_trigger: CronTrigger, lead: timedelta) -> None:
        self.send_trigger = send_trigger
        self.lead = lead

    @property
    def timezone(self) -> Any:
        return self.send_trigger.timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        previous = None if previous_fire_time is None else _shifted(previous_fire_time, self.lead)
        send_at = self.send_trigger.get_next_fire_time(previous, _shifted(now, self.lead))
        return None if send_at is None else _shifted(send_at, -self.lead).astimezone(self.timezone)

    def __str__(self) -> str:
        return f"{self.lead} before {self.send_trigger}"


def _shifted(moment: datetime, by: timedelta) -> datetime:
    """Elapsed time, not wall-clock time: the same across a DST change."""
    return moment.astimezone(timezone.utc) + by


@dataclass(frozen=True)
class JobSpec:
    """A job the config asks for: a digest's send, or its review mail ahead of it."""

    id: str
    func: str
    trigger: BaseTrigger
    digest: str
    kind: str  # "cron" | "review"
    schedule: str

    @property
    def name(self) -> str:
        return f"{self.digest} ({self.schedule})" if self.kind == "cron" else f"{self.digest} review ({self.schedule})"


def scheduled_jobs(config: Config, triggers: dict[str, CronTrigger]) -> list[JobSpec]:
    specs = []
    for name, trigger in triggers.items():
        digest = config.digests[name]
        specs.append(JobSpec(CRON_PREFIX + name, RUN_DIGEST, trigger, name, "cron", str(digest.schedule)))
        if digest.reviewers or digest.approval == "required":
            specs.append(
                JobSpec(
                    REVIEW_PREFIX + name,
                    REVIEW_DIGEST,
                    ReviewTrigger(trigger, digest.review_lead),
                    name,
                    "review",
                    f"{digest.review_before} before {digest.schedule}",
                )
            )
    return specs
