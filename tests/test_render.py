from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from newsletter.compose import next_issue, resolve_authors, select_articles
from newsletter.config import AuthorSettings
from newsletter.errors import TemplateError
from newsletter.models import Article, Author, IssueContent
from newsletter.personal import personal_values
from newsletter.render import (
    GMAIL_CLIP_BYTES,
    preview_warnings,
    render_issue,
)
from newsletter.store import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
LONG_BODY = "\n".join(f"<p>Paragraph {i} " + "words " * 60 + "</p>" for i in range(8))


def article(n: int, *, url: str | None = None, authors: tuple[Author, ...] = (), days_old: float = 1) -> Article:
    return Article(
        id=f"id{n}",
        title=f"Title {n}",
        subtitle=f"Subtitle {n}",
        body_html=LONG_BODY,
        url=url,
        authors=authors,
        published=NOW - timedelta(days=days_old),
        source="desk",
        excerpt=f"Excerpt {n}",
    )


def content(*articles: Article) -> IssueContent:
    return IssueContent(
        digest="weekly", number=3, subject="Subject", articles=articles, newsletter_name="Test Weekly",
        created=NOW,
    )


def test_html_has_css_inlined_author_footers_and_placeholders(config) -> None:
    authors = (Author("Ann Lee", "Ann covers Europe."), Author("Bo Kim", "", "https://example.org/bo"))
    rendered = render_issue(config, config.digest("weekly"), content(article(1, authors=authors)))
    html = rendered.html
    assert '<h2 class="article-title" style="font-size:24px' in html  # class rule inlined
    assert "@media only screen and (max-width: 480px)" in html  # media queries kept
    assert html.count('class="author-box"') == 1  # Bo Kim has no bio: no footer
    assert "Ann covers Europe." in html
    assert '<a href="https://example.org/bo"' in html
    for name in ("unsubscribe_url", "first_name", "email"):
        assert rendered.markers.placeholders[name] in html
        assert rendered.markers.placeholders[name] in rendered.text
    assert "1 Test Street, Testville" in html and "1 Test Street, Testville" in rendered.text


def test_author_without_bio_is_named_once_in_the_byline_with_no_footer(config) -> None:
    rendered = render_issue(config, config.digest("weekly"), content(article(1, authors=(Author("Solo"),))))
    assert rendered.html.count("Solo") == 1 and 'class="author-box"' not in rendered.html
    assert rendered.text.count("Solo") == 1 and "-- Solo" not in rendered.text


def test_article_with_url_shows_excerpt_and_read_more_else_whole_body(config) -> None:
    rendered = render_issue(
        config, config.digest("weekly"), content(article(1, url="https://example.org/one"), article(2))
    )
    first, second = rendered.html.split("Subtitle 2")
    assert "Excerpt 1" in first and "Read more" in first and "Paragraph 7" not in first
    assert "Paragraph 7" in second
    assert "Read more: https://example.org/one" in rendered.text


def test_ten_article_issue_stays_under_gmail_clipping(config) -> None:
    articles = [
        article(n, url=f"https://example.org/{n}", authors=(Author("Ann Lee", "Bio " * 40),))
        for n in range(10)
    ]
    rendered = render_issue(config, config.digest("weekly"), content(*articles))
    assert len(rendered.html.encode()) < GMAIL_CLIP_BYTES
    assert rendered.warnings == ()


def test_personalization_fills_every_placeholder_and_escapes_html(config) -> None:
    rendered = render_issue(config, config.digest("weekly"), content(article(1)))
    values = personal_values("https://x.test/u/tok?a=1&b=2", "<Ann>", "ann@example.org")
    html = rendered.markers.template(rendered.html, escape_html=True).fill(values)
    text = rendered.markers.template(rendered.text, escape_html=False).fill(values)
    assert "%%NL_" not in html and "%%NL_" not in text
    assert 'href="https://x.test/u/tok?a=1&amp;b=2"' in html
    assert "Hello &lt;Ann&gt;," in html
    assert "Hello <Ann>," in text and "https://x.test/u/tok?a=1&b=2" in text


