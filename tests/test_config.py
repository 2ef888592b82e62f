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
        (
            '[authors."Eve"]\nurl = "javascript:alert(1)"\n',
            "[authors.\"Eve\"].url: 'javascript:alert(1)' is not an absolute http, https or mailto URL",
        ),
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
