"""Shared fixtures: a throwaway project (config, articles, database) per test.

A test module that sets `BACKENDS = ("sqlite", "postgres")` runs each of its tests that
use a database (the `project`, `config` or `database_url` fixtures) against both stores:
a SQLite file, and a fresh database on the session's PostgreSQL cluster
(tests/postgres_server.py).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import Config, load_config

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent

pytest_plugins: list[str] = ["web_server", "smtp_server", "postgres_server", "imap_server", "postfix_server"]


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
url = "{{database_url}}"

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", None)
        if backends:
            metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite", or "postgres" in a module whose BACKENDS name both."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty store for this test: a SQLite file, or a new PostgreSQL database."""
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_database"))
    return f"sqlite:///{tmp_path / 'subscribers' / 'newsletter.db'}"


@pytest.fixture
def base_config(database_url: str) -> str:
    return BASE_CONFIG.replace("{database_url}", database_url)


@pytest.fixture
def project(tmp_path: Path, base_config: str) -> Path:
    """A project folder with config.toml, one example article and an empty templates dir."""
    (tmp_path / "articles").mkdir()
    (tmp_path / "templates").mkdir()
    shutil.copy(FIXTURES / "zelensky-nato-shoot-down.txt", tmp_path / "articles")
    (tmp_path / "config.toml").write_text(base_config, encoding="utf-8")
    return tmp_path


@pytest.fixture
def write_config(project: Path, base_config: str) -> Callable[[str], Path]:
    """Append TOML to the project's config (e.g. an [smtp] table) and return its path."""

    def write(extra: str) -> Path:
        path = project / "config.toml"
        path.write_text(base_config + "\n" + textwrap.dedent(extra), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project / "config.toml")
