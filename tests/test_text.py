"""The text part: article structure as plain text, wrapped, no markup syntax."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from newsletter.models import Article, Author, IssueContent
from newsletter.personal import personal_values
from newsletter.render import render_issue
from newsletter.sources.markdown import article_html
from newsletter.text import html_to_text, wrap

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
LONG_URL = "https://www.example.org/reports/2026/11/pentagon-audit-results-" + "x" * 60

ARTICLE_MARKDOWN = f"""\
The Pentagon failed its **seventh consecutive audit**, and lawmakers called for
[greater oversight]({LONG_URL}) of a budget that keeps growing year after year after year.

> "We are making progress, but we have a long way to go," a senior defense official
> told reporters.

Three findings:

1. The department cannot account for half its assets.
2. Inventory systems do not talk to each other, and some of them date from the 1970s and still run.
3. See [the report]({LONG_URL}) again.

- a bullet with `code`
- <a href="mailto:desk@example.org">desk@example.org</a>

Last paragraph.
"""


def as_text(markdown: str) -> str:
    return html_to_text(article_html(markdown))


def test_structure_without_markdown_syntax() -> None:
    text = as_text(ARTICLE_MARKDOWN)
    assert "seventh consecutive audit, and" in text  # no stray space before the comma
    for syntax in ("**", "](", "][", "\n> ", "`", "<a", "&quot;"):
        assert syntax not in text
    assert "\n\n\n" not in text
    assert '\n    "We are making progress, but we have a long way to go," a senior defense\n    official told' in text
    assert "\n1. The department cannot account for half its assets.\n2. Inventory" in text
    assert "\n   the 1970s and still run." in text  # a hanging indent under "2. "
    assert "- a bullet with code\n- desk@example.org\n" in text
    # Both links to the same address share one number, listed once at the end.
    assert "greater oversight [1]" in text and "See the report [1] again." in text
    assert text.endswith(f"Last paragraph.\n\n[1] {LONG_URL}")


def test_lines_wrap_at_76_and_no_url_is_ever_broken() -> None:
    text = as_text(ARTICLE_MARKDOWN + f"\nA bare link {LONG_URL} in a sentence that goes on for a while longer.\n")
    for line in text.splitlines():
        assert len(line) <= 76 or LONG_URL in line
    assert text.count(LONG_URL) == 2  # the reference, and the bare one kept whole


def test_tables_preformatted_text_and_breaks() -> None:
    text = html_to_text(
        "<table><tr><th>Year</th><th>Result</th></tr><tr><td>2025</td><td>failed</td></tr></table>"
        "<pre>  keep   this\n  as is</pre><p>line one<br>line two</p><hr><h2>Heading</h2>"
    )
    assert text == (
        "Year | Result\n2025 | failed\n\n      keep   this\n      as is\n\nline one\nline two\n\n* * *\n\nHeading"
    )


def test_wrap_keeps_words_whole_with_hanging_indents() -> None:
    assert wrap("one two three four", width=9, indent="- ", hanging="  ") == "- one two\n  three\n  four"
    assert wrap("x " + "y" * 20, width=10) == "x\n" + "y" * 20


def issue(count: int) -> IssueContent:
    articles = tuple(
        Article(
            id=f"a{n}", title=f"Story {n}", body_html="<p>Body.</p>", published=NOW, source="desk",
            url=f"https://example.org/{n}", excerpt="Excerpt.", authors=(Author("Writer"),),
        )
        for n in range(count)
    )
    return IssueContent("weekly", 4, "Subject", articles, "Test Weekly", NOW)


@pytest.mark.parametrize(
    ("count", "name", "greeting"),
    [
        (1, "Ada Lovelace", "Hello Ada, here is this week's story."),
        (3, "Ada Lovelace", "Hello Ada, here are this week's 3 stories."),
        (3, "", "Hello, here are this week's 3 stories."),
    ],
)
def test_greeting_by_first_name_or_none_and_plurals(config, count: int, name: str, greeting: str) -> None:
    rendered = render_issue(config, config.digest("weekly"), issue(count))
    values = personal_values("https://x.test/u/t", name, "ada@example.org")
    html = rendered.markers.template(rendered.html, escape_html=True).fill(values)
    text = rendered.markers.template(rendered.text, escape_html=False).fill(values)
    assert greeting.replace("'", "&#39;") in html or greeting in html
    assert greeting in text


def test_the_text_part_links_the_archive_and_leaves_out_bioless_footers(config) -> None:
    text = render_issue(config, config.digest("weekly"), issue(2)).text
    assert "Read it on the web: https://news.example.org/archive/weekly/4" in text
    assert "Past issues: https://news.example.org/archive/weekly\n" in text
    assert "-- Writer" not in text and "By Writer - November 25, 2026" in text
    assert not re.search(r"^.{79,}$", text, re.M)
