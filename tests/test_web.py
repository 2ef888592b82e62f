"""The web side over real HTTP: uvicorn on a loopback port, httpx as the browser or mail provider."""

from __future__ import annotations

import email
import email.policy
import os
import base64
import hashlib
import hmac
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dkim
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from newsletter import tokens
from newsletter.cli import app
from newsletter.config import Config, load_config
from newsletter.confirmation import build_confirmation
from newsletter.sending import send_digest
from newsletter.signing import dns_record
from newsletter.store import Store
from newsletter.web import create_app
from newsletter.webguards import RateLimiter
from conftest import BASE_URL
from web_server import WebServer

BACKENDS = ("sqlite", "postgres")

SECRET = "web-test-secret"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class Site:
    url: str
    config: Config
    store: Store
    http: httpx.Client

    def unsubscribe_path(self, email_address: str, slug: str = "weekly") -> str:
        subscriber = self.store.subscribers.get(email_address)
        list_id = self.store.lists.get(slug).id
        return "/u/" + tokens.make_token(SECRET.encode(), tokens.UNSUBSCRIBE, subscriber.id, list_id)

    def status(self, email_address: str, slug: str = "weekly") -> str:
        subscriber = self.store.subscribers.get(email_address)
        member = self.store.memberships.get(subscriber.id, self.store.lists.get(slug).id)
        assert member is not None
        return member.status

    def form_post(self, page_path: str, data: dict[str, str] | None = None, action: str | None = None) -> httpx.Response:
        """What a browser does: load the page, then submit its form from our own origin."""
        page = self.http.get(page_path)
        assert page.status_code == 200, page.text
        fields = {"form_token": form_token(page.text), **(data or {})}
        return self.http.post(action or page_path, data=fields, headers={"Origin": self.url})


def form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def outbox_messages(config: Config) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(config.delivery.outbox.rglob("*.eml"))
    ]


