"""`newsletter inbound receive`: an LMTP server (RFC 2033) for the MTA.

Point the MTA's transport for the bounce address (and the unsubscribe address) at it,
e.g. Postfix: `transport_maps` with `bounces@example.org lmtp:inet:127.0.0.1:2525`
(and `recipient_delimiter = +` so that the VERP addresses reach it too). Every recipient
of a message gets its own reply, as LMTP wants: 250 once the message is processed (a
message that is not a bounce is processed too: as `unknown`, changing nothing), 451 when
the database could not record it, so that the MTA keeps it and tries again: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from functools import partial

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from ..config import Config
from ..errors import NewsletterError, UsageError
from ..store import Store
from .process import process_message

log = logging.getLogger("newsletter.inbound")
# The largest message taken: bounces carry the original, which may be a whole issue.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class InboundHandler:
    """aiosmtpd handler: each accepted message is processed in a worker thread (the store
    and the wait for senders must not block the event loop)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        replies = []
        for recipient in envelope.rcpt_tos:
            work = partial(
                process_message, self.config, self.store, raw,
                name=f"lmtp:{recipient}", source="lmtp", recipient=recipient,
            )
            try:
                result = await loop.run_in_executor(None, work)
            except NewsletterError as exc:
                log.error("%s: not processed, the MTA will retry: %s", recipient, exc)
                replies.append("451 4.3.0 cannot record it now; try again later")
                continue
            log.info("%s", result.line())
            replies.append("250 2.0.0 processed")
        return "\r\n".join(replies) if replies else "503 5.5.1 no valid recipients"


def create_server(config: Config, store: Store, host: str, port: int) -> asyncio.AbstractServer:
    """The listening server on the running loop (the caller serves it)."""
    handler = InboundHandler(config, store)
    loop = asyncio.get_running_loop()

    def factory() -> LMTP:
        return LMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True)

    return loop.create_server(factory, host=host, port=port)  # type: ignore[return-value]


def serve(config: Config, store: Store, host: str, port: int) -> None:
    """Listen until SIGTERM or Ctrl-C (logs on stderr)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(config, store, host, port))


async def _serve(config: Config, store: Store, host: str, port: int) -> None:
    try:
        server = await create_server(config, store, host, port)  # type: ignore[misc]
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --host or --port") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("LMTP server on %s:%d; stop with Ctrl-C or SIGTERM", host, port)
    async with server:
        await stop.wait()
    log.info("LMTP server stopped")
