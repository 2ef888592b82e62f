"""The subscriber's side on the web: one-click unsubscribe, confirmation, subscribe, archive
(and the reviewers' Approve pages, web_approve.py).

`create_app(config, store)` builds the Starlette app that `newsletter serve` runs under
uvicorn. Every page is a Jinja2 template with autoescape on (templates/web/). Nothing
here redirects, so there is no redirect to abuse; forms post back to our own URLs.

Human forms are guarded against cross-site posting (`FormGuard`); the RFC 8058 one-click
POST is not, because mail providers send it with no page in between, and the token in its
URL is what authorizes it. A GET never changes anything: mail scanners follow links.
Store and mail work runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import addresses, tokens
from .confirmation import read_confirm_token, send_confirmation
from .config import Config
from .errors import AddressError, NewsletterError, NotFound, StoreError
from .message import TEST_COPY_SUBSCRIBER
from .proxies import TrustedProxies
from .personal import PersonalMarkers
from .store import Store
from .store.records import UNSUBSCRIBED, ListRecord, MembershipInfo
from .web_approve import ApprovePages
from .webguards import FormGuard, RateLimiter, SecurityHeaders, form_field

log = logging.getLogger("newsletter.web")

HONEYPOT_FIELD = "website"  # hidden from people; a bot that fills it is thanked and ignored
MAX_BODY_BYTES = 64 * 1024
RATE_WINDOW_SECONDS = 3600.0
FEED_ENTRIES = 20
SUMMARY_CHARS = 400
MAX_ISSUE_NUMBER = 2**31 - 1  # the largest INTEGER on PostgreSQL (SQLite's is larger)
# How uvicorn runs the app (`newsletter serve`, and the tests): its own X-Forwarded-For
# handling, which trusts loopback by default, is off; client_ip decides from the config.
SERVER_OPTIONS: dict[str, Any] = {"proxy_headers": False}


def create_app(config: Config, store: Store) -> Starlette:
    """The web app; SecretError at once if the token secret is not set."""
    site = Site(config, store, config.token_secret)
    approvals = ApprovePages(site)
    return Starlette(
        routes=[
            Route("/u/{token}", site.unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", site.unsubscribe, methods=["POST"]),
            Route("/u/{token}/resubscribe", site.resubscribe, methods=["POST"]),
            Route("/confirm/{token}", site.confirm_page, methods=["GET"]),
            Route("/confirm/{token}", site.confirm, methods=["POST"]),
            Route("/subscribe/{slug}", site.subscribe_page, methods=["GET"]),
            Route("/subscribe/{slug}", site.subscribe, methods=["POST"]),
            Route("/archive/{digest}", site.archive_index, methods=["GET"]),
            Route("/archive/{digest}/feed.xml", site.archive_feed, methods=["GET"]),
            Route("/archive/{digest}/{number:int}", site.archive_issue, methods=["GET"]),
            Route("/approve/{token}", approvals.page, methods=["GET"]),
            Route("/approve/{token}", approvals.approve, methods=["POST"]),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: site.error_page, Exception: site.server_error},
        max_body_size=MAX_BODY_BYTES,
    )


def web_templates(config: Config) -> jinja2.Environment:
    """templates/web/ in the config's folder first, then the packaged pages; all escaped."""
    loaders: list[jinja2.BaseLoader] = []
    override = config.newsletter.templates / "web"
    if override.is_dir():
        loaders.append(jinja2.FileSystemLoader(override))
    loaders.append(jinja2.PackageLoader("newsletter.templates", "web"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def consent_text(list_record: ListRecord) -> str:
    """What the subscribe form says the person agrees to; recorded with their consent."""
    return (
        f"I want to receive {list_record.name} by email at this address. "
        "I can unsubscribe at any time with the link in every email."
    )


class Site:
    """The request handlers, sharing the config, the store and the templates."""

    def __init__(self, config: Config, store: Store, secret: bytes) -> None:
        self.config = config
        self.store = store
        self.secret = secret
        self.base_url = config.newsletter.base_url.rstrip("/")
        self.templates = web_templates(config)
        self.guard = FormGuard(secret, self.base_url)
        self.proxies = config.web.proxies
        self.subscribe_limit = RateLimiter(config.web.subscribe_rate_limit, RATE_WINDOW_SECONDS)

    # -- unsubscribe (the link in every email) ---------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        claims = self.claims(request, tokens.UNSUBSCRIBE)
        if claims.subscriber_id == TEST_COPY_SUBSCRIBER:
            return self.page("test_copy.html.j2")
        member = await self.member(claims)
        if member.status == UNSUBSCRIBED:
            return self.left_page(request, member)
        return self.page(
            "unsubscribe.html.j2", member=member, form_token=self.guard.token(request.url.path)
        )

    async def unsubscribe(self, request: Request) -> Response:
        claims = self.claims(request, tokens.UNSUBSCRIBE)
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if claims.subscriber_id == TEST_COPY_SUBSCRIBER:  # nobody to unsubscribe
            if one_click:
                return PlainTextResponse("This was a test copy; nobody was unsubscribed.\n")
            return self.page("test_copy.html.j2")
        member = await self.member(claims)
        if not one_click:
            self.check_form(request, form)
        await run_in_threadpool(
            self.store.memberships.unsubscribe_member,
            claims.subscriber_id,
            claims.list_id,
            source="web:one-click" if one_click else "web",
            ip=client_ip(request, self.proxies),
        )
        if one_click:  # RFC 8058: done at once, answered 200, no redirect
            return PlainTextResponse("You are unsubscribed.\n")
        return self.left_page(request, member)

    def left_page(self, request: Request, member: MembershipInfo) -> Response:
        action = f"{request.url.path.rstrip('/')}/resubscribe"
        return self.page(
            "unsubscribed.html.j2",
            member=member,
            resubscribe_action=action,
            form_token=self.guard.token(action),
        )

    async def resubscribe(self, request: Request) -> Response:
        claims = self.claims(request, tokens.UNSUBSCRIBE)
        self.check_form(request, await request.form())
        try:
            member = await run_in_threadpool(
                self.store.memberships.resubscribe,
                claims.subscriber_id,
                claims.list_id,
                source="web",
                ip=client_ip(request, self.proxies),
            )
        except StoreError as exc:  # NotFound (the subscription is gone) or blocked
            raise HTTPException(400, str(exc)) from None
        return self.page("resubscribed.html.j2", member=member)

    # -- confirmation (double opt-in) -----------------------------------------------------

    async def confirm_page(self, request: Request) -> Response:
        claims = self.confirm_claims(request)
        member = await self.member(claims)
        if member.status == UNSUBSCRIBED:
            raise HTTPException(400, "this confirmation link is no longer valid: you unsubscribed since")
        return self.page(
            "confirm.html.j2", member=member, form_token=self.guard.token(request.url.path)
        )

    async def confirm(self, request: Request) -> Response:
        claims = self.confirm_claims(request)
        self.check_form(request, await request.form())
        try:
            member = await run_in_threadpool(
                self.store.memberships.confirm,
                claims.subscriber_id,
                claims.list_id,
                claims.membership_token,
                ip=client_ip(request, self.proxies),
            )
        except NotFound as exc:
            raise HTTPException(400, str(exc)) from None
        return self.page("confirmed.html.j2", member=member)

    def confirm_claims(self, request: Request) -> tokens.TokenClaims:
        try:
            return read_confirm_token(self.secret, request.path_params["token"])
        except tokens.BadToken as exc:
            raise HTTPException(400, f"this confirmation link is not valid: {exc}") from None

    # -- the public subscribe form --------------------------------------------------------

    async def subscribe_page(self, request: Request) -> Response:
        list_record = await self.list_named(request.path_params["slug"])
        return self.subscribe_form(request, list_record)

    def subscribe_form(
        self,
        request: Request,
        list_record: ListRecord,
        *,
        error: str = "",
        email: str = "",
        name: str = "",
        status: int = 200,
    ) -> Response:
        return self.page(
            "subscribe.html.j2",
            status=status,
            list=list_record,
            consent=consent_text(list_record),
            form_token=self.guard.token(request.url.path),
            honeypot=HONEYPOT_FIELD,
            error=error,
            email=email,
            name=name,
        )

    async def subscribe(self, request: Request) -> Response:
        ip = client_ip(request, self.proxies)
        if not self.subscribe_limit.allow(ip or "unknown"):
            raise HTTPException(429, "too many sign-ups from your address; try again in an hour")
        form = await request.form()
        self.check_form(request, form)
        list_record = await self.list_named(request.path_params["slug"])
        email = form_field(form, "email")
        name = form_field(form, "name")
        if form_field(form, HONEYPOT_FIELD):
            log.info("subscribe form for %s: honeypot filled from %s; ignored", list_record.slug, ip)
            return self.page("subscribed.html.j2", list=list_record)
        try:
            addresses.parse(email)
            addresses.check_name(name)
        except AddressError as exc:
            return self.subscribe_form(
                request, list_record, error=str(exc), email=email, name=name, status=400
            )
        name = " ".join(name.split())  # one line (check_name bounded its length)
        await run_in_threadpool(self.sign_up, list_record, email, name, ip)
        return self.page("subscribed.html.j2", list=list_record)

    def sign_up(self, list_record: ListRecord, email: str, name: str, ip: str | None) -> None:
        """Record the member and the consent, and mail the confirmation link if one is due.

        A blocked or forgotten address gets the same thank-you page as anyone (the page
        must not tell a stranger who is on which list); nothing is recorded for it.
        """
        try:
            result = self.store.subscribers.add(
                email, list_record.slug, name, source="web", ip=ip, secret=self.secret
            )
        except StoreError as exc:
            log.info("subscribe form for %s: refused: %s", list_record.slug, exc)
            return
        self.store.events.record(
            "consent",
            email=result.email,
            subscriber_id=result.subscriber_id,
            list_id=result.list_id,
            source="web",
            ip=ip,
            detail={"text": consent_text(list_record), "form": f"/subscribe/{list_record.slug}"},
        )
        if result.confirm_token is not None:
            try:
                send_confirmation(self.config, self.store, result)
            except NewsletterError as exc:
                log.error("confirmation mail to %s failed: %s", result.email, exc)
                raise HTTPException(
                    503,
                    "you are signed up, but the confirmation email could not be sent just now; "
                    "please submit the form again later",
                ) from None

    # -- the archive ----------------------------------------------------------------------

    async def archive_index(self, request: Request) -> Response:
        digest = self.digest_named(request)
        issues = await run_in_threadpool(self.store.issues.list_sent, digest)
        return self.page(
            "archive.html.j2",
            digest=digest,
            issues=[self.archive_entry(digest, issue) for issue in issues],
            feed_url=f"{self.base_url}/archive/{digest}/feed.xml",
            cache=True,
        )

    async def archive_issue(self, request: Request) -> Response:
        digest = self.digest_named(request)
        number = request.path_params["number"]
        # The route takes any digits; a number past the store's integer is no issue either.
        issue = None
        if number <= MAX_ISSUE_NUMBER:
            issue = await run_in_threadpool(self.store.issues.get_sent, digest, number)
        if issue is None:
            raise HTTPException(404, f"there is no issue {number} of {digest}")
        public = PersonalMarkers(issue.marker_nonce).neutral(issue.html, escape_html=True)
        return HTMLResponse(public, headers=ARCHIVE_CACHE)

    async def archive_feed(self, request: Request) -> Response:
        digest = self.digest_named(request)
        issues = await run_in_threadpool(self.store.issues.list_sent, digest, limit=FEED_ENTRIES)
        entries = [self.archive_entry(digest, issue) for issue in issues]
        xml = self.templates.get_template("feed.xml.j2").render(
            newsletter=self.config.newsletter,
            digest=digest,
            feed_url=f"{self.base_url}/archive/{digest}/feed.xml",
            archive_url=f"{self.base_url}/archive/{digest}",
            updated=max((e.published for e in entries), default=datetime.now(timezone.utc)),
            entries=entries,
        )
        return Response(xml, media_type="application/atom+xml", headers=ARCHIVE_CACHE)

    def archive_entry(self, digest: str, issue: Any) -> ArchiveEntry:
        text = PersonalMarkers(issue.marker_nonce).neutral(issue.text, escape_html=False)
        return ArchiveEntry(
            number=issue.number,
            subject=issue.subject,
            published=issue.finished_at or issue.created_at,
            url=f"{self.base_url}/archive/{digest}/{issue.number}",
            summary=" ".join(text.split())[:SUMMARY_CHARS],
        )

    def digest_named(self, request: Request) -> str:
        name = request.path_params["digest"]
        if name not in self.config.digests:
            raise HTTPException(404, f"there is no newsletter archive named {name!r}")
        return str(name)

    # -- shared ---------------------------------------------------------------------------

    def claims(self, request: Request, purpose: str) -> tokens.TokenClaims:
        try:
            return tokens.read_token(self.secret, request.path_params["token"], purpose)
        except tokens.BadToken as exc:
            raise HTTPException(400, f"this link is not valid: {exc}") from None

    def check_form(self, request: Request, form: FormData) -> None:
        scheme = request_scheme(request, self.proxies)
        self.guard.check(request, form, scheme)

    async def member(self, claims: tokens.TokenClaims) -> MembershipInfo:
        member = await run_in_threadpool(
            self.store.memberships.get, claims.subscriber_id, claims.list_id
        )
        if member is None:
            raise HTTPException(400, "this link is unknown: the subscription it names does not exist")
        return member

    async def list_named(self, slug: str) -> ListRecord:
        try:
            return await run_in_threadpool(self.store.lists.get, slug)
        except NotFound:
            raise HTTPException(404, f"there is no mailing list {slug!r}") from None

    def page(self, template: str, *, status: int = 200, cache: bool = False, **context: Any) -> Response:
        html = self.templates.get_template(template).render(
            newsletter=self.config.newsletter, **context
        )
        return HTMLResponse(html, status_code=status, headers=ARCHIVE_CACHE if cache else None)

    async def error_page(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.page(
            "error.html.j2",
            status=exc.status_code,
            title=http.client.responses.get(exc.status_code, "Error"),
            message=exc.detail,
        )

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return self.page(
            "error.html.j2",
            status=500,
            title="Something went wrong",
            message="something went wrong on our side; please try again later",
        )


ARCHIVE_CACHE = {"Cache-Control": "public, max-age=300"}


@dataclass(frozen=True)
class ArchiveEntry:
    number: int
    subject: str
    published: datetime
    url: str
    summary: str


def client_ip(request: Request, proxies: TrustedProxies) -> str | None:
    """The client's IP address, as the rate limit and the consent log know it: the one place
    it is decided. The peer's own address, unless the peer is a trusted proxy, then the
    client it names in X-Forwarded-For (see proxies.py; uvicorn's own handling is off)."""
    peer = request.client.host if request.client else None
    return proxies.client_ip(peer, request.headers.getlist("x-forwarded-for"))


def request_scheme(request: Request, proxies: TrustedProxies) -> str:
    """http or https as the client used it: X-Forwarded-Proto counts from a trusted proxy."""
    peer = request.client.host if request.client else None
    return proxies.scheme(peer, request.headers.get("x-forwarded-proto"), request.url.scheme)