@pytest.fixture
def site(project: Path, web_server: WebServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from open_site(project, web_server, monkeypatch, "subscribe_rate_limit = 3\n")


@pytest.fixture
def proxied_site(project: Path, web_server: WebServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The site behind a proxy on loopback that the config trusts."""
    yield from open_site(
        project, web_server, monkeypatch, 'subscribe_rate_limit = 3\ntrusted_proxies = ["127.0.0.1"]\n'
    )


def open_site(project: Path, web_server: WebServer, monkeypatch: pytest.MonkeyPatch, web_table: str) -> Iterator[Site]:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    config_path = project / "config.toml"
    text = config_path.read_text().replace(f'base_url = "{BASE_URL}"', f'base_url = "{web_server.url}"')
    config_path.write_text(text + "\n[web]\n" + web_table)
    config = load_config(config_path)
    store = Store(config.database.url)
    store.lists.create("weekly", "Test Weekly")
    store.lists.create("daily", "Test Daily", description="Every morning.", double_opt_in=True)
    for address, name in [("alice@example.org", "Alice"), ("bob@example.org", "Bob")]:
        store.subscribers.add(address, "weekly", name)
    web_server.start(create_app(config, store))
    with httpx.Client(base_url=web_server.url, follow_redirects=False, timeout=10) as client:
        yield Site(web_server.url, config, store, client)
    store.close()


def test_one_click_post_unsubscribes_at_once_and_the_next_send_skips_that_address(site: Site) -> None:
    response = site.http.post(site.unsubscribe_path("alice@example.org"), data=ONE_CLICK)

    assert response.status_code == 200
    assert "location" not in response.headers
    assert site.status("alice@example.org") == "unsubscribed"
    assert site.http.post(site.unsubscribe_path("alice@example.org"), data=ONE_CLICK).status_code == 200
    send_digest(site.config, site.store, "weekly")
    assert [m["To"].addresses[0].addr_spec for m in outbox_messages(site.config)] == ["bob@example.org"]


def test_get_shows_a_button_and_never_unsubscribes(site: Site) -> None:
    response = site.http.get(site.unsubscribe_path("alice@example.org"))

    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert "Unsubscribe from Test Weekly?" in response.text
    assert site.status("alice@example.org") == "confirmed"


def test_the_button_unsubscribes_and_the_result_page_offers_to_resubscribe(site: Site) -> None:
    path = site.unsubscribe_path("alice@example.org")
    left = site.form_post(path)

    assert left.status_code == 200
    assert "You are unsubscribed" in left.text
    assert site.status("alice@example.org") == "unsubscribed"
    back = site.http.post(
        f"{path}/resubscribe", data={"form_token": form_token(left.text)}, headers={"Origin": site.url}
    )
    assert back.status_code == 200
    assert "receives Test Weekly again" in back.text
    assert site.status("alice@example.org") == "confirmed"


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("prefix", ["/u/", "/confirm/"])
def test_tampered_and_unknown_tokens_get_a_400_page_and_change_nothing(site: Site, method: str, prefix: str) -> None:
    good = site.unsubscribe_path("alice@example.org").removeprefix("/u/")
    payload, mac = good.split(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    unknown = tokens.make_token(SECRET.encode(), tokens.UNSUBSCRIBE, 9999, 1)
    for token in [f"{payload}.{flipped}", "garbage", unknown, f"{good}.extra"]:
        response = site.http.request(method, prefix + token, data=ONE_CLICK if method == "POST" else None)
        assert response.status_code == 400, (token, response.text)
        assert "not valid" in response.text or "unknown" in response.text
        assert "Traceback" not in response.text
    assert site.status("alice@example.org") == "confirmed"


def test_human_forms_refuse_cross_site_posts(site: Site) -> None:
    path = site.unsubscribe_path("alice@example.org")
    token = form_token(site.http.get(path).text)

    cross_site = site.http.post(path, data={"form_token": token}, headers={"Origin": "https://evil.example"})
    no_token = site.http.post(path, data={}, headers={"Origin": site.url})
    token_for_another_form = site.http.post(
        "/subscribe/weekly", data={"form_token": token, "email": "eve@example.org"}
    )

    assert (cross_site.status_code, no_token.status_code, token_for_another_form.status_code) == (403, 403, 403)
    assert "another site" in cross_site.text
    assert site.status("alice@example.org") == "confirmed"
    with pytest.raises(Exception, match="no subscriber"):
        site.store.subscribers.get("eve@example.org")


def test_subscribe_form_records_consent_and_the_mailed_link_confirms(site: Site) -> None:
    response = site.form_post("/subscribe/daily", {"email": "carol@example.org", "name": "Carol"})

    assert response.status_code == 200
    assert "check your inbox" in response.text
    assert site.status("carol@example.org", "daily") == "unconfirmed"
    carol = site.store.subscribers.get("carol@example.org")
    consent = [e for e in site.store.events.for_subscriber(carol.id) if e["kind"] == "consent"]
    assert len(consent) == 1
    assert consent[0]["ip"] == "127.0.0.1"
    assert consent[0]["at"] is not None
    assert consent[0]["detail"]["text"].startswith("I want to receive Test Daily by email")

    [mail] = outbox_messages(site.config)
    assert str(mail["To"]) == "carol@example.org"
    assert mail["Subject"] == "Confirm your subscription to Test Daily"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(rf"{re.escape(site.url)}(/confirm/\S+)", text)
    assert link, text
    assert link.group(1) in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]

    page = site.http.get(link.group(1))
    assert "Send Test Daily to carol@example.org?" in page.text
    assert site.status("carol@example.org", "daily") == "unconfirmed"
    confirmed = site.form_post(link.group(1))
    assert confirmed.status_code == 200
    assert "is confirmed" in confirmed.text
    assert site.status("carol@example.org", "daily") == "confirmed"


def test_subscribe_honeypot_is_thanked_and_ignored(site: Site) -> None:
    response = site.form_post("/subscribe/daily", {"email": "bot@example.org", "website": "http://spam.example"})

    assert response.status_code == 200
    assert "Thank you" in response.text
    with pytest.raises(Exception, match="no subscriber"):
        site.store.subscribers.get("bot@example.org")
    assert outbox_messages(site.config) == []


def test_subscribe_rate_limit_per_ip(site: Site) -> None:
    statuses = [
        site.form_post("/subscribe/weekly", {"email": f"reader{i}@example.org"}).status_code for i in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
    with pytest.raises(Exception, match="no subscriber"):
        site.store.subscribers.get("reader3@example.org")


def test_bad_email_and_unknown_list_get_a_clear_4xx_and_change_nothing(site: Site) -> None:
    bad = site.form_post("/subscribe/weekly", {"email": "not-an-address", "name": "X"})
    unknown = site.http.get("/subscribe/nope")

    assert bad.status_code == 400
    assert "invalid address" in bad.text
    assert 'value="not-an-address"' in bad.text
    assert unknown.status_code == 404
    assert "no mailing list &#39;nope&#39;" in unknown.text
    assert [s.email for s in site.store.subscribers.listing()] == ["alice@example.org", "bob@example.org"]


def test_pages_escape_html_and_carry_security_headers(site: Site) -> None:
    site.store.lists.create("xss", "<script>alert(1)</script>")

    response = site.http.get("/subscribe/xss")

    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "same-origin"


def test_archive_index_issue_and_feed_carry_no_personal_token(site: Site) -> None:
    send_digest(site.config, site.store, "weekly")
    issue_mail = outbox_messages(site.config)[0]

    index = site.http.get("/archive/weekly")
    issue = site.http.get("/archive/weekly/1")
    feed = site.http.get("/archive/weekly/feed.xml")

    assert (index.status_code, issue.status_code, feed.status_code) == (200, 200, 200)
    assert issue_mail["Subject"] in index.text
    assert f"{site.url}/archive/weekly/1" in index.text
    assert "Zelensky Says NATO Should Shoot Down Russian Missiles" in issue.text
    assert "Hello, here is this week's story." in issue.text
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ElementTree.fromstring(feed.content).findall(f"{atom}entry")
    assert [e.findtext(f"{atom}title") for e in entries] == [issue_mail["Subject"]]
    for page in (index.text, issue.text, feed.text):
        assert "%%NL_" not in page
        assert "/u/" not in page
        assert "alice" not in page and "bob" not in page
    assert site.http.get("/archive/weekly/2").status_code == 404
    assert site.http.get("/archive/nope").status_code == 404


def test_no_javascript_link_reaches_the_mail_or_the_archive(site: Site) -> None:
    (site.config.root / "articles" / "hostile.md").write_text(
        '---\ntitle: Hostile links\nurl: "javascript:alert(document.cookie)"\n'
        'authors:\n  - name: Eve\n    url: "javascript:alert(1)"\n    bio: Eve writes.\n---\n'
        "[click](javascript:alert(2)) and <a href=\"JaVaScRiPt:alert(3)\">this</a>.\n",
        encoding="utf-8",
    )
    send_digest(site.config, site.store, "weekly")
    mail = outbox_messages(site.config)[0]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    issue = site.http.get("/archive/weekly/1")

    assert issue.status_code == 200 and "Hostile links" in issue.text and "Hostile links" in html
    for page in (html, issue.text):
        # Markdown leaves "[click](javascript:...)" as plain text; no link carries the scheme.
        assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", page, re.I)
        assert "JaVaScRiPt" not in page and ">this</a>" in page
        assert "Eve writes." in page


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 3600, clock=lambda: now[0])

    assert [limiter.allow("1.2.3.4") for _ in range(3)] == [True, True, False]
    assert limiter.allow("5.6.7.8")
    now[0] = 3600.5
    assert limiter.allow("1.2.3.4")


def test_the_confirmation_mail_is_dkim_signed_when_configured(
    project: Path, write_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key_path = project / "dkim.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    config = load_config(write_config(f'[dkim]\ndomain = "example.org"\nselector = "news"\nprivate_key = "{key_path}"\n'))
    store = Store(config.database.url)
    daily = store.lists.create("daily", "Test Daily", double_opt_in=True)
    result = store.subscribers.add("Carol@Example.org", "daily", "Carol")

    data = build_confirmation(config, daily, result, "Carol")

    record = dns_record(key).encode()
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    signature = email.message_from_bytes(data, policy=email.policy.default)["DKIM-Signature"]
    signed = [h.strip() for h in re.search(r"h=([^;]+);", str(signature)).group(1).split(":")]  # type: ignore[union-attr]
    assert {"from", "to", "subject", "date", "message-id"} <= set(signed)
    tampered = data.replace(b"Subject: Confirm", b"Subject: Kindly confirm")
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)
    store.close()


@contextmanager
def serve(config_path: Path, *args: str) -> Iterator[str]:
    """`newsletter serve` in a subprocess on a free loopback port; yields its URL. After the
    block the server is stopped and its log is checked for the startup line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()",
         "--config", str(config_path), "serve", "--port", str(port), *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NEWSLETTER_SECRET": SECRET},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/archive/nope")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    assert f"Uvicorn running on {url}" in log


@pytest.mark.slow
def test_serve_answers_on_loopback_by_default(project: Path) -> None:
    with serve(project / "config.toml") as url:
        response = httpx.get(f"{url}/archive/weekly")
    assert response.status_code == 200
    assert "No issue has been sent yet." in response.text


def test_serve_without_the_secret_is_one_error_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)

    result = CliRunner().invoke(app, ["--config", str(project / "config.toml"), "serve"])

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the token signing secret is not set: export NEWSLETTER_SECRET=... "
        f"(the variable named in {project / 'config.toml'})\n"
    )


