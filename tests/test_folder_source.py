from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.models import Author
from newsletter.sources.folder import read_article_file, read_folder

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = FIXTURES / "zelensky-nato-shoot-down.txt"


def read(path: Path):
    return read_article_file(path, source="desk", root=path.parent, warn=pytest.fail)


def test_example_article_parses_to_exactly_its_parts() -> None:
    article = read(EXAMPLE)
    assert article.title == "Zelensky Says NATO Should Shoot Down Russian Missiles Over Ukraine"
    assert article.subtitle == "He dismissed the risk of nuclear escalation"
    assert article.authors == (
        Author(
            name="Dave DeCamp",
            bio="Dave DeCamp is the news editor of Antiwar.com, follow him on Twitter @decampdave.",
        ),
    )
    assert "Author:" not in article.body_html
    assert "news editor of Antiwar.com" not in article.body_html
    assert article.body_html.startswith("<p>Ukrainian President Volodymyr Zelensky is asking NATO")
    assert article.body_html.endswith("Zelensky added.</p>")
    assert article.body_html.count("<p>") == 8
    assert article.url is None
    assert article.source == "desk"


def test_published_is_the_file_modification_time(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(EXAMPLE.read_bytes())
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert read(path).published == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)


def test_id_is_stable_across_reads_and_differs_between_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "b.txt").write_bytes(EXAMPLE.read_bytes())
    first = read(tmp_path / "a.txt").id
    assert first == read(tmp_path / "a.txt").id
    assert first != read(tmp_path / "b.txt").id


def test_text_body_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("Title\n\nSub\n\nA <script>alert(1)</script> & more\n\nAuthor: A\n")
    assert read(path).body_html == "<p>A &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>"


def test_several_authors_share_the_bio_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("Title\n\nSub\n\nBody.\n\nAuthor: Ann Lee and Bo Kim\n\nBoth write here.\n")
    assert read(path).authors == (Author("Ann Lee", "Both write here."), Author("Bo Kim", "Both write here."))


def test_text_without_author_line_has_no_authors(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("Title\r\n\r\nSub\r\n\r\nBody one.\r\n\r\nBody two.\r\n")
    article = read(path)
    assert article.authors == ()
    assert article.body_html == "<p>Body one.</p>\n<p>Body two.</p>"


def test_markdown_with_yaml_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text(
        "---\ntitle: Hello\ndeck: A deck\nauthor: Ann Lee\ndate: 2026-11-20\n"
        "url: https://example.org/hello\nbio: Ann writes.\n---\n"
        "First **bold** and [a link](https://example.org).\n\n- one\n- two\n\n<script>x()</script>\n"
    )
    article = read(path)
    assert (article.title, article.subtitle, article.url) == ("Hello", "A deck", "https://example.org/hello")
    assert article.authors == (Author("Ann Lee", "Ann writes."),)
    assert article.published == datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert "<strong>bold</strong>" in article.body_html
    assert '<a href="https://example.org" rel="noopener">a link</a>' in article.body_html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in article.body_html
    assert "script" not in article.body_html


def test_markdown_with_toml_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text(
        '+++\ntitle = "T"\nsubtitle = "S"\nauthors = ["A", "B"]\ndate = 2026-11-20T08:00:00+02:00\n+++\nBody\n'
    )
    article = read(path)
    assert [a.name for a in article.authors] == ["A", "B"]
    assert article.published == datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("short.txt", b"Only a title\n", "expected a title line, a subtitle paragraph and a body"),
        ("latin1.txt", "Caf\xe9\n\nsub\n\nbody\n".encode("latin-1"), "not UTF-8 text"),
        ("nofm.md", b"# Title\n\nBody\n", "no front matter"),
        ("open.md", b"---\ntitle: x\nBody\n", "front matter opened by --- is never closed"),
        ("badyaml.md", b"---\ntitle: [x\n---\nBody\n", "invalid front matter"),
        ("notitle.md", b"---\ndeck: x\n---\nBody\n", "front matter has no title"),
        ("baddate.md", b"---\ntitle: x\ndate: next tuesday\n---\nBody\n", "date 'next tuesday' is not ISO 8601"),
    ],
)
def test_a_bad_file_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / name).write_bytes(content)
    (tmp_path / "good.txt").write_bytes(EXAMPLE.read_bytes())
    warnings: list[str] = []
    articles = read_folder("desk", tmp_path, warnings.append)
    assert [a.title for a in articles] == [read(EXAMPLE).title]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"skipped {tmp_path / name}: {reason}")


