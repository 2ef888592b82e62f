"""A real SMTP server on loopback for the tests (aiosmtpd in a thread), and list helpers.

The server records every message it accepts (envelope and bytes). A test can make it:
- refuse chosen recipients with any reply, a number of times or for good (`refuse`),
  or a sender (`refuse_sender`);
- close the connection after every N accepted messages of a connection (`close_after`);
- drop the connection instead of answering DATA for a recipient (`drop_data_for`);
- hold every DATA reply once N messages were accepted, then discard the held ones with a
  4xx (`hold_after` / `release`): the crash test kills the sender while it waits;
- take a while over every message (`slow_down`), so that a send lasts long enough for
  other things to happen meanwhile;
- require AUTH with one password, or speak STARTTLS with a given certificate.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from ports import free_port

from newsletter.config import Config, load_config
from newsletter.store import Store
from newsletter.store.records import CONFIRMED, ImportReport, ImportRow


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple[str, int]  # the client's address: one per connection
    accepted_at: float  # time.time() of the final 250 reply

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


class RecordingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.refusals: dict[str, tuple[str, int | None]] = {}  # address -> (reply, times left)
        self.drops: dict[str, int] = {}  # address -> DATA replies still to drop
        self.sender_refusals: dict[str, str] = {}  # MAIL FROM address -> reply
        self.close_after: int | None = None
        self.delay = 0.0
        self.hold_after: int | None = None
        self.held = 0
        self.released = threading.Event()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            reply = self.sender_refusals.get(address.lower())
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            rule = self.refusals.get(address.lower())
            if rule is not None:
                reply, left = rule
                if left is None or left > 0:
                    if left is not None:
                        self.refusals[address.lower()] = (reply, left - 1)
                    return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            dropped = [r for r in envelope.rcpt_tos if self.drops.get(r.lower(), 0) > 0]
            for address in dropped:
                self.drops[address.lower()] -= 1
            hold = self.hold_after is not None and len(self.messages) >= self.hold_after
            if hold:
                self.held += 1
        if dropped:
            server.transport.abort()  # type: ignore[union-attr]
            return "421 dropped by the test"  # never reaches the client
        if hold:
            while not self.released.is_set():
                await asyncio.sleep(0.01)
            return "451 4.3.0 held and discarded by the test"
        if self.delay:
            await asyncio.sleep(self.delay)
        received = Received(
            envelope.mail_from or "",
            tuple(envelope.rcpt_tos),
            envelope.original_content or b"",
            tuple(session.peer),  # type: ignore[arg-type]
            time.time(),
        )
        with self.lock:
            self.messages.append(received)
        count = getattr(session, "accepted", 0) + 1
        session.accepted = count  # type: ignore[attr-defined]
        if self.close_after and count % self.close_after == 0:
            # After the reply is written: the next command finds the connection closed.
            asyncio.get_running_loop().call_soon(server.transport.close)  # type: ignore[union-attr]
        return "250 2.0.0 OK queued"


class SmtpTestServer:
    def __init__(
        self,
        *,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = RecordingHandler()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.password = password
        self.running = False
        kwargs: dict[str, Any] = {}
        if password is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context)
        self.controller = Controller(
            self.handler, hostname=self.host, port=self.port, enable_SMTPUTF8=True, **kwargs
        )

    def start(self) -> SmtpTestServer:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        """Stop listening (also before the fixture's teardown, to test an unreachable server)."""
        self.handler.released.set()
        if self.running:
            self.controller.stop()
            self.running = False

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    # -- behaviours --------------------------------------------------------------------

    def refuse(self, address: str, reply: str, times: int | None = None) -> None:
        """Answer RCPT TO:<address> with `reply` (`times` times, or always)."""
        with self.handler.lock:
            self.handler.refusals[address.lower()] = (reply, times)

    def refuse_sender(self, address: str, reply: str) -> None:
        with self.handler.lock:
            self.handler.sender_refusals[address.lower()] = reply

    def drop_data_for(self, address: str, times: int = 1) -> None:
        with self.handler.lock:
            self.handler.drops[address.lower()] = times

    def close_after(self, messages: int) -> None:
        self.handler.close_after = messages

    def slow_down(self, seconds: float) -> None:
        """Answer every DATA this much later (connections still work side by side)."""
        self.handler.delay = seconds

    def hold_after(self, messages: int) -> None:
        self.handler.hold_after = messages

    def release(self) -> None:
        """Discard the held messages (4xx) and stop holding."""
        self.handler.released.set()
        self.handler.hold_after = None

    # -- what arrived --------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def held(self) -> int:
        return self.handler.held

    def per_recipient(self) -> Counter[str]:
        return Counter(rcpt.lower() for m in self.messages for rcpt in m.rcpt_tos)

    def assert_everyone_mailed(self, recipients: int, twice_at_most: int) -> None:
        """Each of `recipients` got the issue, none missing; at most `twice_at_most` of
        them (the bound on duplicates) got it twice, and nobody three times."""
        received = self.per_recipient()
        assert len(received) == recipients  # nobody missing
        twice = [email for email, count in received.items() if count > 1]
        assert len(twice) <= twice_at_most and max(received.values()) <= 2, twice

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.messages)} of {count} messages arrived")
            time.sleep(0.01)

    def config_toml(self, *, connections: int = 2, security: str = "none", delivery: str = "") -> str:
        """[delivery] and [smtp] tables that send to this server (see `configure`)."""
        return (
            f'[delivery]\ntransport = "smtp"\nretry_backoff = 0.05\n{delivery}\n'
            f'[smtp]\nhost = "{self.host}"\nport = {self.port}\nsecurity = "{security}"\n'
            f"connections = {connections}\ntimeout = 10\n"
        )


_OUTBOX_DELIVERY = '[delivery]\ntransport = "outbox"\noutbox = "outbox"\n'
_MARK = "\n# -- sending (tests/smtp_server.configure) --\n"


def configure(project: Path, tables: str) -> Config:
    """The project's config with its [delivery] table replaced by `tables` (TOML)."""
    path = project / "config.toml"
    text = path.read_text(encoding="utf-8").split(_MARK)[0].replace(_OUTBOX_DELIVERY, "")
    path.write_text(text + _MARK + tables, encoding="utf-8")
    return load_config(path)



@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpTestServer]]:
    started: list[SmtpTestServer] = []

    def start(**kwargs: Any) -> SmtpTestServer:
        server = SmtpTestServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    return smtp_server_factory()


def subscribe(store: Store, list_slug: str, people: list[tuple[str, str]]) -> None:
    """Confirmed members (email, name) of a list, added in one import transaction."""
    rows = [
        ImportRow(line, email, name, CONFIRMED, False, None, {})
        for line, (email, name) in enumerate(people, start=2)
    ]
    report = ImportReport(file="test", list_slug=list_slug, dry_run=False)
    store.subscribers.import_rows(rows, report, list_slug=list_slug, source="test")
    assert not report.skipped, report.skipped


def generated_people(count: int, domain: str = "example.org") -> list[tuple[str, str]]:
    return [(f"reader{n:06d}@{domain}", f"Reader {n}") for n in range(count)]


def crowd(project: Path, server: SmtpTestServer, recipients: int, connections: int) -> Path:
    """The project sending to `server` over `connections` in batches of 50, its weekly
    list holding `recipients` generated people; the project folder."""
    config = configure(project, server.config_toml(connections=connections, delivery="batch_size = 50"))
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", generated_people(recipients))
    store.close()
    return project
