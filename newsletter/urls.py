"""Which URLs may reach an email or a web page, and the archive URLs the newsletter makes.

One rule for every link that comes from outside (articles, feeds, the config): only
absolute http, https and mailto URLs, and only http(s) for what a client fetches by
itself (images) or what a relative link resolves against. Anything else (`javascript:`,
`data:`, `file:`, a relative path nothing resolves) is no link at all.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
WEB_SCHEMES = frozenset({"http", "https"})
# C0 controls and DEL: browsers drop some of them inside a scheme ("java\tscript:").
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_url(value: object, schemes: frozenset[str] = LINK_SCHEMES) -> str | None:
    """The URL, stripped, when it is absolute and its scheme is allowed; else None.

    http(s) URLs need a host, mailto URLs an address.
    """
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme == "mailto":
        return url if parts.path.strip() else None
    return url if parts.netloc else None


def resolve_url(value: str, base_url: str | None, schemes: frozenset[str] = LINK_SCHEMES) -> str | None:
    """A link as an article holds it: absolute and allowed, or relative and resolved
    against the article's own (http or https) URL; None when neither."""
    url = value.strip()
    if _CONTROL.search(url):
        return None
    if has_scheme(url):
        return safe_url(url, schemes)
    base = safe_url(base_url, WEB_SCHEMES)
    if base is None:
        return None
    return safe_url(urljoin(base, url), schemes)


def has_scheme(url: str) -> bool:
    try:
        return bool(urlsplit(url).scheme)
    except ValueError:
        return False


def archive_url(base_url: str, digest: str, number: int | None = None) -> str:
    """The web archive of a digest (`serve`'s /archive/DIGEST), or one issue in it."""
    index = f"{base_url.rstrip('/')}/archive/{digest}"
    return index if number is None else f"{index}/{number}"


def allowed(schemes: frozenset[str] = LINK_SCHEMES) -> str:
    """What a URL must be, for messages: 'an absolute http, https or mailto URL'."""
    names = sorted(schemes)
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"an absolute {listed} URL"
