"""Many writers during a send: every CLI write and every one-click unsubscribe succeeds,
and nobody is mailed after their unsubscribe returned. On SQLite and PostgreSQL.

`newsletter send` mails 2,000 readers through the SMTP test server, slowed so that the
send lasts about 40 s. Meanwhile 50 `subscribers unsubscribe` and 50 RFC 8058 one-click
POSTs to `newsletter serve` take readers who are just ahead of the sending position (their
deliveries are claimed, some already queued to a connection), 20 `subscribers add` and a
10,000-row `subscribers import` run beside them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cli_process import newsletter, wait_until
from smtp_server import SmtpTestServer, configure, free_port, generated_people, subscribe

from newsletter.store import Store
from newsletter.tokens import UNSUBSCRIBE, make_token

BACKENDS = ("sqlite", "postgres")
SECRET = "concurrency-test-secret"
RECIPIENTS = 2000
CONNECTIONS = 4
DELAY = 0.08  # seconds per message per connection: 2,000 / 4 * 0.08 = 40 s of sending
PEOPLE = generated_people(RECIPIENTS)


@pytest.fixture
def busy_project(project: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    config = configure(project, smtp_server.config_toml(connections=CONNECTIONS, delivery="batch_size = 10"))
    store = Store(config.database.url)
    store.lists.create("weekly")
    subscribe(store, "weekly", PEOPLE)
    store.close()
    rows = "".join(f"imported{n:05d}@example.net,Imported {n}\n" for n in range(10_000))
    (project / "big.csv").write_text("email,name\n" + rows, encoding="utf-8")
    smtp_server.slow_down(DELAY)
    return project


class Targets:
    """Hands out readers just ahead of the sending position, each once."""

    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server
        self.taken: set[str] = set()
        self.lock = threading.Lock()
        self.random = random.Random(8)

    def next(self) -> str:
        received = self.server.per_recipient()
        with self.lock:
            ahead = [email for email, _ in PEOPLE if email not in received and email not in self.taken]
            assert ahead, "the send ended before the writes: the machine is too busy for this test"
            email = ahead[min(len(ahead) - 1, self.random.randrange(4, 60))]
            self.taken.add(email)
            return email


@pytest.mark.slow
def test_writes_during_a_send_succeed_and_nobody_is_mailed_after_leaving(
    busy_project: Path, smtp_server: SmtpTestServer, database_url: str
) -> None:
    port = free_port()
    web = newsletter(busy_project, "serve", "--port", str(port))
    sender = newsletter(busy_project, "send", "weekly", "--yes")
    wait_until(lambda: web.poll() is not None or _answers(port))
    assert web.poll() is None, web.communicate()[1].decode()
    wait_until(lambda: len(smtp_server.messages) >= 50)
    store = Store(database_url)
    list_id = store.lists.get("weekly").id
    ids = {s.email: s.id for s in store.subscribers.listing("weekly")}
    targets = Targets(smtp_server)
    left_at: dict[str, float] = {}
    failures: list[str] = []

    def cli_unsubscribe() -> None:
        email = targets.next()
        process = newsletter(busy_project, "subscribers", "unsubscribe", email, "--list", "weekly")
        out, err = process.communicate(timeout=120)
        left_at[email] = time.time()
        if process.returncode != 0 or not out.startswith(f"Unsubscribed {email}".encode()):
            failures.append(f"unsubscribe {email}: exit {process.returncode}: {err.decode()}")

    def one_click() -> None:
        email = targets.next()
        token = make_token(SECRET.encode(), UNSUBSCRIBE, ids[email], list_id)
        response = httpx.post(
            f"http://127.0.0.1:{port}/u/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=120
        )
        left_at[email] = time.time()
        if response.status_code != 200:
            failures.append(f"one-click {email}: HTTP {response.status_code}")

    def add(n: int) -> None:
        process = newsletter(busy_project, "subscribers", "add", f"added{n}@example.net", "--list", "weekly")
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:
            failures.append(f"add {n}: exit {process.returncode}: {err.decode()}")

    def big_import() -> None:
        process = newsletter(busy_project, "subscribers", "import", "big.csv", "--list", "weekly")
        out, err = process.communicate(timeout=180)
        if process.returncode != 0 or b"10000 added" not in out:
            failures.append(f"import: exit {process.returncode}: {out.decode()} {err.decode()}")

    jobs: list[Callable[[], None]] = [big_import]
    for n in range(50):
        jobs += [cli_unsubscribe, one_click]
        if n < 20:
            jobs.append(lambda n=n: add(n))
    with ThreadPoolExecutor(max_workers=6) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    writes_done = time.time()

    out, err = sender.communicate(timeout=300)
    web.terminate()
    web.communicate(timeout=30)

    assert failures == []
    assert sender.returncode == 0, err.decode()
    last_message = max(m.accepted_at for m in smtp_server.messages)
    assert writes_done < last_message, "the writes must all happen while the send runs"
    assert len(left_at) == 100
    received = smtp_server.per_recipient()
    mailed_late = {
        email: (message.accepted_at - left_at[email])
        for message in smtp_server.messages
        for email in message.rcpt_tos
        if email in left_at and message.accepted_at >= left_at[email]
    }
    assert mailed_late == {}
    assert [email for email, _ in PEOPLE if email not in left_at and received[email] != 1] == []
    assert max(received.values()) == 1
    assert store.lists.summary("weekly").counts == {"confirmed": RECIPIENTS - 100 + 20 + 10_000, "unsubscribed": 100}
    store.close()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/subscribe/weekly", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
