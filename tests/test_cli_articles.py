from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from newsletter.cli import app

runner = CliRunner()


def invoke(project: Path, *args: str):
    return runner.invoke(app, ["--config", str(project / "config.toml"), *args])


def test_articles_json_has_the_documented_keys(project: Path) -> None:
    result = invoke(project, "articles", "weekly", "--json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert list(entry) == ["id", "title", "subtitle", "url", "authors", "published", "source", "excerpt"]
    assert entry["authors"] == [
        {"name": "Dave DeCamp", "bio": "Dave DeCamp is the news editor of Antiwar.com."}
    ]
    assert entry["published"].endswith("+00:00")
    assert entry["source"] == "desk"


def test_articles_table_lists_title_and_author(project: Path) -> None:
    result = invoke(project, "articles")
    assert result.exit_code == 0
    assert result.stderr == "weekly: Test Weekly #1\n"  # not a terminal: the title apart
    header, row = result.stdout.splitlines()
    assert header == "Published\tTitle\tAuthors\tSource"
    assert row.split("\t")[1:] == ["Zelensky Says NATO Should Shoot Down Russian Missiles Over Ukraine", "Dave DeCamp", "desk"]


def test_articles_says_so_when_nothing_is_new(project: Path) -> None:
    for path in (project / "articles").iterdir():
        path.unlink()
    result = invoke(project, "articles", "weekly")
    assert result.exit_code == 0
    assert result.stdout == "No new articles for weekly in the last 7 days.\n"


def test_preview_writes_the_html_with_neutral_personal_values(project: Path) -> None:
    target = project / "preview.html"
    result = invoke(project, "preview", "weekly", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote {target} (1 article, subject: Test Weekly #1)\n"
    html = target.read_text()
    assert html.startswith("<!doctype html>")
    assert "%%NL_" not in html
    assert "Hello, here is this week's story." in html
    assert "Dave DeCamp is the news editor of Antiwar.com." in html


def test_preview_text_prints_the_plain_part(project: Path) -> None:
    result = invoke(project, "preview", "weekly", "--text")
    assert result.exit_code == 0
    assert result.stdout.startswith("Test Weekly\n")
    assert "ZELENSKY SAYS NATO SHOULD SHOOT DOWN RUSSIAN MISSILES OVER UKRAINE" in result.stdout
    assert "-- Dave DeCamp" in result.stdout
    assert "%%NL_" not in result.stdout


def test_a_bad_article_file_warns_and_the_rest_go_on(project: Path) -> None:
    (project / "articles" / "broken.md").write_text("no front matter\n")
    result = invoke(project, "articles", "weekly", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 1
    assert result.stderr == (
        f"Warning: skipped {project / 'articles' / 'broken.md'}: no front matter; "
        "start the file with --- (YAML) or +++ (TOML)\n"
    )


def test_a_broken_template_is_one_line_exit_1_and_no_file(project: Path) -> None:
    (project / "templates" / "digest.mjml.j2").write_text("<mjml>\n{% for %}\n")
    target = project / "preview.html"
    result = invoke(project, "preview", "weekly", "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: template ")
    assert "digest.mjml.j2, line 2: " in result.stderr
    assert result.stderr.count("\n") == 1
    assert not target.exists()


def test_unknown_digest_is_one_line(project: Path) -> None:
    result = invoke(project, "preview", "daily")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no digest named 'daily' in {project / 'config.toml'} (configured: weekly); "
        "add a [digests.daily] table or pick one of those\n"
    )


def test_preview_text_with_output_writes_the_text_part_there(project: Path) -> None:
    target = project / "preview.txt"

    result = invoke(project, "preview", "weekly", "--text", "-o", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote the text part to {target} (1 article, subject: Test Weekly #1)\n"
    text = target.read_text(encoding="utf-8")
    assert text.startswith("Test Weekly\n") and "-- Dave DeCamp" in text and "%%NL_" not in text
    assert not (project / "preview.html").exists()


def test_preview_into_a_missing_folder_is_one_error_line(project: Path) -> None:
    for extra in ([], ["--text"]):
        target = project / "missing" / "dir" / "x.html"
        result = invoke(project, "preview", "weekly", *extra, "-o", str(target))

        assert (result.exit_code, result.stdout) == (1, ""), result.output
        assert result.stderr == f"Error: cannot write {target}: No such file or directory\n"


def test_serve_on_a_port_out_of_range_is_one_error_line(project: Path) -> None:
    for port in ("99999", "0", "-1"):
        result = invoke(project, "serve", "--port", port)

        assert (result.exit_code, result.stdout) == (1, ""), result.output
        assert result.stderr == f"Error: --port {port}: use a port from 1 to 65535\n"
