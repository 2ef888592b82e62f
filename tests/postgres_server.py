"""Pytest plugin: a throw-away PostgreSQL cluster, and a database per test that asks for one.

The cluster is made by initdb and started by pg_ctl (Debian's `postgresql` package) in a
temporary folder, on a free loopback port, once per session, and removed after. As root
(CI), the server runs as the `postgres` user, which initdb demands.

Without the binaries the PostgreSQL tests are skipped with one line saying what to
install, except where NEWSLETTER_REQUIRE_POSTGRES is set (.ci/run sets it): there a
missing server is an error, so CI can never pass by skipping them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ports import free_port

REQUIRE_ENV = "NEWSLETTER_REQUIRE_POSTGRES"
_MISSING = (
    "PostgreSQL tests skipped: initdb and pg_ctl not found "
    "(install Debian's `postgresql` package; .ci/run does)"
)
_numbers = itertools.count(1)


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PostgresCluster:
    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        """`durable`: fsync on, as in production (benchmarks); tests run without it."""
        self.bin_dir = bin_dir
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "newsletter"
        self._demote: Callable[[], None] | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)

            def demote() -> None:
                os.setgid(account.pw_gid)
                os.setuid(account.pw_uid)

            self._demote = demote

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True, text=True, preexec_fn=self._demote, cwd=self.folder, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(_numbers)}"
        self.admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = _binaries()
    if bin_dir is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but PostgreSQL is not installed", pytrace=False)
        pytest.skip(_MISSING)
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)