# -- hostile requests ---------------------------------------------------------------------------


def consent_ips(site: Site, address: str) -> list[str | None]:
    subscriber = site.store.subscribers.get(address)
    return [e["ip"] for e in site.store.events.for_subscriber(subscriber.id) if e["kind"] == "consent"]


def test_rotating_x_forwarded_for_from_an_untrusted_peer_changes_nothing(site: Site) -> None:
    statuses = []
    for n in range(5):
        page = site.http.get("/subscribe/weekly")
        response = site.http.post(
            "/subscribe/weekly",
            data={"form_token": form_token(page.text), "email": f"r{n}@example.org"},
            headers={"Origin": site.url, "X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"},
        )
        statuses.append(response.status_code)

    assert statuses == [200, 200, 200, 429, 429]
    assert [consent_ips(site, f"r{n}@example.org") for n in range(3)] == [["127.0.0.1"]] * 3


def test_x_forwarded_proto_from_an_untrusted_peer_is_ignored(site: Site) -> None:
    response = site.http.post(
        "/subscribe/weekly",
        data={"form_token": form_token(site.http.get("/subscribe/weekly").text), "email": "x@example.org"},
        headers={"Origin": site.url.replace("http:", "https:"), "X-Forwarded-Proto": "https"},
    )

    assert response.status_code == 403
    assert "another site" in response.text


