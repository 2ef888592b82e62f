"""config.toml as typed, frozen objects; `load_config` reads and checks it (config_reader.py).

Every table maps onto a frozen dataclass; the loader checks each key against the
dataclass's fields, so an unknown key, a wrong type or a missing required key is
one ConfigError naming the key and the file. Paths are resolved relative to the
config file, never to the working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from .bounce_settings import BounceSettings, InboundSettings
from .errors import ConfigError, SecretError
from .proxies import TrustedProxies, parse_networks

CONFIG_ENV = "NEWSLETTER_CONFIG"
DEFAULT_CONFIG = "config.toml"


def _key(name: str) -> dict[str, str]:
    """Field metadata for a TOML key that is not a valid Python name (`from`)."""
    return {"key": name}


# Field metadata for values the loader fills in itself (a digest's name is its table's name).
_DERIVED = {"derived": True}


@dataclass(frozen=True)
class NewsletterSettings:
    name: str
    from_: str = field(metadata=_key("from"))
    base_url: str = "http://127.0.0.1:8000"
    postal_address: str = ""
    timezone: str = "UTC"
    reply_to: str | None = None
    # An address that accepts "unsubscribe" mails, offered in List-Unsubscribe beside the URL.
    unsubscribe_mailto: str | None = None
    # Name of the environment variable holding the HMAC key for unsubscribe/confirm tokens.
    secret_env: str = "NEWSLETTER_SECRET"
    templates: Path = Path("templates")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///subscribers/newsletter.db"
    # Seconds a writer waits for another's write lock before giving up with an error.
    busy_timeout: float = 30.0


@dataclass(frozen=True)
class DeliverySettings:
    transport: Literal["outbox", "smtp"] = "outbox"
    outbox: Path = Path("outbox")
    batch_size: int = 200
    max_retries: int = 5
    # Seconds before the first retry of a deferred (4xx) delivery; doubled for each next one.
    retry_backoff: float = 30.0
    # This many refusals (5xx) in a row pause the issue: something is wrong beyond one address.
    max_consecutive_failures: int = 20
    # Seconds a send waits for a store it cannot write before it stops (see README).
    ledger_timeout: float = 60.0
    # Sender processes for one issue; they share the connections. "auto": one per CPU core
    # on PostgreSQL, one on SQLite, whose single writer makes more processes slower
    # (bench/send.py measured 2 processes at about 0.6 to 0.9 times the speed of one).
    workers: Literal["auto"] | int = "auto"

    def worker_count(self, single_writer: bool) -> int:
        """How many sender processes `workers` asks for, on a store with a single writer
        (SQLite) or not."""
        if self.workers == "auto":
            return 1 if single_writer else max(1, len(os.sched_getaffinity(0)))
        return int(self.workers)
    # The envelope sender (Return-Path) of every message becomes bounces+TOKEN@domain (VERP),
    # TOKEN naming the delivery; None: the From address, as without bounce handling.
    bounce_address: str | None = None
    # Gmail's feedback loop: every message carries Feedback-ID: ISSUE:DIGEST:LIST:feedback_id.
    feedback_id: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    connections: int = 4
    max_per_second: float = 0
    timeout: float = 30.0


@dataclass(frozen=True)
class DkimSettings:
    domain: str
    selector: str
    private_key: Path


@dataclass(frozen=True)
class SchedulerSettings:
    misfire_grace_time: int = 3600
    # A scheduled send that could not finish (server down, issue paused) is tried again
    # this many seconds later, then twice as long each time, at most RETRY_LONGEST.
    retry_seconds: float = 300.0


@dataclass(frozen=True)
class WebSettings:
    # Subscribe-form POSTs allowed per IP address per hour.
    subscribe_rate_limit: int = 5
    # Peers whose X-Forwarded-For / X-Forwarded-Proto count: IP addresses or CIDR networks.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def proxies(self) -> TrustedProxies:
        return TrustedProxies(parse_networks(self.trusted_proxies))


@dataclass(frozen=True)
class SourceSettings:
    name: str
    kind: Literal["folder", "feed"]
    path: Path | None = None
    url: str | None = None
    timeout: float = 20.0


@dataclass(frozen=True)
class AuthorSettings:
    bio: str = ""
    url: str | None = None


@dataclass(frozen=True)
class DigestSettings:
    list: str
    subject: str
    name: str = field(default="", metadata=_DERIVED)
    template: str = "digest.mjml.j2"
    text_template: str = "digest.txt.j2"
    schedule: str | None = None
    lookback_days: int = 7
    max_articles: int = 10
    min_articles: int = 1
    excerpt_words: int = 60
    # Names of the sources this digest draws on; empty means all of them.
    sources: tuple[str, ...] = ()
    # The language of its articles (BCP 47), for screen readers and hyphenation.
    lang: str = "en"
    # "required": only an approved draft is sent (see drafting.py and sending/plan.py).
    approval: Literal["auto", "required"] = "auto"
    # Who gets the draft by mail, with an Approve link, review_before ahead of each send.
    reviewers: tuple[str, ...] = ()
    review_before: str = "24h"
    # How long after a scheduled send that waited for approval a late approval still sends.
    approval_grace: str = "24h"

    @property
    def review_lead(self) -> timedelta:
        return parse_duration(self.review_before)

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.approval_grace)


@dataclass(frozen=True)
class Config:
    path: Path
    newsletter: NewsletterSettings
    database: DatabaseSettings
    delivery: DeliverySettings
    smtp: SmtpSettings
    scheduler: SchedulerSettings
    web: WebSettings
    bounces: BounceSettings
    dkim: DkimSettings | None
    inbound: InboundSettings | None
    sources: tuple[SourceSettings, ...]
    authors: dict[str, AuthorSettings]
    digests: dict[str, DigestSettings]

    @property
    def root(self) -> Path:
        return self.path.parent

    def digest(self, name: str) -> DigestSettings:
        try:
            return self.digests[name]
        except KeyError:
            known = ", ".join(sorted(self.digests)) or "none"
            raise ConfigError(
                f"no digest named {name!r} in {self.path} (configured: {known}); "
                f"add a [digests.{name}] table or pick one of those"
            ) from None

    def first_digest_name(self) -> str:
        if not self.digests:
            raise ConfigError(f"{self.path} configures no digest; add a [digests.NAME] table")
        return next(iter(self.digests))

    def secret(self, env_name: str, what: str) -> str:
        """A secret from the environment variable the config names, or a SecretError."""
        value = os.environ.get(env_name, "")
        if not value:
            raise SecretError(
                f"{what} is not set: export {env_name}=... (the variable named in {self.path})"
            )
        return value

    @property
    def token_secret(self) -> bytes:
        return self.secret(self.newsletter.secret_env, "the token signing secret").encode()


def resolve_config_path(explicit: str | Path | None) -> Path:
    """--config, else $NEWSLETTER_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config file; every mistake is one ConfigError line."""
    config_path = resolve_config_path(path).absolute()
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {config_path} not found: pass --config PATH or set ${CONFIG_ENV}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
    from .config_reader import ConfigReader  # the checks: only when a config is read

    return ConfigReader(config_path).read(raw)


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """"24h", "90m", "1d12h", "30s": a positive duration; ValueError saying the form."""
    match = _DURATION.fullmatch(text.replace(" ", ""))
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration; write it like \"24h\", \"90m\" or \"1d12h\"")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return duration
