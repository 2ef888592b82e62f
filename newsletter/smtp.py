"""The SMTP transport: `connections` persistent connections sharing one rate limiter.

Each channel is one connection, used by one sending thread; it reconnects when the
server dropped it. MAIL, RCPT and DATA go in one round trip when the server offers
PIPELINING. See transport.py for what each failure means to the sender.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time

from .config import SmtpSettings
from .transport import (
    ONE_OFF_FOLDER,
    Envelope,
    MessageFailure,
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportFailure,
)

# Reconnecting mid-run: attempts, and the pause before the first retry (doubled each time).
_RECONNECT_ATTEMPTS = 3
_RECONNECT_PAUSE = 0.5


class RateLimiter:
    """At most `per_second` sends a second over all connections (0: no limit)."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            time.sleep(slot - now)


class SmtpPool(Transport):
    """`connections` persistent SMTP connections (one per channel) and one rate limiter."""

    takes_stuffed = True

    def __init__(self, settings: SmtpSettings, password: str | None) -> None:
        self.settings = settings
        self.connections = settings.connections
        self.limiter = RateLimiter(settings.max_per_second)
        self.where = f"{settings.host}:{settings.port}"
        self._password = password
        self._context = ssl.create_default_context()  # verifies the certificate and host name
        self._local_name = socket.getfqdn()
        self._lock = threading.Lock()
        self._channels: list[SmtpChannel] = []
        self._spare: list[smtplib.SMTP] = []  # the connection check() opened, reused
        self._one_off: SmtpChannel | None = None

    def channel(self) -> SmtpChannel:
        with self._lock:
            channel = SmtpChannel(self, self._spare.pop() if self._spare else None)
            self._channels.append(channel)
        return channel

    def check(self) -> None:
        connection = self.connect(attempts=1)
        with self._lock:
            self._spare.append(connection)

    def send_message(self, from_addr: str, to_addr: str, data: bytes) -> None:
        with self._lock:
            if self._one_off is None:
                self._one_off = SmtpChannel(self, self._spare.pop() if self._spare else None)
                self._channels.append(self._one_off)
            channel = self._one_off
        channel.send(Envelope(from_addr, to_addr, ONE_OFF_FOLDER, ""), data)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, []
            spare, self._spare = self._spare, []
            self._one_off = None
        for channel in channels:
            channel.close()
        for connection in spare:
            _quit(connection)

    def connect(self, attempts: int) -> smtplib.SMTP:
        """A ready connection (TLS and login done); retries only a failure to connect."""
        for attempt in range(attempts):
            try:
                return self._connect_once()
            except _Unreachable as exc:
                if attempt + 1 == attempts:
                    raise TransportFailure(
                        f"cannot connect to the SMTP server {self.where} ({exc}); check [smtp].host "
                        "and port and that the server is running"
                    ) from None
                time.sleep(_RECONNECT_PAUSE * 2**attempt)
        raise AssertionError("unreachable")

    def _connect_once(self) -> smtplib.SMTP:
        settings = self.settings
        try:
            if settings.security == "tls":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, self._local_name,
                    timeout=settings.timeout, context=self._context,
                )
            else:
                connection = smtplib.SMTP(
                    settings.host, settings.port, self._local_name, timeout=settings.timeout
                )
        except ssl.SSLError as exc:
            raise self._tls_failure(exc) from None
        except OSError as exc:
            raise _Unreachable(exc.strerror or str(exc) or type(exc).__name__) from None
        try:
            self._start_session(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _start_session(self, connection: smtplib.SMTP) -> None:
        settings = self.settings
        try:
            connection.ehlo()
            if settings.security == "starttls":
                if not connection.has_extn("starttls"):
                    raise TransportFailure(
                        f"the SMTP server {self.where} does not offer STARTTLS; set [smtp].security "
                        '= "tls" (port 465) or "none" (a local relay only)'
                    )
                connection.starttls(context=self._context)
                connection.ehlo()
            if settings.username:
                connection.login(settings.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportFailure(
                f"the SMTP server {self.where} refused the login of {settings.username!r} "
                f"({_reply_text(exc.smtp_code, exc.smtp_error)}); check the password in "
                f"${settings.password_env} and [smtp].username"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TransportFailure(
                f"the SMTP server {self.where} does not offer AUTH on this connection; "
                'use security = "starttls" or "tls", or clear [smtp].username'
            ) from None
        except ssl.SSLError as exc:
            raise self._tls_failure(exc) from None
        except smtplib.SMTPResponseException as exc:
            raise TransportFailure(
                f"the SMTP server {self.where} refused the session "
                f"({_reply_text(exc.smtp_code, exc.smtp_error)})"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Unreachable(str(exc) or type(exc).__name__) from None

    def _tls_failure(self, exc: ssl.SSLError) -> TransportFailure:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TransportFailure(
                f"the TLS certificate of the SMTP server {self.where} did not verify "
                f"({exc.verify_message}); set [smtp].host to the name on its certificate "
                "or trust its CA (SSL_CERT_FILE)"
            )
        return TransportFailure(
            f"TLS with the SMTP server {self.where} failed ({exc.reason or exc}); "
            'check [smtp].security ("tls" for port 465, "starttls" for 587) and port'
        )


Reply = tuple[int, bytes]


class _Unreachable(Exception):
    """Could not connect or the connection broke while setting up the session."""


class _Dropped(Exception):
    """The connection failed before the message data went out: nothing was delivered."""


class SmtpChannel:
    """One persistent connection; reconnects when the server dropped it."""

    def __init__(self, pool: SmtpPool, connection: smtplib.SMTP | None) -> None:
        self._pool = pool
        self._connection = connection

    def send(self, envelope: Envelope, data: bytes, *, stuffed: bool = False) -> None:
        """Send one message; `stuffed`: `data` is already as DATA carries it (dot-stuffed
        and ending in the "." line, see MessageTemplate.fill)."""
        self._pool.limiter.wait()
        # A second try only when the first never reached the message data (the server
        # had closed an idle connection, or answered 421): it cannot have been delivered.
        for attempt in range(2):
            if self._connection is None:
                self._connection = self._pool.connect(attempts=_RECONNECT_ATTEMPTS)
            try:
                self._transaction(self._connection, envelope, data, stuffed)
                return
            except _Dropped as exc:
                self._discard()
                if attempt == 1:
                    raise TemporaryFailure(str(exc)) from None

    def close(self) -> None:
        if self._connection is not None:
            _quit(self._connection)
            self._connection = None

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _transaction(
        self, connection: smtplib.SMTP, envelope: Envelope, data: bytes, stuffed: bool
    ) -> None:
        options = [f"SIZE={len(data)}"] if connection.has_extn("size") else []
        if envelope.envelope_id and connection.has_extn("dsn"):
            options.append(f"ENVID={envelope.envelope_id}")  # a VERP token is valid xtext
        if not (envelope.sender.isascii() and envelope.recipient.isascii()):
            if not connection.has_extn("smtputf8"):
                raise PermanentFailure(
                    f"the server {self._pool.where} does not support SMTPUTF8, which the "
                    f"address {envelope.recipient} needs"
                )
            options.append("SMTPUTF8")
        if connection.has_extn("pipelining"):
            mail, rcpt, ready = self._pipelined(connection, envelope, options)
        else:
            mail, rcpt, ready = self._step_by_step(connection, envelope, options)
        if ready is not None and ready[0] == 354 and (mail[0] != 250 or rcpt is None or rcpt[0] not in (250, 251)):
            self._command(connection.docmd, ".")  # a server that took DATA with no recipient
        if mail[0] != 250:
            self._reset(connection)
            if mail[0] >= 500:
                raise TransportFailure(
                    f"the SMTP server {self._pool.where} refused the sender {envelope.sender} "
                    f"({_reply_text(*mail)}); fix [newsletter].from or the server's relay settings"
                )
            raise TemporaryFailure(_reply_text(*mail))
        if rcpt is None or rcpt[0] not in (250, 251):
            self._reset(connection)
            raise _refusal(*(rcpt or ready or mail))
        if ready is None or ready[0] != 354:  # DATA itself refused: nothing sent yet
            self._reset(connection)
            raise _refusal(*(ready or rcpt))
        try:
            connection.send(data if stuffed else _as_data(data))
            code, reply = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The message may or may not have arrived; retried later (the one window
            # in which a recipient can get it twice).
            self._discard()
            raise TemporaryFailure(f"connection to {self._pool.where} lost during DATA ({exc})") from None
        if code != 250:
            if code == 421:
                self._discard()
            raise _refusal(code, reply)

    def _step_by_step(
        self, connection: smtplib.SMTP, envelope: Envelope, options: list[str]
    ) -> tuple[Reply, Reply | None, Reply | None]:
        """MAIL, RCPT and DATA one after the other, stopping at the first refusal."""
        mail = self._command(connection.mail, envelope.sender, options)
        if mail[0] != 250:
            return mail, None, None
        rcpt = self._command(connection.rcpt, envelope.recipient)
        if rcpt[0] not in (250, 251):
            return mail, rcpt, None
        return mail, rcpt, self._command(connection.docmd, "data")

    def _pipelined(
        self, connection: smtplib.SMTP, envelope: Envelope, options: list[str]
    ) -> tuple[Reply, Reply, Reply]:
        """MAIL, RCPT and DATA in one write, then their three replies (RFC 2920): one
        round trip instead of three."""
        extra = "".join(f" {option}" for option in options)
        # The addresses are checked already (envelope_address): no need for smtplib's
        # quoteaddr, whose parse costs more than the rest of this exchange.
        commands = f"mail FROM:<{envelope.sender}>{extra}\r\nrcpt TO:<{envelope.recipient}>\r\ndata\r\n"
        try:
            connection.send(commands.encode("utf-8" if "SMTPUTF8" in options else "ascii"))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(f"connection to {self._pool.where} lost ({exc})") from None
        replies = (self._reply(connection), self._reply(connection), self._reply(connection))
        if any(code == 421 for code, _ in replies):  # closing: nothing was accepted
            raise _Dropped(_reply_text(*next(r for r in replies if r[0] == 421)))
        return replies

    def _reply(self, connection: smtplib.SMTP) -> Reply:
        try:
            return connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(f"connection to {self._pool.where} lost ({exc})") from None

    def _command(self, method: object, *args: object) -> tuple[int, bytes]:
        try:
            code, reply = method(*args)  # type: ignore[operator]
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(f"connection to {self._pool.where} lost ({exc})") from None
        if code == 421:  # the server is closing this connection; nothing was accepted
            raise _Dropped(_reply_text(code, reply))
        return code, reply

    def _reset(self, connection: smtplib.SMTP) -> None:
        """RSET after a refusal, so the next message starts a clean transaction."""
        try:
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()


# What ends the message data of an SMTP DATA command (after a CRLF).
DATA_END = b".\r\n"


def dot_stuffed(chunk: bytes) -> bytes:
    """A chunk that begins at the start of a line, as SMTP DATA carries it (RFC 5321
    4.5.2): a dot doubled at the start of each line. smtplib does this with a regular
    expression that costs ten times more on a large message; the message template does
    it once per issue for its static parts (see MessageTemplate.fill)."""
    stuffed = chunk.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _as_data(message: bytes) -> bytes:
    """A whole message as DATA carries it: dot-stuffed, then the final "." line."""
    stuffed = dot_stuffed(message)
    return stuffed + (DATA_END if stuffed.endswith(b"\r\n") else b"\r\n" + DATA_END)


def _refusal(code: int, reply: bytes | str) -> MessageFailure:
    text = _reply_text(code, reply)
    if code == 421:
        return TemporaryFailure(text)
    return PermanentFailure(text) if code >= 500 else TemporaryFailure(text)


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def _quit(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()
