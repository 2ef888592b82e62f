from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import load_config
from newsletter.errors import ConfigError, SecretError

REPO = Path(__file__).parent.parent


def test_the_shipped_config_loads_with_paths_relative_to_it() -> None:
    config = load_config(REPO / "config.toml")
    assert config.newsletter.from_ == "Antiwar.com <news@example.org>"
    assert config.delivery.outbox == REPO / "outbox"
    assert config.database.url == f"sqlite:///{REPO / 'subscribers' / 'newsletter.db'}"
    assert [s.name for s in config.sources] == ["desk", "news"]
    assert config.sources[0].path == REPO / "articles"
    assert config.sources[1].url == str(REPO / "articles/feeds/sample.xml")
    assert config.digest("weekly").list == "weekly"
    assert config.digest("weekly").name == "weekly"
    assert config.authors["Dave DeCamp"].bio.startswith("Dave DeCamp is the news editor")


def test_config_is_frozen(config) -> None:
    with pytest.raises(AttributeError):
        config.newsletter.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[smtp]\nhots = 'x'\n", "[smtp].hots: unknown key; expected one of host, port,"),
        ("[smtp]\nport = '25'\n", "[smtp].port: must be a whole number, not '25'"),
        ("[smtp]\nsecurity = 'ssl'\n", "[smtp].security: must be one of 'starttls', 'tls', 'none', not 'ssl'"),
        ("[digests.daily]\nsubject = 'x'\n", "[digests.daily].list: missing required key"),
        ("[bogus]\n", "bogus: unknown key; expected one of"),
        ("[[sources]]\nname = 'f'\nkind = 'feed'\n", "[[sources]] #2 (f): a feed source needs url"),
        ("[delivery.x]\n", "[delivery].x: unknown key"),
        ("[web]\ntrusted_proxies = ['10.0.0.1', 'proxy.lan']\n",
         "[web].trusted_proxies: 'proxy.lan' is not an IP address or CIDR network (e.g. \"10.0.0.1\" or \"10.0.0.0/8\")"),
        ("[web]\ntrusted_proxies = '10.0.0.1'\n", "[web].trusted_proxies: must be an array of strings"),
        (
            '[authors."Eve"]\nurl = "javascript:alert(1)"\n',
            "[authors.\"Eve\"].url: 'javascript:alert(1)' is not an absolute http, https or mailto URL",
        ),
        ("[bounces]\nsoft_limit = 0\n", "[bounces].soft_limit: must be at least 1"),
        ("[bounces]\nhard = 2\n", "[bounces].hard: unknown key; expected one of hard_limit, soft_limit, soft_days"),
        ("[inbound]\nhost = 'imap.example.org'\n", "[inbound].username: missing required key"),
        ("[inbound]\nhost = 'h'\nusername = 'u'\nport = 0\n", "[inbound].port: must be a port from 1 to 65535"),
        ("[inbound]\nhost = 'h'\nusername = 'u'\npoll_minutes = 0\n", "[inbound].poll_minutes: must be a positive number"),
        ("[inbound]\nhost = 'h'\nusername = 'u'\nprocessed_folder = 'INBOX'\n",
         "[inbound].processed_folder: must differ from folder ('INBOX')"),
    ],
)
def test_bad_config_names_the_key_and_the_file(
    write_config: Callable[[str], Path], extra: str, message: str
) -> None:
    path = write_config(extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('bounce_address = "bounces"', "[delivery].bounce_address: 'bounces' is not an email address"),
        ('bounce_address = "b+x@example.org"', '[delivery].bounce_address: \'b+x@example.org\' must not hold "+"'),
        ('bounce_address = "bünce@example.org"', "[delivery].bounce_address: 'bünce@example.org' must be ASCII"),
        ('feedback_id = "a:b"', "[delivery].feedback_id: 'a:b': use 1 to 64 letters, digits, dots, dashes or underscores"),
    ],
)
def test_bad_bounce_settings_are_one_line(project: Path, setting: str, message: str) -> None:
    path = project / "config.toml"
    path.write_text(path.read_text().replace("[delivery]\n", f"[delivery]\n{setting}\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)


def test_bounce_settings_have_mailmans_defaults(config) -> None:
    assert (config.bounces.hard_limit, config.bounces.soft_limit, config.bounces.soft_days) == (1, 5, 30)
    assert config.delivery.bounce_address is None and config.inbound is None


def test_bad_timezone_is_one_line(project: Path) -> None:
    path = project / "config.toml"
    path.write_text(path.read_text().replace('timezone = "UTC"', 'timezone = "Mars/Olympus"'))
    with pytest.raises(ConfigError, match=r"\[newsletter\].timezone: unknown time zone 'Mars/Olympus'"):
        load_config(path)


def test_missing_config_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found: pass --config PATH or set \\$NEWSLETTER_CONFIG"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[newsletter\nname = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_cli_reports_a_bad_config_in_one_line_and_exit_1(write_config: Callable[[str], Path]) -> None:
    path = write_config("[smtp]\nhots = 'x'\n")
    result = CliRunner().invoke(app, ["--config", str(path), "articles", "weekly"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: {path}: [smtp].hots: unknown key")
    assert "Traceback" not in result.output


def test_config_from_environment_variable(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.parent)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(project / "config.toml"))
    assert load_config().newsletter.name == "Test Weekly"


def test_missing_secret_names_the_variable(config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    with pytest.raises(SecretError, match="export NEWSLETTER_SECRET="):
        config.token_secret


def test_unknown_digest_lists_the_configured_ones(config) -> None:
    with pytest.raises(ConfigError, match=r"no digest named 'daily'.*configured: weekly"):
        config.digest("daily")


def with_newsletter_key(project: Path, key: str, value: str, transport: str) -> Path:
    path = project / "config.toml"
    lines = [
        f"{key} = {value}" if line.startswith(f"{key} = ") else line
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    text = "\n".join(lines) + "\n"
    path.write_text(text.replace('transport = "outbox"', f'transport = "{transport}"'), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ('"http://127.0.0.1:8000"', "is not an https URL"),
        ('"news.example.org"', "is not an https URL"),
        ('"http://news.example.org"', "is not an https URL"),
        ('"https://"', "names no host"),
        ('"https://localhost:8000"', "is not on a public host (use its public domain name, with a dot)"),
        ('"https://news.localhost"', "is not on a public host (use its public domain name, with a dot)"),
        ('"https://newsbox"', "is not on a public host (use its public domain name, with a dot)"),
        ('"https://127.0.0.1"', "is not on a public host (a loopback or private address)"),
        ('"https://192.168.1.20"', "is not on a public host (a loopback or private address)"),
        ('"https://169.254.0.9"', "is not on a public host (a loopback or private address)"),
        ('"https://[::1]:8443"', "is not on a public host (a loopback or private address)"),
        ('"https://[fe80::1]"', "is not on a public host (a loopback or private address)"),
        ('"https://news.example.org/?x=1"', "must not carry a user name, query or fragment"),
        ('"https://news.example.org:99999"', "is not a URL"),
    ],
)
def test_smtp_needs_an_https_base_url_on_a_public_host(project: Path, base_url: str, problem: str) -> None:
    path = with_newsletter_key(project, "base_url", base_url, "smtp")

    with pytest.raises(ConfigError) as refused:
        load_config(path)

    assert str(refused.value) == (
        f"{path}: [newsletter].base_url: {base_url.strip(chr(34))!r} {problem}; mail sent over SMTP "
        "needs the public https address `newsletter serve` answers on behind your proxy, e.g. "
        '"https://news.example.org" (Gmail and RFC 8058 one-click unsubscribe require https)'
    )


@pytest.mark.parametrize(
    "base_url", ['"https://news.example.org"', '"https://example.org:8443/newsletter/"', '"https://93.184.216.34"']
)
def test_smtp_accepts_a_public_https_base_url(project: Path, base_url: str) -> None:
    assert load_config(with_newsletter_key(project, "base_url", base_url, "smtp")).delivery.transport == "smtp"


def test_trusted_proxies_take_addresses_and_networks(write_config: Callable[[str], Path]) -> None:
    config = load_config(write_config("[web]\ntrusted_proxies = ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32']\n"))
    assert [config.web.proxies.trusts(ip) for ip in ("127.0.0.1", "10.9.8.7", "2001:db8::1", "127.0.0.2")] == [
        True, True, True, False
    ]
    assert not load_config(write_config("")).web.proxies.trusts("127.0.0.1")


def test_the_outbox_may_keep_the_loopback_base_url(project: Path) -> None:
    path = with_newsletter_key(project, "base_url", '"http://127.0.0.1:8000"', "outbox")
    assert load_config(path).newsletter.base_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("from_", "problem"),
    [
        ('"Antiwar.com news@example"',
         "'Antiwar.com news@example' is neither an address nor a name with the address in angle brackets"),
        ('"Antiwar.com <news@example>"',
         "invalid address 'news@example': The part after the @-sign is not valid. It should have a period;"),
        ('"news@localhost"',
         "invalid address 'news@localhost': The part after the @-sign is not valid. It should have a period;"),
        ('"Antiwar.com <news@@example.org>"', "invalid address 'news@@example.org'"),
        ('"Antiwar.com"', "invalid address 'Antiwar.com': An email address must have an @-sign;"),
    ],
)
def test_an_unparseable_from_is_refused_at_load(project: Path, from_: str, problem: str) -> None:
    path = with_newsletter_key(project, "from", from_, "outbox")

    with pytest.raises(ConfigError) as refused:
        load_config(path)

    message = str(refused.value)
    assert message.startswith(f"{path}: [newsletter].from: {problem}")
    assert message.endswith(
        "; write an address, or a name and the address in angle brackets: \"Antiwar.com <news@example.org>\""
    )


@pytest.mark.parametrize("from_", ['"news@example.org"', '"Antiwar.com <news@example.org>"', '"\\"News, Weekly\\" <n@example.org>"'])
def test_well_formed_from_values_load(project: Path, from_: str) -> None:
    load_config(with_newsletter_key(project, "from", from_, "outbox"))


def test_a_bad_base_url_over_smtp_is_one_error_line_in_the_cli(project: Path) -> None:
    path = with_newsletter_key(project, "base_url", '"http://127.0.0.1:8000"', "smtp")

    result = CliRunner().invoke(app, ["--config", str(path), "articles"])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}: [newsletter].base_url: 'http://127.0.0.1:8000' is not an https URL")
    assert result.stderr.count("\n") == 1
