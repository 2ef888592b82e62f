"""Read config.toml into typed, frozen objects.

Every table maps onto a frozen dataclass; the loader checks each key against the
dataclass's fields, so an unknown key, a wrong type or a missing required key is
one ConfigError naming the key and the file. Paths are resolved relative to the
config file, never to the working directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import addresses
from .bounce_settings import BounceSettings, InboundSettings, bounce_settings_problems
from .errors import AddressError, ConfigError, SecretError
from .proxies import TrustedProxies, parse_networks
from .urls import allowed, safe_url

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
    # Sender processes for one issue ("auto": one per CPU core); they share the connections.
    workers: Literal["auto"] | int = "auto"

    def worker_count(self) -> int:
        """How many sender processes `workers` asks for."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
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


_TOP_LEVEL = {
    "newsletter": NewsletterSettings,
    "database": DatabaseSettings,
    "delivery": DeliverySettings,
    "smtp": SmtpSettings,
    "scheduler": SchedulerSettings,
    "web": WebSettings,
    "bounces": BounceSettings,
    "dkim": DkimSettings,
    "inbound": InboundSettings,
}

# Tables that are absent (None) unless the config has them.
_OPTIONAL_TABLES = ("dkim", "inbound")


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
    return _ConfigReader(config_path).read(raw)


T = TypeVar("T")


