"""Shared fixtures: a throwaway project (config, articles, database) per test."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import Config, load_config

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent

pytest_plugins: list[str] = ["web_server", "smtp_server"]


# Public and https, as the SMTP transport requires; web tests point it at their server.
BASE_URL = "https://news.example.org"

BASE_CONFIG = f"""\
[newsletter]
name = "Test Weekly"
from = "Test Weekly <news@example.org>"
base_url = "{BASE_URL}"
postal_address = "1 Test Street, Testville"
timezone = "UTC"
templates = "templates"

[database]
url = "sqlite:///subscribers/newsletter.db"

[delivery]
transport = "outbox"
outbox = "outbox"

[[sources]]
name = "desk"
kind = "folder"
path = "articles"

[authors."Dave DeCamp"]
bio = "Dave DeCamp is the news editor of Antiwar.com."

[digests.weekly]
list = "weekly"
subject = "{{{{ newsletter.name }}}} #{{{{ number }}}}"
lookback_days = 7
max_articles = 10
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with config.toml, one example article and an empty templates dir."""
    (tmp_path / "articles").mkdir()
    (tmp_path / "templates").mkdir()
    shutil.copy(FIXTURES / "zelensky-nato-shoot-down.txt", tmp_path / "articles")
    (tmp_path / "config.toml").write_text(BASE_CONFIG, encoding="utf-8")
    return tmp_path


@pytest.fixture
def write_config(project: Path) -> Callable[[str], Path]:
    """Append TOML to the project's config (e.g. an [smtp] table) and return its path."""

    def write(extra: str) -> Path:
        path = project / "config.toml"
        path.write_text(BASE_CONFIG + "\n" + textwrap.dedent(extra), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project / "config.toml")