def test_a_trusted_proxy_names_the_client_and_its_scheme(proxied_site: Site) -> None:
    site = proxied_site
    statuses = []
    for n in range(4):
        page = site.http.get("/subscribe/weekly")
        response = site.http.post(
            "/subscribe/weekly",
            data={"form_token": form_token(page.text), "email": f"r{n}@example.org"},
            # The client's own claim first, then what our proxy saw; the proxy is trusted.
            headers={
                "Origin": site.url.replace("http:", "https:"),
                "X-Forwarded-For": f"10.6.6.6, 203.0.113.{n}",
                "X-Forwarded-Proto": "https",
            },
        )
        statuses.append(response.status_code)

    assert statuses == [200, 200, 200, 200]
    assert [consent_ips(site, f"r{n}@example.org") for n in range(4)] == [[f"203.0.113.{n}"] for n in range(4)]
    same_client = [
        site.form_post("/subscribe/weekly", {"email": f"s{n}@example.org"}).status_code for n in range(4)
    ]
    assert same_client == [200, 200, 200, 429]  # the proxy itself, without the header
    assert consent_ips(site, "s0@example.org") == ["127.0.0.1"]


def test_the_web_form_refuses_a_name_with_control_characters(site: Site) -> None:
    response = site.form_post("/subscribe/weekly", {"email": "eve@example.org", "name": "Eve\x00\x1b[2J"})

    assert response.status_code == 400
    assert "invalid name &#39;Eve\\x00\\x1b[2J&#39;: it contains the control character U+0000 at position 4" in response.text
    with pytest.raises(Exception, match="no subscriber"):
        site.store.subscribers.get("eve@example.org")


