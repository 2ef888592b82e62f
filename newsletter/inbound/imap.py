"""`newsletter inbound fetch`: process every message in an IMAP folder.

Over TLS only (port 993 by default), with the server's certificate and host name verified.
Each message is read without marking it seen, processed, and only then moved to
`processed_folder` (created when missing): a message that could not be processed (the
database failing, the connection dropping) stays where it was and is read again next time.
The same message processed twice counts once (store/bounces.py), so a crash between the
processing and the move loses nothing and counts nothing twice.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Callable

from ..bounce_settings import InboundSettings
from ..config import Config
from ..errors import NewsletterError
from ..store import Store
from .process import Processed, process_message


class InboundError(NewsletterError):
    """The IMAP mailbox cannot be read: unreachable, TLS refused, login or folder refused."""


def _ignore(_: Processed) -> None:
    pass


def fetch(
    config: Config, store: Store, on_message: Callable[[Processed], None] = _ignore
) -> list[Processed]:
    """Process and move every message of [inbound].folder; what became of each."""
    settings = _settings(config)
    password = config.secret(settings.password_env, f"the IMAP password for {settings.username!r}")
    where = f"{settings.host}:{settings.port}"
    results: list[Processed] = []
    with _Mailbox(settings, password, where) as mailbox:
        for uid in mailbox.uids():
            raw = mailbox.read(uid)
            if raw is None:  # gone meanwhile (another fetch took it)
                continue
            result = process_message(
                config, store, raw, name=f"imap:{settings.folder}/{uid.decode()}", source=f"imap:{settings.host}"
            )
            mailbox.move_processed(uid)
            results.append(result)
            on_message(result)
    return results


def _settings(config: Config) -> InboundSettings:
    if config.inbound is None:
        raise InboundError(
            f"{config.path} has no [inbound] table; add host, username and password_env "
            "to read bounces from an IMAP mailbox"
        )
    return config.inbound


class _Mailbox:
    def __init__(self, settings: InboundSettings, password: str, where: str) -> None:
        self.settings = settings
        self.password = password
        self.where = where
        self.imap: imaplib.IMAP4_SSL | None = None

    def __enter__(self) -> _Mailbox:
        settings = self.settings
        try:
            self.imap = imaplib.IMAP4_SSL(
                settings.host,
                settings.port,
                ssl_context=ssl.create_default_context(),  # verifies certificate and host name
                timeout=settings.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise InboundError(
                f"the IMAP server {self.where} has a certificate that cannot be verified "
                f"({exc.verify_message}); fix [inbound].host or the server's certificate"
            ) from None
        except (OSError, ssl.SSLError, imaplib.IMAP4.error) as exc:
            raise InboundError(
                f"cannot reach the IMAP server {self.where} over TLS ({_reason(exc)}); "
                "check [inbound].host and port (993 for IMAP over TLS)"
            ) from None
        try:
            self._ok(self.imap.login(settings.username, self.password), "login")
        except (imaplib.IMAP4.error, InboundError) as exc:
            self._close()
            raise InboundError(
                f"the IMAP server {self.where} refused the login of {settings.username!r} "
                f"({_reason(exc)}); check the password in ${settings.password_env} and "
                "[inbound].username"
            ) from None
        self._run(lambda imap: imap.select(_quoted(settings.folder)), f"open the folder {settings.folder!r}", "[inbound].folder")
        self._ensure_processed_folder()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._close()

    def uids(self) -> list[bytes]:
        data = self._run(lambda imap: imap.uid("SEARCH", "ALL"), "list the messages")
        return data[0].split() if data and data[0] else []

    def read(self, uid: bytes) -> bytes | None:
        data = self._run(lambda imap: imap.uid("FETCH", uid, "(BODY.PEEK[])"), "read a message")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def move_processed(self, uid: bytes) -> None:
        target = _quoted(self.settings.processed_folder)
        assert self.imap is not None
        if "MOVE" in self.imap.capabilities:
            self._run(lambda imap: imap.uid("MOVE", uid, target), "move a processed message")
            return
        self._run(lambda imap: imap.uid("COPY", uid, target), "copy a processed message")
        self._run(lambda imap: imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)"), "mark a processed message")
        self._run(lambda imap: imap.expunge(), "expunge processed messages")

    def _ensure_processed_folder(self) -> None:
        assert self.imap is not None
        name = _quoted(self.settings.processed_folder)
        try:
            typ, data = self.imap.list('""', name)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self._failure("list folders", exc) from None
        if typ == "OK" and any(item for item in data if item):
            return
        self._run(
            lambda imap: imap.create(name),
            f"create the folder {self.settings.processed_folder!r}",
            "[inbound].processed_folder",
        )

    def _run(self, command: Callable[[imaplib.IMAP4_SSL], tuple[str, list]], what: str, key: str = "") -> list:
        assert self.imap is not None
        try:
            typ, data = command(self.imap)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self._failure(what, exc, key) from None
        if typ != "OK":
            raise self._failure(what, _Refused(data), key)
        return data

    def _ok(self, reply: tuple[str, list], what: str) -> None:
        if reply[0] != "OK":
            raise InboundError(f"{what}: {_reason(_Refused(reply[1]))}")

    def _failure(self, what: str, exc: BaseException, key: str = "") -> InboundError:
        hint = f"; check {key}" if key else "; nothing was lost: the messages stay until processed"
        return InboundError(f"the IMAP server {self.where} could not {what} ({_reason(exc)}){hint}")

    def _close(self) -> None:
        if self.imap is None:
            return
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError, socket.timeout):
            pass
        self.imap = None


class _Refused(Exception):
    def __init__(self, data: list) -> None:
        text = b" ".join(item for item in data if isinstance(item, bytes)).decode("utf-8", "replace")
        super().__init__(text or "refused")


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, bytes):  # pragma: no cover - imaplib sometimes raises with bytes
        text = exc.decode("utf-8", "replace")
    text = re.sub(r"^b['\"](.*)['\"]$", r"\1", text.strip())
    return " ".join(text.split())[:200]
