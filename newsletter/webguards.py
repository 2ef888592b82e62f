"""What guards the web side's requests and responses: cross-site form posts, sign-up
floods, and the security headers every page carries."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_TOKEN_FIELD = "form_token"
FORM_MAX_AGE = 24 * 3600

SECURITY_HEADERS = {
    # Issue pages carry the email's own inline styles and remote images, never scripts.
    "Content-Security-Policy": (
        "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Token URLs must not leak to other sites; same-origin still sends Origin on our forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class FormGuard:
    """Refuses cross-site posts of our human forms.

    Two checks: the browser's Origin (or Referer) must be our own site, and the form must
    carry a token we signed for that form's URL within the last day (a page must have
    been fetched from us first).
    """

    def __init__(self, secret: bytes, base_url: str) -> None:
        self.secret = secret
        self.base_origin = origin_of(base_url)

    def token(self, action: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return f"{issued}.{self._mac(action, issued)}"

    def check(self, request: Request, form: FormData, scheme: str) -> None:
        """HTTPException 403 unless the form came from our page; `scheme` is the one the
        client used (web.request_scheme), which the proxy may have changed."""
        sender = request.headers.get("origin") or request.headers.get("referer")
        own = {self.base_origin, f"{scheme}://{request.headers.get('host', '')}"}
        if sender is not None and origin_of(sender) not in own:
            raise HTTPException(403, "this form was sent from another site; use the form on our page")
        issued_text, _, mac = form_field(form, FORM_TOKEN_FIELD).partition(".")
        valid = (
            issued_text.isdigit()
            and hmac.compare_digest(mac, self._mac(request.url.path, int(issued_text)))
            and time.time() - int(issued_text) <= FORM_MAX_AGE
        )
        if not valid:
            raise HTTPException(403, "this form has expired or was not sent from our page; reload the page and try again")

    def _mac(self, action: str, issued: int) -> str:
        return hmac.new(self.secret, f"form|{action}|{issued}".encode(), hashlib.sha256).hexdigest()[:32]


def form_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class RateLimiter:
    """At most `limit` hits per key within a sliding window (in memory: one server process)."""

    SWEEP_AT = 10_000  # keys kept before the idle ones are dropped

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        if len(self.hits) >= self.SWEEP_AT:
            self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
        recent = self.hits.setdefault(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            return False
        recent.append(now)
        return True


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
