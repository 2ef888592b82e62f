"""Where finished messages go: files in an outbox folder, or an SMTP server (smtp.py).

A transport hands out channels; each channel is used by one sending thread (the sender
runs one thread per channel). Outcomes of one message are exceptions the sender maps
onto the ledger:

- TemporaryFailure: not delivered, try again later (a 4xx reply, a lost connection);
- PermanentFailure: not delivered, do not retry (a 5xx reply for this recipient);
- TransportFailure (a DeliveryError): sending cannot go on at all (server unreachable,
  login refused, TLS failure, sender refused); the sender pauses the issue.

Transports know nothing of templates or the store: they move bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from secrets import token_hex
from types import TracebackType
from typing import Protocol

from .config import Config
from .errors import DeliveryError

# A one-off message (a confirmation mail) in the outbox goes into this folder.
ONE_OFF_FOLDER = "messages"


class MessageFailure(Exception):
    """One message was not delivered; `reply` is the server's code and text."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class TemporaryFailure(MessageFailure):
    """Not delivered this time (a 4xx reply or a lost connection): try again later."""


class PermanentFailure(MessageFailure):
    """Refused for good (a 5xx reply): do not retry, count a bounce."""


class TransportFailure(DeliveryError):
    """Sending cannot go on: unreachable server, refused login, TLS failure, refused sender."""


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    # Where the outbox files it (folder/key.eml); an SMTP server never sees these.
    folder: str
    key: str
    # RFC 3461 ENVID, when the server offers DSN: a DSN returns it as Original-Envelope-Id.
    envelope_id: str | None = None


class Channel(Protocol):
    def send(self, envelope: Envelope, data: bytes, *, stuffed: bool = False) -> None: ...

    def close(self) -> None: ...


class Transport:
    """A source of channels, `connections` of which may send at the same time."""

    connections: int = 1
    # Whether channels take messages as SMTP DATA carries them (see SmtpChannel.send).
    takes_stuffed: bool = False

    def channel(self) -> Channel:
        raise NotImplementedError

    def check(self) -> None:
        """Fail now, before anything is recorded, if messages cannot go out at all."""

    def send_message(self, from_addr: str, to_addr: str, data: bytes) -> None:
        """Send one prebuilt message (a confirmation mail, a test copy)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close every channel this transport opened."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_transport(config: Config) -> Transport:
    """The configured transport; SecretError now if the SMTP password is not set."""
    if config.delivery.transport == "outbox":
        return OutboxTransport(config.delivery.outbox)
    from .smtp import SmtpPool  # smtplib and ssl: only when mail goes out over SMTP

    smtp = config.smtp
    password = (
        config.secret(smtp.password_env, f"the SMTP password for {smtp.username!r}")
        if smtp.username
        else None
    )
    return SmtpPool(smtp, password)


# -- outbox ---------------------------------------------------------------------------


class OutboxTransport(Transport):
    """Each message is a file: <outbox>/<folder>/<key>.eml, written whole or not at all."""

    connections = 2  # writing overlaps the next message's assembly; more gains nothing

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def channel(self) -> OutboxChannel:
        return OutboxChannel(self.directory)

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportFailure(
                f"cannot create the outbox {self.directory} ({exc.strerror}); fix [delivery].outbox"
            ) from None

    def send_message(self, from_addr: str, to_addr: str, data: bytes) -> None:
        key = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + token_hex(4)
        self.channel().send(Envelope(from_addr, to_addr, ONE_OFF_FOLDER, key), data)


class OutboxChannel:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: set[str] = set()

    def send(self, envelope: Envelope, data: bytes, *, stuffed: bool = False) -> None:
        if stuffed:
            raise ValueError("the outbox takes messages as they are, not dot-stuffed")
        folder = self.directory / envelope.folder
        if envelope.folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(envelope.folder)
        target = folder / f"{envelope.key}.eml"
        temporary = folder / f".{envelope.key}.eml.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                # On disk before the ledger says "sent": a power cut must not lose it.
                os.fsync(file.fileno())
            os.replace(temporary, target)  # atomic: a reader sees all of it or nothing
        except OSError as exc:
            raise TransportFailure(f"cannot write {target} ({exc.strerror}); check the outbox folder") from None

    def close(self) -> None:
        pass
