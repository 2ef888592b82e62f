"""End to end: the scheduler sends into a real SMTP server, a reader leaves with the
List-Unsubscribe link over real HTTP, and the next send skips them."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.jobstore import job_store_session, sync_cron_jobs
from newsletter.scheduler import Daemon
from newsletter.schedules import crontab_triggers
from newsletter.store import Store
from newsletter.web import create_app
from conftest import BASE_URL
from smtp_server import SmtpTestServer, configure
from web_server import WebServer


@pytest.mark.slow
def test_scheduled_send_then_one_click_unsubscribe_then_the_next_send_skips_that_reader(
    project: Path, smtp_server: SmtpTestServer, web_server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "end-to-end-secret")
    path = project / "config.toml"
    path.write_text(path.read_text().replace("max_articles = 10\n", 'max_articles = 10\nschedule = "0 8 * * *"\n'))
    config = configure(project, smtp_server.config_toml())
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly")
    for address in ("alice@example.org", "bob@example.org"):
        store.subscribers.add(address, "weekly")
    web_server.start(create_app(config, store))

    # The weekly crontab's next run, brought to a second from now.
    with job_store_session(config) as session:
        sync_cron_jobs(session, config, crontab_triggers(config))
        session.modify_job("digest:weekly", next_run_time=datetime.now(timezone.utc) + timedelta(seconds=1))
    daemon = Daemon(config)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        smtp_server.wait_for(2)
    finally:
        daemon.stop()
        thread.join(10)

    [to_alice] = [m.message for m in smtp_server.messages if m.rcpt_tos == ("alice@example.org",)]
    assert to_alice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(https?://[^>]+)>", str(to_alice["List-Unsubscribe"]))
    assert url and url.group(1).startswith(f"{BASE_URL}/u/")
    # What a mail provider does with RFC 8058: POST the body, no page, no cookies; the
    # HTTPS proxy at base_url hands it to `newsletter serve` (here: the test server).
    local_url = web_server.url + url.group(1).removeprefix(BASE_URL)
    response = httpx.post(local_url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert response.status_code == 200

    (project / "articles" / "second-article.txt").write_text("A second story\n\nIts deck.\n\nIts body.\n\nAuthor: Ada\n")
    result = CliRunner().invoke(app, ["--config", str(path), "send", "weekly", "--yes"])
    assert result.exit_code == 0, result.output

    assert [m.rcpt_tos for m in smtp_server.messages[2:]] == [("bob@example.org",)]
    assert smtp_server.per_recipient() == {"alice@example.org": 1, "bob@example.org": 2}
    store.close()