def test_other_files_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".draft.txt").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "feeds").mkdir()
    warnings: list[str] = []
    assert read_folder("desk", tmp_path, warnings.append) == []
    assert warnings == []


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="folder .*missing does not exist"):
        read_folder("desk", tmp_path / "missing", print)


def test_only_web_and_mailto_links_come_from_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text(
        '---\ntitle: Hi\nurl: "javascript:alert(document.cookie)"\nauthors:\n'
        '  - name: Eve\n    url: "javascript:alert(1)"\n  - name: Ann\n    url: "mailto:ann@example.org"\n---\nBody\n'
    )
    warnings: list[str] = []
    article = read_article_file(path, source="desk", root=tmp_path, warn=warnings.append)
    assert article.url is None
    assert [(a.name, a.url) for a in article.authors] == [("Eve", None), ("Ann", "mailto:ann@example.org")]
    assert warnings == [
        f"{path}: author url 'javascript:alert(1)' is not an absolute http, https or mailto URL; left it out",
        f"{path}: url 'javascript:alert(document.cookie)' is not an absolute http or https URL; left it out",
    ]


MARKDOWN_BODY = """\
| Year | Audit |
| ---- | ----- |
| 2025 | failed |

```python
print("<b>fenced</b>")
```

> A quote with *emphasis*.

See [the chart](images/chart.png), [about us](/about) and [elsewhere](https://other.example/x).

![Spending chart](images/chart.png)
"""


def test_markdown_is_commonmark_with_tables_and_code_fences(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text("---\ntitle: T\nurl: https://example.org/news/audit\n---\n" + MARKDOWN_BODY)
    body = read(path).body_html
    assert "<table>" in body and "<th>Year</th>" in body and "<td>failed</td>" in body
    assert "<pre><code>print(\"&lt;b&gt;fenced&lt;/b&gt;\")\n</code></pre>" in body
    assert "<blockquote>\n<p>A quote with <em>emphasis</em>.</p>\n</blockquote>" in body


def test_relative_links_and_images_resolve_against_the_article_url(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text("---\ntitle: T\nurl: https://example.org/news/audit\n---\n" + MARKDOWN_BODY)
    body = read(path).body_html
    assert '<a href="https://example.org/news/images/chart.png" rel="noopener">the chart</a>' in body
    assert '<a href="https://example.org/about" rel="noopener">about us</a>' in body
    assert '<a href="https://other.example/x" rel="noopener">elsewhere</a>' in body
    assert '<img src="https://example.org/news/images/chart.png" alt="Spending chart">' in body


def test_relative_links_without_an_article_url_are_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text('---\ntitle: T\n---\n' + MARKDOWN_BODY + '\n<a href="notes.html">raw</a> <img src="/x.png" alt="x">\n')
    warnings: list[str] = []
    body = read_article_file(path, source="desk", root=tmp_path, warn=warnings.append).body_html
    assert "images/chart.png" not in body and "/about" not in body and "notes.html" not in body
    assert "<img" not in body
    assert "See <a rel=\"noopener\">the chart</a>, <a rel=\"noopener\">about us</a> and" in body
    assert '<a href="https://other.example/x" rel="noopener">elsewhere</a>' in body
    assert warnings == [
        f"{path}: dropped links and images with no web address: images/chart.png, /about, "
        "images/chart.png, notes.html, /x.png (relative ones resolve against the front matter's url; add it)"
    ]
