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
from .errors import ConfigError

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


def crontab_triggers(config: Config) -> dict[str, CronTrigger]:
    """A trigger per digest with a `schedule`; ConfigError naming the digest for a bad one."""
    triggers = {}
    for digest in config.digests.values():
        if digest.schedule is None:
            continue
        try:
            triggers[digest.name] = CronTrigger.from_crontab(
                standard_weekdays(digest.schedule), timezone=config.newsletter.tz
            )
        except ValueError as exc:
            raise ConfigError(
                f"{config.path}: [digests.{digest.name}].schedule: invalid crontab "
                f"{digest.schedule!r} ({exc}); use five fields, minute hour day month weekday, "
                'such as "0 8 * * mon"'
            ) from None
    return triggers


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_weekdays(crontab: str) -> str:
    """The crontab with its weekday field in names, as crontab(5) means its numbers.

    APScheduler 3 counts weekdays from Monday = 0, crontab from Sunday = 0 (and 7): "0 8 * * 1"
    must mean Monday. Numbers, ranges and steps are expanded to a list of day names.
    """
    fields = crontab.split()
    if len(fields) != 5 or not any(ch.isdigit() for ch in fields[4]):
        return crontab  # names only (or a field count APScheduler reports itself)
    days: set[int] = set()
    for item in fields[4].split(","):
        days |= _weekday_item(item)
    fields[4] = ",".join(_CRON_DAYS[day] for day in sorted(days))
    return " ".join(fields)


def _weekday_item(item: str) -> set[int]:
    """Days (0 = Sunday) of one comma item: `*`, `N`, `N-M`, `NAME`, each with an optional /STEP."""
    span, _, step_text = item.partition("/")
    step = _weekday_number(step_text, allow_big=True) if step_text else 1
    if span == "*":
        first, last = 0, 6
    else:
        low, _, high = span.partition("-")
        first = _weekday_number(low)
        last = _weekday_number(high) if high else (6 if step_text else first)
    if first > last or step < 1:
        raise ValueError(f"bad weekday range {item!r}")
    return {day % 7 for day in range(first, last + 1, step)}


def _weekday_number(text: str, *, allow_big: bool = False) -> int:
    if text.lower() in _CRON_DAYS:
        return _CRON_DAYS.index(text.lower())
    if not text.isdigit() or (int(text) > 7 and not allow_big):
        raise ValueError(f"bad weekday {text!r} (0-7 or sun-sat)")
    return int(text)
