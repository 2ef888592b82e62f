"""A test project's editorial desk: articles with chosen publication times, the weekly
digest's settings, and the `newsletter` CLI run in-process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from newsletter.cli import app

_runner = CliRunner()


def cli(project: Path, *args: str, input: str | None = None) -> Result:
    return _runner.invoke(app, ["--config", str(project / "config.toml"), *args], input=input)


def ok(project: Path, *args: str, input: str | None = None) -> Result:
    result = cli(project, *args, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def one_error_line(result: Result) -> str:
    """A user's mistake: exit 1, nothing on stdout, one `Error: ...` line on stderr."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def draft(project: Path, *args: str, input: str | None = None) -> dict[str, Any]:
    """`draft weekly --json` (or `edit weekly ARGS --json` when args are given)."""
    command = ("edit", "weekly", *args) if args else ("draft", "weekly")
    return json.loads(ok(project, *command, "--json", input=input).stdout)  # type: ignore[no-any-return]


def clear_articles(project: Path) -> None:
    for path in (project / "articles").iterdir():
        path.unlink()


def write_article(project: Path, name: str, title: str, hours_ago: float, body: str = "") -> str:
    """A Markdown article published `hours_ago`; returns its file name."""
    published = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    path = project / "articles" / f"{name}.md"
    path.write_text(
        f'---\ntitle: "{title}"\nauthor: Dave DeCamp\ndate: {published.isoformat()}\n---\n\n'
        f"{body or 'The story of ' + title + '.'}\n",
        encoding="utf-8",
    )
    return path.name


def set_digest(project: Path, **settings: object) -> None:
    """Set keys of [digests.weekly] (TOML values written with json.dumps)."""
    path = project / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("[digests.weekly]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    kept = [line for line in lines[start:end] if line.split("=")[0].strip() not in settings]
    new = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines[:start] + new + kept + lines[end:]) + "\n", encoding="utf-8")


def titles(entry: dict[str, Any]) -> list[str]:
    return [article["title"] for article in entry["articles"]]


def ids(entry: dict[str, Any]) -> dict[str, str]:
    """Title -> id of every article the draft carries or excludes."""
    return {a["title"]: a["id"] for a in entry["articles"] + entry["excluded"]}
