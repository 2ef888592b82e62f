"""Transports on their own: outbox files, and the SMTP pool against a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from smtp_server import SmtpTestServer, configure
from tls import self_signed

from newsletter.config import SmtpSettings
from newsletter.errors import SecretError
from newsletter.smtp import SmtpPool
from newsletter.transport import (
    Envelope,
    OutboxTransport,
    PermanentFailure,
    TemporaryFailure,
    TransportFailure,
    open_transport,
)

MESSAGE = b"From: news@example.org\r\nTo: reader@example.org\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"


def envelope(recipient: str, key: str = "1") -> Envelope:
    return Envelope("news@example.org", recipient, "weekly-1", key)


def pool(server: SmtpTestServer, **settings: object) -> SmtpPool:
    values: dict[str, object] = {"host": server.host, "port": server.port, "security": "none", "timeout": 5.0}
    values.update(settings)
    return SmtpPool(SmtpSettings(**values), None)  # type: ignore[arg-type]


def test_the_outbox_writes_each_message_whole_under_its_issue(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "outbox")
    outbox.check()
    channel = outbox.channel()
    channel.send(envelope("a@example.org", "17"), MESSAGE)
    channel.send(envelope("a@example.org", "17"), MESSAGE)  # sent again after a crash: same file
    outbox.send_message("news@example.org", "b@example.org", b"one-off")

    assert [p.name for p in (tmp_path / "outbox" / "weekly-1").iterdir()] == ["17.eml"]
    assert (tmp_path / "outbox" / "weekly-1" / "17.eml").read_bytes() == MESSAGE
    [one_off] = (tmp_path / "outbox" / "messages").iterdir()
    assert one_off.suffix == ".eml" and one_off.read_bytes() == b"one-off"


def test_an_outbox_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TransportFailure, match=r"cannot create the outbox .*file/outbox \(Not a directory\)"):
        OutboxTransport(tmp_path / "file" / "outbox").check()


def test_a_connection_sends_many_messages_and_recovers_after_a_refusal(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse("nobody@example.org", "550 5.1.1 No such user")
    smtp_server.refuse("later@example.org", "451 4.3.2 Try later")
    with pool(smtp_server) as transport:
        channel = transport.channel()
        channel.send(envelope("a@example.org"), MESSAGE)
        with pytest.raises(PermanentFailure) as refused:
            channel.send(envelope("nobody@example.org"), MESSAGE)
        with pytest.raises(TemporaryFailure) as deferred:
            channel.send(envelope("later@example.org"), MESSAGE)
        channel.send(envelope("b@example.org"), MESSAGE)  # RSET made the connection usable again

    assert refused.value.reply == "550 5.1.1 No such user"
    assert deferred.value.reply == "451 4.3.2 Try later"
    first, second = smtp_server.messages
    assert (first.rcpt_tos, second.rcpt_tos) == (("a@example.org",), ("b@example.org",))
    assert first.peer == second.peer  # one persistent connection
    assert first.data == MESSAGE  # dot-stuffing undone by the server: the bytes arrive as built


def test_a_dropped_connection_is_reopened(smtp_server: SmtpTestServer) -> None:
    smtp_server.close_after(1)
    with pool(smtp_server) as transport:
        channel = transport.channel()
        for n in range(4):
            channel.send(envelope(f"r{n}@example.org"), MESSAGE)

    assert len(smtp_server.messages) == 4
    assert len({m.peer for m in smtp_server.messages}) == 4


def test_one_rate_limit_holds_over_all_connections(smtp_server: SmtpTestServer) -> None:
    with pool(smtp_server, connections=2, max_per_second=50.0) as transport:
        channels = [transport.channel(), transport.channel()]

        def send_ten(channel: object, prefix: str) -> None:
            for n in range(10):
                channel.send(envelope(f"{prefix}{n}@example.org"), MESSAGE)  # type: ignore[attr-defined]

        started = time.monotonic()
        threads = [threading.Thread(target=send_ten, args=(c, p)) for c, p in zip(channels, "ab")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

    assert len(smtp_server.messages) == 20
    assert elapsed >= 19 / 50


def test_a_utf8_address_goes_out_with_smtputf8(smtp_server: SmtpTestServer) -> None:
    with pool(smtp_server) as transport:
        transport.send_message("news@example.org", "jörg@example.org", MESSAGE)
    assert smtp_server.messages[0].rcpt_tos == ("jörg@example.org",)


def test_an_unreachable_server_is_one_clear_error(smtp_server: SmtpTestServer) -> None:
    smtp_server.stop()
    with pytest.raises(TransportFailure) as failure:
        pool(smtp_server).check()
    assert str(failure.value) == (
        f"cannot connect to the SMTP server 127.0.0.1:{smtp_server.port} (Connection refused); "
        "check [smtp].host and port and that the server is running"
    )


def test_starttls_is_required_when_configured(smtp_server: SmtpTestServer) -> None:
    with pytest.raises(TransportFailure, match=r"does not offer STARTTLS; set \[smtp\].security"):
        pool(smtp_server, security="starttls").check()


def test_a_refused_sender_pauses_rather_than_failing_recipients(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse_sender("news@example.org", "553 5.7.1 Sender not allowed to relay")
    with pool(smtp_server) as transport:
        with pytest.raises(TransportFailure) as refused:
            transport.send_message("news@example.org", "a@example.org", MESSAGE)
    assert str(refused.value) == (
        f"the SMTP server 127.0.0.1:{smtp_server.port} refused the sender news@example.org "
        "(553 5.7.1 Sender not allowed to relay); fix [newsletter].from or the server's relay settings"
    )


def test_the_password_comes_from_the_environment(
    project: Path, smtp_server_factory: Callable[..., SmtpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server_factory(password="s3cret")
    config = configure(project, server.config_toml() + 'username = "news"\npassword_env = "MY_SMTP_PASSWORD"\n')
    monkeypatch.delenv("MY_SMTP_PASSWORD", raising=False)
    with pytest.raises(SecretError, match=r"the SMTP password for 'news' is not set: export MY_SMTP_PASSWORD="):
        open_transport(config)
    monkeypatch.setenv("MY_SMTP_PASSWORD", "s3cret")
    with open_transport(config) as transport:
        transport.check()
        transport.send_message("news@example.org", "a@example.org", MESSAGE)
    assert len(server.messages) == 1


def test_starttls_verifies_the_certificate(
    tmp_path: Path, smtp_server_factory: Callable[..., SmtpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_path, context = self_signed(tmp_path)
    server = smtp_server_factory(tls_context=context)

    with pytest.raises(TransportFailure) as untrusted:
        pool(server, security="starttls").check()
    assert f"the TLS certificate of the SMTP server 127.0.0.1:{server.port} did not verify" in str(untrusted.value)

    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # now its issuer is trusted
    with pool(server, security="starttls") as transport:
        transport.send_message("news@example.org", "a@example.org", MESSAGE)
    assert len(server.messages) == 1
