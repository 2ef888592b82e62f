"""Listings as a person sees them on a terminal (a real pseudo-terminal) and as a script
reads them from a pipe: whole values, never cut."""

from __future__ import annotations

import importlib.metadata
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from newsletter.cli import app

LONG_ADDRESS = "a-rather-long-address.with.several.parts@newsroom.example-organisation.org"
LONG_NAME = "Maximilian Alexander von Hohenberg-Wittelsbach"


@pytest.fixture
def listed(project: Path) -> Path:
    runner = CliRunner()
    config = ["--config", str(project / "config.toml")]
    for args in (
        ["lists", "add", "weekly"],
        ["subscribers", "add", LONG_ADDRESS, "--list", "weekly", "--name", LONG_NAME],
        ["subscribers", "add", "b@example.org", "--list", "weekly"],
    ):
        assert runner.invoke(app, [*config, *args]).exit_code == 0
    return project / "config.toml"


def newsletter_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from newsletter.cli import main; main()", "--config", str(config), *args]


def on_terminal(command: list[str], columns: int) -> str:
    """What the command prints on a terminal `columns` wide (colours off)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "NO_COLOR": "1", "TERM": "xterm"}
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=30) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_a_terminal_gets_a_table_with_the_address_whole_and_nothing_cut(listed: Path) -> None:
    shown = on_terminal(newsletter_command(listed, "subscribers", "ls"), columns=130)

    assert shown.startswith("┏")
    assert f"│ {LONG_ADDRESS} │" in shown
    assert "…" not in shown
    name_column = "".join(
        line.split("│")[2].strip() for line in shown.splitlines() if line.startswith("│")
    )
    assert "".join(name_column.split()) == "".join(LONG_NAME.split())  # wrapped over lines, not cut


def test_a_terminal_too_narrow_for_the_address_gets_whole_values(listed: Path) -> None:
    shown = on_terminal(newsletter_command(listed, "subscribers", "ls"), columns=60)

    assert shown.splitlines()[:2] == [
        "Email\tName\tStatus\tLists\tBounces\tCreated",
        f"{LONG_ADDRESS}\t{LONG_NAME}\tconfirmed\tweekly\t0\t" + shown.splitlines()[1].rsplit("\t", 1)[1],
    ]


def test_a_pipe_gets_tab_separated_whole_values_with_a_header(listed: Path) -> None:
    piped = subprocess.run(
        newsletter_command(listed, "subscribers", "ls"),
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "40"}, check=True,
    )

    rows = [line.split("\t") for line in piped.stdout.splitlines()]
    assert [row[:4] for row in rows] == [
        ["Email", "Name", "Status", "Lists"],
        [LONG_ADDRESS, LONG_NAME, "confirmed", "weekly"],
        ["b@example.org", "", "confirmed", "weekly"],
    ]
    assert piped.stderr == ""


def every_command_path() -> list[list[str]]:
    def walk(command: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


def test_help_shows_flags_bare_on_every_command() -> None:
    runner = CliRunner()
    flags_seen = 0
    for path in every_command_path():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.stdout, (path, result.stdout)
        assert re.search(r"--help +Show this message and exit\.", result.stdout), path
        flags_seen += len(re.findall(r"--(?:json|yes|dry-run|text|open|confirmed|double-opt-in) ", result.stdout))
    assert flags_seen >= 8


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])

    assert (result.exit_code, result.stdout) == (0, f"newsletter {importlib.metadata.version('newsletter')}\n")
    assert re.fullmatch(r"newsletter \d+\.\d+\.\d+\n", result.stdout)
