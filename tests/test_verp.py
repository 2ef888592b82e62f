"""VERP tokens and addresses, the per-recipient envelope sender, and Feedback-ID under DKIM."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from newsletter.config import load_config
from newsletter.personal import PersonalMarkers
from newsletter.message import MessageTemplate, Recipient, feedback_id
from newsletter.signing import dns_record, load_signer
from newsletter.tokens import BadToken, make_verp_token, read_verp_token
from newsletter.verp import verp_address, verp_token_of

SECRET = b"verp-secret"


@given(st.integers(min_value=1, max_value=2**40), st.integers(min_value=1, max_value=2**40))
def test_a_token_names_its_delivery_in_any_case_and_stays_short(issue_id: int, subscriber_id: int) -> None:
    token = make_verp_token(SECRET, issue_id, subscriber_id)
    assert re.fullmatch(r"[0-9a-z-]+", token) and len(token) <= 36
    claims = read_verp_token(SECRET, token.upper())  # an MTA that folds case keeps it
    assert (claims.issue_id, claims.subscriber_id) == (issue_id, subscriber_id)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("-", "-1", 1),  # another issue, same MAC
        lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # MAC changed
        lambda t: t[:-3],  # truncated
        lambda t: "",
        lambda t: t + "-x",
    ],
)
def test_a_forged_or_damaged_token_names_nothing(tamper) -> None:  # type: ignore[no-untyped-def]
    token = make_verp_token(SECRET, 12, 34)
    with pytest.raises(BadToken):
        read_verp_token(SECRET, tamper(token))
    with pytest.raises(BadToken):
        read_verp_token(b"another secret", token)


def test_the_token_sits_after_a_plus_and_is_found_again() -> None:
    address = verp_address("bounces@example.org", make_verp_token(SECRET, 5, 6))
    local, _, domain = address.partition("@")
    assert domain == "example.org" and local.startswith("bounces+")
    assert verp_token_of("bounces@example.org", address) == local.removeprefix("bounces+")
    assert verp_token_of("bounces@example.org", f"<{address.upper()}>") == local.removeprefix("bounces+").upper()
    assert verp_token_of("bounces@example.org", "bounces@example.org") is None
    assert verp_token_of("bounces@example.org", address.replace("example.org", "example.net")) is None
    assert verp_token_of("bounces@example.org", "other+x@example.org") is None


@pytest.fixture
def rsa_key(tmp_path: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return path, key


def test_each_recipient_gets_its_own_envelope_sender_and_the_feedback_id_is_signed(
    project: Path, rsa_key: tuple[Path, rsa.RSAPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET.decode())
    key_path, key = rsa_key
    path = project / "config.toml"
    path.write_text(
        path.read_text().replace("[delivery]\n", '[delivery]\nbounce_address = "bounces@example.org"\nfeedback_id = "nl7"\n')
        + f'\n[dkim]\ndomain = "example.org"\nselector = "news"\nprivate_key = "{key_path}"\n'
    )
    config = load_config(path)
    template = MessageTemplate(
        config, list_id=2, list_slug="weekly", digest="weekly", label="weekly-3.20260101080000", subject="#3",
        html_part="<p>x</p>", text_part="x", markers=PersonalMarkers.new(), signer=load_signer(config),
        feedback_id=feedback_id(config, 3, "weekly", "weekly"),
    )
    senders = {template.envelope(9, subscriber)[0] for subscriber in (1, 2, 3)}
    assert len(senders) == 3 and all(s.startswith("bounces+") and s.endswith("@example.org") for s in senders)
    sender, envelope_id = template.envelope(9, 2)
    assert verp_token_of("bounces@example.org", sender) == envelope_id
    assert read_verp_token(SECRET, envelope_id) == read_verp_token(SECRET, make_verp_token(SECRET, 9, 2))
    data = template.fill(Recipient("ada@example.org", "Ada", 2, "44"))
    assert b"\r\nFeedback-ID: 3:weekly:weekly:nl7\r\n" in data
    signed = re.sub(rb"\s", b"", re.search(rb"h=([^;]+);", data).group(1)).decode().split(":")  # type: ignore[union-attr]
    assert "feedback-id" in signed
    record = dns_record(key).encode()
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(data.replace(b"3:weekly:weekly:nl7", b"3:weekly:weekly:nl8"), dnsfunc=lambda name, timeout=5: record)


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET.decode())
    template = MessageTemplate(config, list_id=2, list_slug="weekly", digest="weekly", label="weekly-1.20260101080000",
                               subject="#1", html_part="x", text_part="x", markers=PersonalMarkers.new())
    sender, envelope_id = template.envelope(1, 2)
    assert (sender, envelope_id) == ("news@example.org", make_verp_token(SECRET, 1, 2))
    assert b"Feedback-ID" not in template.fill(Recipient("ada@example.org", "", 2, "1"))