def test_an_archive_number_past_any_integer_is_a_404(site: Site) -> None:
    response = site.http.get("/archive/weekly/99999999999999999999999")

    assert response.status_code == 404
    assert "no issue 99999999999999999999999 of weekly" in response.text


def confirm_path(site: Site, email_address: str, membership_token: str) -> str:
    subscriber = site.store.subscribers.get(email_address)
    list_id = site.store.lists.get("daily").id
    return "/confirm/" + tokens.make_token(SECRET.encode(), tokens.CONFIRM, subscriber.id, list_id, membership_token)


def legacy_signed(subscriber_id: int, list_id: int) -> str:
    """The signed part of a confirm link as mailed before the membership token was signed."""
    payload = f"confirm:{subscriber_id}:{list_id}".encode()
    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, mac))


def test_a_confirm_link_cannot_carry_another_members_token(site: Site) -> None:
    victim = site.store.subscribers.add("victim@example.org", "daily")
    mallory = site.store.subscribers.add("mallory@example.org", "daily")
    assert victim.confirm_token and mallory.confirm_token
    # The form links had before the store's token was signed: mallory's signature, victim's token.
    old_form_splice = f"/confirm/{legacy_signed(mallory.subscriber_id, mallory.list_id)}.{victim.confirm_token}"
    old_page = site.http.get(old_form_splice)
    assert old_page.status_code == 400
    assert "comes from an older confirmation email; sign up again to get a new link" in old_page.text
    # Today's form: mallory's own link with the token inside the payload swapped.
    own_link = confirm_path(site, "mallory@example.org", mallory.confirm_token)
    payload, mac = own_link.removeprefix("/confirm/").split(".")
    swapped_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(mallory.confirm_token.encode(), victim.confirm_token.encode())
    ).rstrip(b"=").decode()

    for forged in (old_form_splice, f"/confirm/{swapped_payload}.{mac}"):
        assert site.http.get(forged).status_code == 400, forged
        post = site.http.post(forged, data={"form_token": "x"}, headers={"Origin": site.url})
        assert post.status_code == 400, forged
    assert site.status("victim@example.org", "daily") == "unconfirmed"

    confirmed = site.form_post(own_link)
    assert confirmed.status_code == 200
    assert (site.status("mallory@example.org", "daily"), site.status("victim@example.org", "daily")) == (
        "confirmed", "unconfirmed"
    )


def test_a_signed_confirm_link_with_a_stale_membership_token_is_refused(site: Site) -> None:
    member = site.store.subscribers.add("carol@example.org", "daily")
    stale = confirm_path(site, "carol@example.org", "not-the-stored-token")

    response = site.form_post(stale)

    assert response.status_code == 400
    assert "unknown or no longer valid" in response.text
    assert member.confirm_token and site.status("carol@example.org", "daily") == "unconfirmed"


@pytest.mark.slow
def test_serve_ignores_forwarded_headers_from_an_untrusted_peer(project: Path) -> None:
    """`newsletter serve` itself: uvicorn's own proxy handling (which trusts loopback) is off."""
    path = project / "config.toml"
    path.write_text(path.read_text() + '\n[web]\nsubscribe_rate_limit = 1\n')
    CliRunner().invoke(app, ["--config", str(path), "lists", "add", "weekly"])
    with serve(path) as url, httpx.Client(base_url=url, timeout=10) as client:
        statuses = []
        for n in range(2):
            page = client.get("/subscribe/weekly")
            statuses.append(client.post(
                "/subscribe/weekly",
                data={"form_token": form_token(page.text), "email": f"r{n}@example.org"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code)
    assert statuses == [200, 429]
    store = Store(load_config(path).database.url)
    subscriber = store.subscribers.get("r0@example.org")
    assert [e["ip"] for e in store.events.for_subscriber(subscriber.id) if e["kind"] == "consent"] == ["127.0.0.1"]
    store.close()
