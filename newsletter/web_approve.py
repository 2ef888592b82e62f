"""`newsletter serve`'s Approve pages: where the link in a review mail (review.py) leads.

`GET /approve/TOKEN` shows what the link approves (the issue, its subject and articles)
and a button; it never approves, because mail scanners follow links. `POST` approves that
version of the draft in the name of the reviewer the link was mailed to. A link for a
version that is no longer the draft's, or for an issue already being sent or sent,
approves nothing and the page says why (409); a tampered link is refused (400).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import tokens
from .errors import NotFound
from .store.drafts import DraftLocked, StaleApproval

if TYPE_CHECKING:
    from .web import Site

T = TypeVar("T")


class ApprovePages:
    def __init__(self, site: Site) -> None:
        self.site = site

    async def page(self, request: Request) -> Response:
        claims = self.claims(request)
        record = await self.in_thread(
            partial(self.site.store.drafts.approvable, claims.digest, claims.number, claims.content_hash)
        )
        return self.site.page(
            "approve.html.j2",
            draft=record,
            reviewer=claims.reviewer,
            form_token=self.site.guard.token(request.url.path),
        )

    async def approve(self, request: Request) -> Response:
        claims = self.claims(request)
        self.site.check_form(request, await request.form())
        record, newly = await self.in_thread(
            partial(
                self.site.store.drafts.approve,
                claims.digest,
                claims.reviewer,
                number=claims.number,
                content_hash=claims.content_hash,
            )
        )
        return self.site.page("approved.html.j2", draft=record, newly=newly)

    def claims(self, request: Request) -> tokens.ApproveClaims:
        try:
            claims = tokens.read_approve_token(self.site.secret, request.path_params["token"])
        except tokens.BadToken as exc:
            raise HTTPException(400, f"this approval link is not valid: {exc}") from None
        if claims.digest not in self.site.config.digests:
            raise HTTPException(404, f"there is no digest named {claims.digest!r} any more")
        return claims

    async def in_thread(self, work: partial[T]) -> T:
        """Store work off the event loop; why a link approves nothing becomes its page."""
        try:
            return await run_in_threadpool(work)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except (StaleApproval, DraftLocked) as exc:
            raise HTTPException(409, str(exc)) from None