def test_preview_warns_on_clipping_size_and_missing_alt_text() -> None:
    big = "<html>" + "x" * GMAIL_CLIP_BYTES + '<img src="a.png"><img src="b.png" alt="B"></html>'
    warnings = preview_warnings(big)
    assert warnings[0].startswith("the HTML is 102 KB; Gmail clips messages at 102 KB")
    assert warnings[1].startswith("image a.png has no alt text")
    assert len(warnings) == 2


def test_a_template_in_the_config_folder_overrides_the_packaged_one(project: Path, config) -> None:
    (project / "templates" / "partials").mkdir()
    (project / "templates" / "partials" / "author_footer.mjml.j2").write_text(
        "<mj-section><mj-column><mj-text>CUSTOM {{ author.name }}</mj-text></mj-column></mj-section>\n"
    )
    rendered = render_issue(config, config.digest("weekly"), content(article(1, authors=(Author("Ann", "Bio."),))))
    assert "CUSTOM Ann" in rendered.html


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>", r"digest.mjml.j2, line 3: Expected an expression"),
        ("<mjml>\n<mj-body>\n{{ nope.attr }}\n</mj-body></mjml>", r"digest.mjml.j2, line 3: 'nope' is undefined"),
        ("<mjml><mj-body><mj-section>", r"template digest.mjml.j2 produced invalid MJML"),
        ("{% include 'missing.mjml.j2' %}", r"template 'missing.mjml.j2' not found \(looked in"),
    ],
)
def test_template_errors_name_the_template_and_line(project: Path, config, source: str, message: str) -> None:
    (project / "templates" / "digest.mjml.j2").write_text(source)
    with pytest.raises(TemplateError, match=message):
        render_issue(config, config.digest("weekly"), content(article(1)))


def test_select_articles_by_window_newest_first_capped_and_not_carried(config) -> None:
    digest = replace(config.digest("weekly"), max_articles=2)
    articles = [article(1, days_old=1), article(2, days_old=3), article(3, days_old=0.5),
                article(4, days_old=8), article(1, days_old=1)]
    assert [a.id for a in select_articles(articles, digest, set(), NOW)] == ["id3", "id1"]
    assert [a.id for a in select_articles(articles, digest, {"id:id3"}, NOW)] == ["id1", "id2"]


def test_config_bio_wins_over_the_article_bio_else_the_article_bio() -> None:
    registry = {"Ann": AuthorSettings(bio="From config.", url="https://example.org/ann")}
    [resolved] = resolve_authors(
        [replace(article(1), authors=(Author("Ann", "From article."), Author("Bo", "Bo's own.")))], registry
    )
    assert resolved.authors == (Author("Ann", "From config.", "https://example.org/ann"), Author("Bo", "Bo's own."))


def test_a_bio_one_article_carries_serves_the_authors_other_articles_in_the_issue() -> None:
    articles = [
        article(1, authors=(Author("Bo"),)),
        article(2, authors=(Author("Bo", "Bo reports from Kyiv.", "https://example.org/bo"), Author("Cy"))),
        article(3, authors=(Author("Bo", "A later, different bio."),)),
        article(4, authors=(Author("Ann"),)),
    ]
    registry = {"Ann": AuthorSettings(url="https://example.org/ann")}
    resolved = resolve_authors(articles, registry)
    bo = Author("Bo", "Bo reports from Kyiv.", "https://example.org/bo")
    assert [a.authors for a in resolved] == [(bo,), (bo, Author("Cy")), (bo,), (Author("Ann", "", "https://example.org/ann"),)]


def test_next_issue_reads_the_folder_and_uses_the_author_registry(config) -> None:
    store = Store(config.database.url)
    issue = next_issue(config, config.digest("weekly"), store, pytest.fail)
    assert issue.subject == "Test Weekly #1"
    [only] = issue.articles
    assert only.authors == (Author("Dave DeCamp", "Dave DeCamp is the news editor of Antiwar.com."),)
    assert only.excerpt.startswith("Ukrainian President") and only.excerpt.endswith("…")
    assert len(re.findall(r"\S+", only.excerpt)) == 60
