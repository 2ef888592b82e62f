"""The message template: what a recipient's bytes decode to, its headers, its DKIM signature."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.config import Config, load_config
from newsletter.errors import AddressError, ConfigError
from newsletter.message import MessageTemplate, Recipient, build_unsubscribe_url, display_name
from newsletter.personal import PersonalMarkers, PersonalTemplate, personal_values
from newsletter.signing import dns_record, load_signer
from newsletter.tokens import UNSUBSCRIBE, read_token

SECRET = "test-secret"
# The fixed markers of issues recorded before markers had a nonce (a resumed old issue).
LEGACY = PersonalMarkers(None)
HTML = '<html><body><p>Hello %%NL_NAME%%,</p><a href="%%NL_UNSUBSCRIBE_URL%%">Unsubscribe</a></body></html>\n'
TEXT = "Hello %%NL_NAME%%,\n\nYou are %%NL_EMAIL%%.\nUnsubscribe: %%NL_UNSUBSCRIBE_URL%%\n"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)


def with_settings(project: Path, newsletter: str = "", extra: str = "") -> Config:
    """The project's config with more [newsletter] keys and more tables."""
    path = project / "config.toml"
    original = project / "config.toml.orig"
    if not original.exists():
        original.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = original.read_text(encoding="utf-8")
    text = text.replace("[newsletter]\n", f"[newsletter]\n{newsletter}\n", 1)
    path.write_text(text + "\n" + extra, encoding="utf-8")
    return load_config(path)


def template(config: Config, *, subject: str = "Test Weekly #1", html: str = HTML, text: str = TEXT) -> MessageTemplate:
    return MessageTemplate(
        config,
        list_id=7,
        list_slug="weekly",
        digest="weekly",
        label="weekly-1.20260101080000",
        subject=subject,
        html_part=html,
        text_part=text,
        markers=LEGACY,
        signer=load_signer(config),
    )


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def parts(data: bytes) -> tuple[str, str]:
    text, html = parse(data).iter_parts()
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, key


def dkim_config(project: Path, key_path: Path, newsletter: str = "") -> Config:
    dkim_table = f'[dkim]\ndomain = "example.org"\nselector = "news"\nprivate_key = "{key_path}"\n'
    return with_settings(project, newsletter, dkim_table)


def verifies(data: bytes, key: rsa.RSAPrivateKey) -> bool:
    record = dns_record(key).encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.example.org."
        return record

    return bool(dkim.verify(data, dnsfunc=dnsfunc))


def test_a_recipient_gets_their_own_values_in_both_parts(config: Config) -> None:
    message_template = template(config)
    data = message_template.fill(Recipient("ada@example.org", "Ada <Lovelace> & co", 12, "34"))

    text, html = parts(data)
    url = build_unsubscribe_url(config, 12, 7)
    assert text == f"Hello Ada <Lovelace> & co,\n\nYou are ada@example.org.\nUnsubscribe: {url}\n"
    assert 'Hello Ada &lt;Lovelace&gt; &amp; co,' in html and f'href="{url}"' in html
    assert read_token(SECRET.encode(), url.rpartition("/")[2], UNSUBSCRIBE).subscriber_id == 12
    message = parse(data)
    assert message["To"] == '"Ada <Lovelace> & co" <ada@example.org>'
    assert message["Message-ID"] == "<weekly-1.20260101080000.34@example.org>"
    assert message["List-Unsubscribe"] == f"<{url}>"


def test_an_empty_name_reads_as_reader_and_the_to_header_is_the_bare_address(config: Config) -> None:
    data = template(config).fill(Recipient("bob@example.org", "", 3, "4"))
    assert parse(data)["To"] == "bob@example.org"
    assert parts(data)[0].startswith("Hello reader,")


placeholder = st.sampled_from(list(LEGACY.placeholders.values()))
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
# Long runs make lines longer than quoted-printable allows; "=" and trailing blanks need quoting.
tricky_text = st.one_of(any_text, st.sampled_from(["=" * 90, "a" * 200, "line  \n", "end \t", "\r\n.\r\n", ""]))