class _ConfigReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent

    def fail(self, where: str, problem: str) -> typing.NoReturn:
        raise ConfigError(f"{self.path}: {where}: {problem}")

    def read(self, raw: dict[str, Any]) -> Config:
        allowed = set(_TOP_LEVEL) | {"sources", "authors", "digests"}
        for key in raw:
            if key not in allowed:
                self.fail(key, f"unknown key; expected one of {', '.join(sorted(allowed))}")
        if "newsletter" not in raw:
            self.fail("[newsletter]", "missing required table (needs at least name and from)")
        tables = {
            name: self.table(cls, raw.get(name, {}), f"[{name}]")
            for name, cls in _TOP_LEVEL.items()
            if name not in _OPTIONAL_TABLES
        }
        database = tables["database"]
        tables["database"] = replace(database, url=sqlite_url_relative_to(database.url, self.root))
        optional = {
            name: self.table(_TOP_LEVEL[name], raw[name], f"[{name}]") if name in raw else None
            for name in _OPTIONAL_TABLES
        }
        sources = tuple(
            self.source(entry, i) for i, entry in enumerate(self.list_of(raw, "sources"))
        )
        authors = {name: self.author(name, entry) for name, entry in self.dict_of(raw, "authors").items()}
        digests = {
            name: self.digest(name, entry) for name, entry in self.dict_of(raw, "digests").items()
        }
        config = Config(
            path=self.path,
            sources=sources,
            authors=authors,
            digests=digests,
            **tables,  # type: ignore[arg-type]
            **optional,  # type: ignore[arg-type]
        )
        self.check(config)
        return config

    def list_of(self, raw: dict[str, Any], key: str) -> list[Any]:
        value = raw.get(key, [])
        if not isinstance(value, list):
            self.fail(key, f"must be an array of tables ([[{key}]])")
        return value

    def dict_of(self, raw: dict[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"must be a table of tables ([{key}.NAME])")
        return value

    def source(self, entry: Any, index: int) -> SourceSettings:
        where = f"[[sources]] #{index + 1}"
        source = self.table(SourceSettings, entry, where)
        if source.kind == "folder" and source.path is None:
            self.fail(f"{where} ({source.name})", "a folder source needs path = \"DIR\"")
        if source.kind == "feed" and not source.url:
            self.fail(f"{where} ({source.name})", "a feed source needs url = \"URL or file\"")
        if source.kind == "feed" and "://" not in source.url:  # type: ignore[operator]
            return replace(source, url=str(self.root / source.url))  # type: ignore[operator]
        return source

    def author(self, name: str, entry: Any) -> AuthorSettings:
        where = f'[authors."{name}"]'
        author = self.table(AuthorSettings, entry, where)
        if author.url is not None and safe_url(author.url) is None:
            self.fail(f"{where}.url", f"{author.url!r} is not {allowed()}; fix or remove it")
        return author

    def digest(self, name: str, entry: Any) -> DigestSettings:
        digest = self.table(DigestSettings, entry, f"[digests.{name}]")
        if not _LANGUAGE_TAG.fullmatch(digest.lang):
            self.fail(
                f"[digests.{name}].lang",
                f"{digest.lang!r} is not a language tag; use a BCP 47 tag such as \"en\", \"de\" or \"pt-BR\"",
            )
        return replace(digest, name=name)

    def check(self, config: Config) -> None:
        try:
            ZoneInfo(config.newsletter.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(
                "[newsletter].timezone",
                f"unknown time zone {config.newsletter.timezone!r}; use an IANA name such as "
                "\"UTC\" or \"Europe/Berlin\"",
            )
        names = [source.name for source in config.sources]
        for digest in config.digests.values():
            for source_name in digest.sources:
                if source_name not in names:
                    self.fail(
                        f"[digests.{digest.name}].sources",
                        f"no source named {source_name!r} (configured: {', '.join(names)})",
                    )
        for digest in config.digests.values():
            self.check_approval(digest)
        for key in ("connections", "port"):
            if getattr(config.smtp, key) < 1:
                self.fail(f"[smtp].{key}", "must be at least 1")
        for where, value in (
            ("[database].busy_timeout", config.database.busy_timeout),
            ("[delivery].ledger_timeout", config.delivery.ledger_timeout),
        ):
            if value <= 0:
                self.fail(where, "must be a positive number of seconds")
        if config.delivery.worker_count() < 1:
            self.fail("[delivery].workers", 'must be "auto" or at least 1')
        try:
            parse_networks(config.web.trusted_proxies)
        except ValueError as exc:
            self.fail("[web].trusted_proxies", str(exc))
        self.check_mail_identity(config)
        self.check_bounces(config)

    def check_bounces(self, config: Config) -> None:
        for where, problem in bounce_settings_problems(config.delivery, config.bounces, config.inbound):
            self.fail(where, problem)

    def check_approval(self, digest: DigestSettings) -> None:
        """Durations that parse, and reviewers that are addresses."""
        for key in ("review_before", "approval_grace"):
            try:
                parse_duration(getattr(digest, key))
            except ValueError as exc:
                self.fail(f"[digests.{digest.name}].{key}", str(exc))
        for reviewer in digest.reviewers:
            try:
                addresses.parse(reviewer)
            except AddressError as exc:
                self.fail(f"[digests.{digest.name}].reviewers", f"{exc}; list addresses such as \"editor@example.org\"")

    def check_mail_identity(self, config: Config) -> None:
        """What every mail carries: a From a server accepts, and over SMTP links that
        RFC 8058 one-click unsubscribe and Gmail accept (https, public host)."""
        try:
            addresses.mailbox_address(config.newsletter.from_)
        except AddressError as exc:
            self.fail(
                "[newsletter].from",
                f"{str(exc).rstrip('.')}; write an address, or a name and the address in angle "
                'brackets: "Antiwar.com <news@example.org>"',
            )
        if config.delivery.transport != "smtp":
            return  # the outbox is for trying things out: a loopback base_url is fine there
        problem = public_https_problem(config.newsletter.base_url)
        if problem is not None:
            self.fail(
                "[newsletter].base_url",
                f"{config.newsletter.base_url!r} {problem}; mail sent over SMTP needs the "
                "public https address `newsletter serve` answers on behind your proxy, "
                'e.g. "https://news.example.org" (Gmail and RFC 8058 one-click unsubscribe '
                "require https)",
            )

    def table(self, cls: type[T], raw: Any, where: str) -> T:
        if not isinstance(raw, dict):
            self.fail(where, "must be a table")
        by_key = {
            f.metadata.get("key", f.name): f
            for f in fields(cls)  # type: ignore[arg-type]
            if not f.metadata.get("derived")
        }
        hints = typing.get_type_hints(cls)
        for key in raw:
            if key not in by_key:
                self.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(by_key)}")
        values: dict[str, Any] = {}
        for key, f in by_key.items():
            if key in raw:
                values[f.name] = self.value(hints[f.name], raw[key], f"{where}.{key}")
            elif f.default is MISSING and f.default_factory is MISSING:
                self.fail(f"{where}.{key}", "missing required key")
        return cls(**values)

    def value(self, hint: Any, value: Any, where: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1:
                return self.value(inner[0], value, where)
            for alternative in inner:
                try:
                    return self.value(alternative, value, where)
                except ConfigError:
                    continue
            wanted = " or ".join(_describe(alternative) for alternative in inner)
            self.fail(where, f"must be {wanted}, not {value!r}")
        if origin is Literal:
            if value not in args:
                self.fail(where, f"must be one of {', '.join(map(repr, args))}, not {value!r}")
            return value
        if origin is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.fail(where, "must be an array of strings")
            return tuple(value)
        if hint is Path:
            if not isinstance(value, str):
                self.fail(where, f"must be a path string, not {type(value).__name__}")
            return (self.root / Path(value).expanduser()).resolve()
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(where, f"must be a number, not {value!r}")
            return float(value)
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(where, f"must be a whole number, not {value!r}")
            return value
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            self.fail(where, f"must be a {_TYPE_NAMES.get(hint, hint.__name__)}, not {value!r}")
        if hint is str and ("\r" in value or "\n" in value) and where.endswith(("from", "reply_to")):
            self.fail(where, "must be one line (no CR or LF)")
        return value


_TYPE_NAMES = {str: "string", bool: "boolean (true or false)"}
# A BCP 47 language tag, loosely: a language, then subtags (script, region, variant).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def _describe(hint: Any) -> str:
    """A type as an error message names it: "auto" or a whole number."""
    if typing.get_origin(hint) is Literal:
        return " or ".join(f'"{arg}"' for arg in typing.get_args(hint))
    return {int: "a whole number", float: "a number"}.get(hint, f"a {_TYPE_NAMES.get(hint, getattr(hint, '__name__', str(hint)))}")


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


def public_https_problem(url: str) -> str | None:
    """What keeps `url` from being an absolute https URL on a public host, or None.

    Public: a name with a dot that is not "localhost" (or under it), or an IP address
    that is globally routable (not loopback, private, link-local, reserved, ...).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (a malformed port raises here)
    except ValueError:
        return "is not a URL"
    if parts.scheme != "https":
        return "is not an https URL"
    if not host:
        return "names no host"
    if parts.username is not None or parts.query or parts.fragment:
        return "must not carry a user name, query or fragment"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return None if address.is_global else "is not on a public host (a loopback or private address)"
    if host == "localhost" or host.endswith(".localhost") or "." not in host.strip("."):
        return "is not on a public host (use its public domain name, with a dot)"
    return None


def sqlite_url_relative_to(url: str, root: Path) -> str:
    """Make a relative sqlite:/// path absolute against the config file's folder (a
    `file:` URI, such as `sqlite:///file:/srv/n.db?mode=ro&uri=true`, is left as it is)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix):]
        if rest and not rest.startswith((":memory:", "file:")):
            return prefix + str((root / rest).resolve())
    return url
