"""Sending an issue end to end: composed, recorded, sent over SMTP to a real server on
loopback, each subscriber exactly once; retries, bounces, pauses, resumes, stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from smtp_server import SmtpTestServer, configure, generated_people, subscribe

from newsletter.config import Config
from newsletter.errors import DeliveryError, NewsletterError, SecretError
from newsletter.sending import IssuePaused, SendProgress, send_digest
from newsletter.sending.revocations import REVOCATION_POLL_SECONDS
from newsletter.store import Store
from newsletter.store.issues import FAILED, SENT, SKIPPED
from newsletter.store.schema import deliveries
from newsletter.tokens import UNSUBSCRIBE, read_token

BACKENDS = ("sqlite", "postgres")

SECRET = "test-secret"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


@pytest.fixture
def store(config: Config) -> Store:
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly", double_opt_in=True)
    return store


def smtp_config(project: Path, server: SmtpTestServer, **options: object) -> Config:
    return configure(project, server.config_toml(**options))  # type: ignore[arg-type]


def delivery_rows(store: Store) -> dict[str, tuple[str, int, str | None]]:
    """email -> (status, attempts, error) of every delivery (a test looks at the ledger)."""
    with store.write() as conn:
        rows = conn.execute(
            deliveries.select().with_only_columns(
                deliveries.c.email, deliveries.c.status, deliveries.c.attempts, deliveries.c.error
            )
        ).all()
    return {row.email: (row.status, row.attempts, row.error) for row in rows}


def test_every_confirmed_subscriber_gets_exactly_one_message(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(40)
    subscribe(store, "weekly", people + [("gone@example.org", ""), ("blocked@example.org", "")])
    subscribe(store, "weekly", [("someone@blocked.example", "")])
    store.memberships.unsubscribe("gone@example.org", "weekly", source="test")
    store.suppressions.block("blocked@example.org")
    store.suppressions.block("@blocked.example")
    store.subscribers.add("pending@example.org", "weekly", confirmed=False)
    smtp_server.close_after(7)  # the server drops connections: the pool reconnects
    config = smtp_config(project, smtp_server, connections=3)

    report = send_digest(config, store, "weekly")

    received = smtp_server.per_recipient()
    assert received == {email: 1 for email, _ in people}
    assert report.status == "done"
    assert (report.counts.sent, report.counts.failed, report.counts.pending) == (40, 0, 0)
    assert {m.mail_from for m in smtp_server.messages} == {"news@example.org"}
    assert len({m.message["Message-ID"] for m in smtp_server.messages}) == 40
    [summary] = store.issues.history("weekly")
    assert (summary.number, summary.status, summary.counts.sent) == (1, "done", 40)


def test_the_message_carries_the_headers_and_both_parts(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    subscribe(store, "weekly", [("ada@example.org", "Ada Lovelace")])
    config = smtp_config(project, smtp_server)
    send_digest(config, store, "weekly")

    [received] = smtp_server.messages
    message = received.message
    assert message["From"] == "Test Weekly <news@example.org>"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["Subject"] == "Test Weekly #1"
    assert message["Date"] and message["MIME-Version"] == "1.0"
    assert message["Message-ID"].endswith("@example.org>")
    assert message["List-Id"] == "Test Weekly <weekly.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://news.example.org/u/")
    claims = read_token(SECRET.encode(), url.rpartition("/")[2], UNSUBSCRIBE)
    subscriber = store.subscribers.get("ada@example.org")
    assert (claims.subscriber_id, claims.list_id) == (subscriber.id, store.lists.get("weekly").id)
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (text, html):
        body = part.get_content()
        assert "Hello Ada, here is this week's story." in body
        assert url in body and "1 Test Street, Testville" in body
        assert "%%NL_" not in body
    assert "Zelensky" in html.get_content()


def test_a_long_non_ascii_name_goes_out_folded_not_refused(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    name = ("Ünterstraßenbahnführerin Жозефина Ḿaría-José " * 7)[:198]  # the longest a store keeps
    # Stored before names were checked (PostgreSQL cannot hold a NUL; ESC and BEL it can).
    subscribe(store, "weekly", [("ada@example.org", name + "\x1b\x07")])
    config = smtp_config(project, smtp_server)

    report = send_digest(config, store, "weekly")

    assert (report.counts.sent, report.counts.failed) == (1, 0)
    [received] = smtp_server.messages
    head = received.data.partition(b"\r\n\r\n")[0]
    # Every line fits in 78 characters, but List-Unsubscribe's, which is one URL.
    assert max(len(line) for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe: ")) <= 78
    assert b"\x1b" not in head and b"\x07" not in head
    assert received.message["To"].defects == ()
    assert str(make_header(decode_header(message_from_bytes(received.data)["To"]))) == (
        f"{' '.join(name.split())} <ada@example.org>"
    )


def test_unsubscribes_and_blocks_after_the_issue_was_recorded_are_honoured(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(6)
    subscribe(store, "weekly", people + [("leaver@example.org", ""), ("late@example.org", "")])
    subscribe(store, "weekly", [("x@late-domain.example", "")])
    config = smtp_config(project, smtp_server)
    seen: list[SendProgress] = []
    revokers = [
        threading.Thread(target=lambda: store.memberships.unsubscribe("leaver@example.org", "weekly", source="web")),
        threading.Thread(target=lambda: store.suppressions.block("late@example.org")),
        threading.Thread(target=lambda: store.suppressions.block("@late-domain.example")),
    ]

    def first_progress(progress: SendProgress) -> None:
        # Called once the issue and its deliveries are recorded, before any is claimed.
        # Each revocation waits until the sender has seen it, and the sender looks only
        # after this callback returns: so they run beside it, and it waits until all
        # three are written.
        if not seen:
            epoch = store.ledger.revocation_epoch()
            for revoker in revokers:
                revoker.start()
            while store.ledger.revocation_epoch() < epoch + len(revokers):
                time.sleep(0.002)
        seen.append(progress)

    report = send_digest(config, store, "weekly", progress=first_progress)
    for revoker in revokers:
        revoker.join(timeout=5)
        assert not revoker.is_alive()

    assert seen[0].total == 9 and seen[0].done == 0
    assert smtp_server.per_recipient() == {email: 1 for email, _ in people}
    assert (report.counts.sent, report.counts.skipped) == (6, 3)
    rows = delivery_rows(store)
    assert rows["leaver@example.org"] == (SKIPPED, 0, "unsubscribed")
    assert rows["late@example.org"] == (SKIPPED, 0, "blocked")
    assert rows["x@late-domain.example"] == (SKIPPED, 0, "blocked")


def test_who_leaves_while_their_delivery_is_already_claimed_is_not_mailed(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(30)
    subscribe(store, "weekly", people)
    leaver, blocked = people[20][0], people[25][0]
    config = smtp_config(project, smtp_server, connections=1)
    smtp_server.hold_after(5)  # the 6th message waits: all 30 are claimed by then
    result: list[object] = []
    sender = threading.Thread(target=lambda: result.append(send_digest(config, store, "weekly")))
    sender.start()
    wait_until(lambda: smtp_server.held == 1)
    assert set(delivery_rows(store)[leaver][:1]) == {"claimed"}
    store.memberships.unsubscribe(leaver, "weekly", source="web")
    store.suppressions.block(blocked)
    wait_until(lambda: False, timeout=REVOCATION_POLL_SECONDS + 0.3)  # one poll at least
    smtp_server.release()
    sender.join(timeout=30)

    expected = {email: 1 for email, _ in people if email not in (leaver, blocked)}
    assert smtp_server.per_recipient() == expected
    rows = delivery_rows(store)
    assert rows[leaver] == (SKIPPED, 0, "unsubscribed")
    assert rows[blocked] == (SKIPPED, 0, "blocked")
    assert (result[0].counts.sent, result[0].counts.skipped) == (28, 2)  # type: ignore[attr-defined]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def test_a_4xx_reply_is_retried_until_accepted(project: Path, store: Store, smtp_server: SmtpTestServer) -> None:
    subscribe(store, "weekly", [("grey@example.org", ""), ("ok@example.org", "")])
    smtp_server.refuse("grey@example.org", "451 4.7.1 Greylisted, try again later", times=2)
    config = smtp_config(project, smtp_server)

    report = send_digest(config, store, "weekly")

    assert smtp_server.per_recipient() == {"grey@example.org": 1, "ok@example.org": 1}
    assert report.counts.sent == 2
    assert delivery_rows(store)["grey@example.org"] == (SENT, 3, None)


def test_greylisting_every_recipient_defers_each_and_goes_on_without_pausing(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(30)  # more than max_consecutive_failures (20)
    subscribe(store, "weekly", people)
    for email, _ in people:
        smtp_server.refuse(email, "451 4.7.1 Greylisted, please try again later", times=1)
    config = smtp_config(project, smtp_server, connections=1)

    report = send_digest(config, store, "weekly")

    assert (report.status, report.counts.sent, report.counts.failed) == ("done", 30, 0)
    assert set(smtp_server.per_recipient().values()) == {1}
    assert {attempts for _, attempts, _ in delivery_rows(store).values()} == {2}


def test_a_4xx_reply_fails_the_delivery_after_max_retries(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    subscribe(store, "weekly", [("full@example.org", ""), ("ok@example.org", "")])
    smtp_server.refuse("full@example.org", "452 4.2.2 Mailbox full")
    config = smtp_config(project, smtp_server, delivery="max_retries = 2")

    report = send_digest(config, store, "weekly")

    assert report.counts.failed == 1 and report.counts.sent == 1
    status, attempts, error = delivery_rows(store)["full@example.org"]
    assert (status, attempts) == (FAILED, 3)
    assert error == "gave up after 3 attempts: 452 4.2.2 Mailbox full"
    assert store.subscribers.get("full@example.org").bounces == 0


def test_a_5xx_reply_fails_the_delivery_and_counts_a_bounce(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    subscribe(store, "weekly", [("nobody@example.org", ""), ("ok@example.org", "")])
    smtp_server.refuse("nobody@example.org", "550 5.1.1 No such user here")
    config = smtp_config(project, smtp_server)

    report = send_digest(config, store, "weekly")

    assert smtp_server.per_recipient() == {"ok@example.org": 1}
    assert (report.status, report.counts.sent, report.counts.failed) == ("done", 1, 1)
    assert delivery_rows(store)["nobody@example.org"] == (FAILED, 1, "550 5.1.1 No such user here")
    assert store.subscribers.get("nobody@example.org").bounces == 1
    assert store.subscribers.get("ok@example.org").bounces == 0


def test_a_connection_dropped_during_data_is_retried(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(5)
    subscribe(store, "weekly", people)
    smtp_server.drop_data_for(people[2][0])
    config = smtp_config(project, smtp_server, connections=1)

    report = send_digest(config, store, "weekly")

    assert smtp_server.per_recipient() == {email: 1 for email, _ in people}
    assert report.counts.sent == 5
    assert delivery_rows(store)[people[2][0]][:2] == (SENT, 2)


def test_a_run_of_failures_pauses_the_issue_and_send_resumes_it(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(10)
    subscribe(store, "weekly", people)
    for email, _ in people[:3]:
        smtp_server.refuse(email, "554 5.7.1 Relay access denied")
    config = smtp_config(project, smtp_server, connections=1, delivery="max_consecutive_failures = 3")

    with pytest.raises(IssuePaused) as paused:
        send_digest(config, store, "weekly")

    assert str(paused.value) == (
        "issue #1 of weekly paused: 3 deliveries in a row were refused (the last to "
        "reader000002@example.org: 554 5.7.1 Relay access denied); check the server's replies "
        "and the [smtp] settings; then run `newsletter send weekly` to resume"
    )
    [summary] = store.issues.history("weekly")
    assert (summary.status, summary.counts.failed, summary.counts.pending) == ("paused", 3, 7)
    assert summary.paused_reason is not None and "3 deliveries in a row were refused" in summary.paused_reason

    report = send_digest(config, store, "weekly")  # the failed three stay failed

    assert report.resumed and report.status == "done"
    assert (report.counts.sent, report.counts.failed) == (7, 3)
    assert smtp_server.per_recipient() == {email: 1 for email, _ in people[3:]}


def test_an_authentication_failure_mid_run_pauses_and_a_later_send_resumes(
    project: Path, store: Store, smtp_server_factory: Callable[..., SmtpTestServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_server_factory(password="right")
    people = generated_people(9)
    subscribe(store, "weekly", people)
    server.close_after(3)
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "right")
    config = configure(project, server.config_toml(connections=1) + 'username = "news"\n')

    def change_password(progress: SendProgress) -> None:
        server.password = "changed"  # the first connection is logged in; the next login fails

    with pytest.raises(IssuePaused) as paused:
        send_digest(config, store, "weekly", progress=change_password)

    assert f"the SMTP server 127.0.0.1:{server.port} refused the login of 'news' (535 " in str(paused.value)
    assert "check the password in $NEWSLETTER_SMTP_PASSWORD" in str(paused.value)
    [summary] = store.issues.history()
    assert (summary.status, summary.counts.sent, summary.counts.pending) == ("paused", 3, 6)

    server.password = "right"
    report = send_digest(config, store, "weekly")

    assert report.status == "done" and report.counts.sent == 9
    assert server.per_recipient() == {email: 1 for email, _ in people}


def test_a_wrong_password_fails_before_anything_is_recorded(
    project: Path, store: Store, smtp_server_factory: Callable[..., SmtpTestServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_server_factory(password="right")
    subscribe(store, "weekly", generated_people(3))
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
    config = configure(project, server.config_toml() + 'username = "news"\n')

    with pytest.raises(DeliveryError, match="refused the login of 'news'"):
        send_digest(config, store, "weekly")

    assert store.issues.history() == [] and server.messages == []


def test_a_missing_password_or_secret_is_one_clear_error(
    project: Path, store: Store, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(store, "weekly", generated_people(2))
    monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)
    config = configure(project, smtp_server.config_toml() + 'username = "news"\n')
    with pytest.raises(SecretError, match=r"export NEWSLETTER_SMTP_PASSWORD=\.\.\."):
        send_digest(config, store, "weekly")
    monkeypatch.delenv("NEWSLETTER_SECRET")
    config = configure(project, smtp_server.config_toml())
    with pytest.raises(SecretError, match=r"export NEWSLETTER_SECRET=\.\.\."):
        send_digest(config, store, "weekly")
    assert store.issues.history() == [] and smtp_server.messages == []


def test_an_unreachable_server_fails_before_anything_is_recorded(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    subscribe(store, "weekly", generated_people(2))
    config = smtp_config(project, smtp_server)
    smtp_server.stop()

    with pytest.raises(DeliveryError) as failure:
        send_digest(config, store, "weekly")

    assert str(failure.value) == (
        f"cannot connect to the SMTP server 127.0.0.1:{smtp_server.port} (Connection refused); "
        "check [smtp].host and port and that the server is running"
    )
    assert store.issues.history() == []


def test_stop_finishes_messages_in_flight_and_send_resumes(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(30)
    subscribe(store, "weekly", people)
    config = smtp_config(project, smtp_server, connections=1, delivery="batch_size = 5")
    smtp_server.slow_down(0.05)  # 1.5 s in all: the stop comes while it sends
    stop = threading.Event()

    def stop_after_some(progress: SendProgress) -> None:
        if progress.sent >= 5:
            stop.set()

    first = send_digest(config, store, "weekly", progress=stop_after_some, stop=stop)

    assert first.status == "stopped" and 5 <= first.counts.sent < 30
    assert first.counts.sent == len(smtp_server.messages)
    [summary] = store.issues.history()
    assert summary.status == "sending" and summary.counts.pending == 30 - first.counts.sent

    (project / "articles" / "late-story.txt").write_text("A Late Story\n\nIt came in between.\n\nBody.\n")
    second = send_digest(config, store, "weekly")

    assert second.resumed and second.status == "done"
    assert second.sent_this_run == 30 - first.counts.sent
    assert smtp_server.per_recipient() == {email: 1 for email, _ in people}
    # The resumed issue sends what it was recorded with, not a new composition.
    assert {m.message["Subject"] for m in smtp_server.messages} == {"Test Weekly #1"}
    assert not any(b"A Late Story" in m.data for m in smtp_server.messages)


def test_concurrent_senders_never_send_twice(
    project: Path, config: Config, store: Store, smtp_server: SmtpTestServer
) -> None:
    people = generated_people(200)
    subscribe(store, "weekly", people)
    config = smtp_config(project, smtp_server, connections=2, delivery="batch_size = 20")
    outcomes: list[object] = []

    def run() -> None:
        own_store = Store(config.database.url)
        try:
            outcomes.append(send_digest(config, own_store, "weekly"))
        except NewsletterError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert smtp_server.per_recipient() == {email: 1 for email, _ in people}
    done = [o for o in outcomes if getattr(o, "status", None) == "done"]
    assert len(done) >= 1, outcomes
    assert [s.number for s in store.issues.history()] == [1]


def test_a_list_without_confirmed_subscribers_is_an_error_and_nothing_is_recorded(
    project: Path, config: Config, store: Store
) -> None:
    store.subscribers.add("waiting@example.org", "weekly", confirmed=False)

    with pytest.raises(DeliveryError) as failure:
        send_digest(config, store, "weekly")

    assert str(failure.value) == (
        "list 'weekly' has no confirmed subscribers; add some with "
        "`newsletter subscribers add EMAIL --list weekly`"
    )
    assert store.issues.history() == []


def test_no_new_articles_sends_and_records_nothing(
    project: Path, store: Store, smtp_server: SmtpTestServer
) -> None:
    subscribe(store, "weekly", generated_people(2))
    config = smtp_config(project, smtp_server)
    send_digest(config, store, "weekly")

    report = send_digest(config, store, "weekly")

    assert report.status == "nothing"
    assert str(report) == "no new articles for weekly in the last 7 days; nothing sent"
    assert len(store.issues.history()) == 1 and len(smtp_server.messages) == 2


def test_the_outbox_gets_one_file_per_recipient(project: Path, config: Config, store: Store) -> None:
    people = generated_people(5)
    subscribe(store, "weekly", people)

    report = send_digest(config, store, "weekly")

    folder = project / "outbox" / "weekly-1"
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{n}.eml" for n in range(1, 6)]
    assert report.counts.sent == 5
    recipients = {message_from_bytes(f.read_bytes(), policy=policy.default)["To"] for f in files}
    assert recipients == {f"{name} <{email}>" for email, name in people}