@st.composite
def rendered_parts(draw: st.DrawFn) -> str:
    chunks = draw(st.lists(st.tuples(tricky_text, placeholder), max_size=6))
    return "".join(text + marker for text, marker in chunks) + draw(tricky_text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text_part=rendered_parts(),
    html_part=rendered_parts(),
    name=any_text,
    local=st.from_regex(r"[a-z0-9._%+-]{1,40}", fullmatch=True),
)
def test_quoted_printable_never_splits_a_placeholder(
    config: Config, text_part: str, html_part: str, name: str, local: str
) -> None:
    email = f"{local}@example.org"
    data = template(config, text=text_part, html=html_part).fill(Recipient(email, name, 5, "1"))

    values = personal_values(build_unsubscribe_url(config, 5, 7), display_name(name), email)
    expect_text = PersonalTemplate(_newlines(text_part), LEGACY, escape_html=False).fill(values)
    expect_html = PersonalTemplate(_newlines(html_part), LEGACY, escape_html=True).fill(values)
    assert parts(data) == (_newlines(expect_text), _newlines(expect_html))
    head, _, body = data.partition(b"\r\n\r\n")
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "a quoted-printable line is too long"
    assert body.isascii() and b"\n" not in body.replace(b"\r\n", b"")


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def test_header_values_never_carry_line_breaks(config: Config) -> None:
    message_template = template(config, subject="Issue 1\r\nBcc: victim@example.org")
    data = message_template.fill(Recipient("ada@example.org", "Eve\r\nBcc: victim@example.org", 1, "1"))

    head = data.partition(b"\r\n\r\n")[0].decode()
    names = [line.split(":")[0] for line in head.split("\r\n") if not line[:1].isspace()]
    assert "Bcc" not in names
    assert names == [
        "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id", "List-Archive",
        "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type",
    ]
    assert parse(data)["Subject"] == "Issue 1 Bcc: victim@example.org"
    with pytest.raises(AddressError, match="line break"):
        message_template.fill(Recipient("ada@example.org\r\nBcc: x@example.org", "", 1, "2"))


def test_a_subject_that_is_not_ascii_is_encoded_per_rfc_2047(config: Config) -> None:
    data = template(config, subject="Café ☕ — the week in review").fill(Recipient("a@example.org", "Jörg", 1, "1"))

    head = data.partition(b"\r\n\r\n")[0]
    assert head.isascii()
    assert re.search(rb"\r\nSubject: =\?utf-8\?", head)
    message = parse(data)
    assert message["Subject"] == "Café ☕ — the week in review"
    assert message["To"] == "Jörg <a@example.org>"


def test_mailto_unsubscribe_and_reply_to_when_configured(project: Path) -> None:
    config = with_settings(
        project, 'reply_to = "Desk <desk@example.org>"\nunsubscribe_mailto = "leave@example.org"'
    )
    data = template(config).fill(Recipient("a@example.org", "", 9, "1"))

    message = parse(data)
    url = build_unsubscribe_url(config, 9, 7)
    token = url.rpartition("/")[2]
    assert message["List-Unsubscribe"] == f"<{url}>, <mailto:leave@example.org?subject=unsubscribe%20{token}>"
    assert message["Reply-To"] == "Desk <desk@example.org>"


def test_an_internationalized_domain_goes_out_in_ascii(config: Config) -> None:
    data = template(config).fill(Recipient("jorg@bücher.de", "", 1, "1"))
    assert parse(data)["To"] == "jorg@xn--bcher-kva.de"


