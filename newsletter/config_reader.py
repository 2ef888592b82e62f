"""Check a parsed config.toml against the settings dataclasses (config.py).

Every table maps onto a frozen dataclass: each key is checked against its fields, so an
unknown key, a wrong type or a missing required key is one ConfigError naming the key
and the file. Paths are resolved relative to the config file, never to the working
directory. Then the rules that span keys (a digest's sources, the base_url over SMTP).
"""

from __future__ import annotations

import ipaddress
import re
import types
import typing
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import addresses
from .bounce_settings import BounceSettings, InboundSettings, bounce_settings_problems
from .config import (
    AuthorSettings,
    Config,
    DatabaseSettings,
    DeliverySettings,
    DigestSettings,
    DkimSettings,
    NewsletterSettings,
    SchedulerSettings,
    SmtpSettings,
    SourceSettings,
    WebSettings,
    parse_duration,
)
from .errors import AddressError, ConfigError
from .proxies import parse_networks
from .urls import allowed, safe_url

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


T = TypeVar("T")


class ConfigReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent

    def fail(self, where: str, problem: str) -> typing.NoReturn:
        raise ConfigError(f"{self.path}: {where}: {problem}")

    def read(self, raw: dict[str, Any]) -> Config:
        known = set(_TOP_LEVEL) | {"sources", "authors", "digests"}
        for key in raw:
            if key not in known:
                self.fail(key, f"unknown key; expected one of {', '.join(sorted(known))}")
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
        if config.delivery.workers != "auto" and config.delivery.workers < 1:
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