def test_the_dkim_signature_verifies_and_covers_the_headers(
    project: Path, dkim_key: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    key_path, key = dkim_key
    config = dkim_config(
        project, key_path, 'reply_to = "desk@example.org"\nunsubscribe_mailto = "leave@example.org"'
    )
    message_template = template(config, subject="Café weekly: a long subject " + "word " * 20)
    data = message_template.fill(Recipient("ada@example.org", "Ada Lövelace", 12, "34"))

    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=example.org; s=news;")
    assert verifies(data, key)
    signed = signed_headers(data)
    for header in ("date", "message-id", "list-id", "list-archive", "reply-to", "mime-version", "content-type"):
        assert signed.count(header) == 1
    # Over-signed: listed once more than they occur, so one added in transit breaks the signature.
    for header in ("from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post"):
        assert signed.count(header) == 2
    # A relay that changed a signed header or the body breaks the signature.
    assert not verifies(data.replace(b"ada@example.org", b"eve@example.org", 1), key)
    assert b">Unsubscribe</a>" in data
    assert not verifies(data.replace(b">Unsubscribe</a>", b">Subscribe</a>", 1), key)
    # Every recipient's message is signed on its own.
    other = message_template.fill(Recipient("bob@example.org", "", 13, "35"))
    assert verifies(other, key)


def signed_headers(data: bytes) -> list[str]:
    signature = parse(data)["DKIM-Signature"]
    h_tag = re.search(r"\bh=([^;]+);", " ".join(signature.split())).group(1)  # type: ignore[union-attr]
    return [name.strip() for name in h_tag.split(":")]


def head_lines(data: bytes) -> list[bytes]:
    return data.partition(b"\r\n\r\n")[0].split(b"\r\n")


def folded(line: bytes) -> bool:
    """At most 78 characters, unless the line's value is one word (a URL cannot be folded)."""
    value = line.strip() if line[:1] in (b" ", b"\t") else line.partition(b": ")[2]
    return len(line) <= 78 or b" " not in value


@pytest.mark.parametrize(
    "added",
    [
        b"Subject: Your account is suspended\r\n",
        b"From: Bank <security@bank.example>\r\n",
        b"To: someone-else@example.org\r\n",
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    ],
)
def test_a_header_added_in_transit_breaks_the_signature(
    project: Path, dkim_key: tuple[Path, rsa.RSAPrivateKey], added: bytes
) -> None:
    key_path, key = dkim_key
    data = template(dkim_config(project, key_path)).fill(Recipient("ada@example.org", "Ada", 12, "34"))
    assert verifies(data, key)
    head, _, body = data.partition(b"\r\n\r\n")
    assert not verifies(head + b"\r\n" + added.rstrip(b"\r\n") + b"\r\n\r\n" + body, key)  # appended
    signature_end = data.index(b"\r\nFrom: ") + 2
    assert not verifies(data[:signature_end] + added + data[signature_end:], key)  # before the others


def test_display_names_are_quoted_and_parse_without_defects(project: Path) -> None:
    config = with_settings(project, 'reply_to = "\\"Desk, Antiwar.com\\" <desk@example.org>"')
    config = load_config(
        rewrite(config.path, 'from = "Test Weekly <news@example.org>"', 'from = "Antiwar.com <news@example.org>"')
    )
    config = load_config(rewrite(config.path, 'name = "Test Weekly"', 'name = "Antiwar.com Weekly"'))
    data = template(config).fill(Recipient("ada@example.org", 'Ada "The Countess" Lovelace, Jr.', 1, "1"))

    head = data.partition(b"\r\n\r\n")[0].decode()
    assert '\r\nFrom: "Antiwar.com" <news@example.org>\r\n' in "\r\n" + head
    assert '\r\nList-Id: "Antiwar.com Weekly" <weekly.example.org>\r\n' in head
    assert '\r\nReply-To: "Desk, Antiwar.com" <desk@example.org>\r\n' in head
    assert '\r\nTo: "Ada \\"The Countess\\" Lovelace, Jr." <ada@example.org>\r\n' in head
    message = parse(data)
    for name in ("From", "To", "Reply-To", "List-Id"):
        assert message[name].defects == (), (name, message[name].defects)
    assert message["From"].addresses[0].display_name == "Antiwar.com"
    assert message["To"].addresses[0].display_name == 'Ada "The Countess" Lovelace, Jr.'
    assert message["List-Archive"] == "<https://news.example.org/archive/weekly>"


def rewrite(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_every_header_is_folded_and_a_long_name_still_verifies(
    project: Path, dkim_key: tuple[Path, rsa.RSAPrivateKey]
) -> None:
    key_path, key = dkim_key
    config = dkim_config(project, key_path, 'unsubscribe_mailto = "leave@example.org"')
    name = "Жозефина Ḿaría-José Ünterstraßenbahnführerin " * 7  # 300+ characters, not ASCII
    data = template(config, subject="Café weekly: a long subject " + "word " * 30).fill(
        Recipient("ada@example.org", name + "\x00\x07\x1b[31m", 12, "34")
    )

    assert all(folded(line) for line in head_lines(data))
    assert verifies(data, key)
    assert parse(data)["To"].defects == ()
    # RFC 2047 6.2: the space between two encoded-words is no part of the name (the email
    # package's new parser keeps it, so the classic decoder reads the header here).
    raw_to = message_from_bytes(data)["To"]
    assert str(make_header(decode_header(raw_to))) == " ".join(name.split()) + " [31m <ada@example.org>"
    assert not any(byte in data.partition(b"\r\n\r\n")[0] for byte in (b"\x00", b"\x07", b"\x1b"))


def test_a_long_ascii_name_is_quoted_and_folded_at_its_spaces(config: Config) -> None:
    name = "Dr. Augusta Ada King, Countess of Lovelace " * 6
    data = template(config).fill(Recipient("ada@example.org", name, 1, "1"))

    to_lines = [line for line in head_lines(data) if line.startswith(b"To: ")]
    assert to_lines[0].startswith(b'To: "Dr. Augusta Ada King,')
    assert all(folded(line) for line in head_lines(data))
    message = parse(data)
    assert message["To"].defects == ()
    assert message["To"].addresses[0].display_name == " ".join(name.split())


def test_a_missing_or_bad_dkim_key_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[dkim\].private_key: cannot read .*nowhere.pem \(No such file"):
        load_signer(dkim_config(project, tmp_path / "nowhere.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="is not an unencrypted PEM private key"):
        load_signer(dkim_config(project, garbage))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=120))
def test_quoted_printable_of_a_value_is_what_the_email_package_would_write(text: str) -> None:
    from email import quoprimime

    from newsletter.message import _QP_LINE, CRLF, qp_chunk

    expected = quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), maxlinelen=_QP_LINE, eol=CRLF)
    if text and not text.endswith("\n"):
        expected += "=" + CRLF
    assert qp_chunk(text) == expected.encode("ascii")
