"""The digest's HTML as mail clients get it: dark mode, Outlook, spam filters, reading."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.config import Config, load_config
from newsletter.errors import ConfigError
from newsletter.images import IMG_TAG, attributes
from newsletter.models import Article, Author, Image, IssueContent
from newsletter.render import COLUMN_WIDTH, render_issue

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
BODY = (
    '<p>Intro <img src="https://example.org/wide.png" alt="wide" width="1600" height="900"></p>'
    '<p><img src="https://example.org/small.png" alt="small" width="120" height="80"></p>'
    '<p><img src="https://example.org/unknown.png" alt="unknown"></p>'
    "<blockquote><p>Quoted words.</p></blockquote>"
)


def article(n: int, **fields: object) -> Article:
    values: dict[str, object] = {
        "id": f"a{n}", "title": f"Title {n}", "body_html": BODY, "published": NOW, "source": "desk",
        "authors": (Author("Ann Lee", "Ann covers Europe.", "https://example.org/ann"), Author("Bo Kim")),
    }
    values.update(fields)
    return Article(**values)  # type: ignore[arg-type]


def render(config: Config, *articles: Article) -> str:
    content = IssueContent("weekly", 7, "Subject", articles, "Test Weekly", NOW)
    return render_issue(config, config.digest("weekly"), content).html


def style_of(document: str, class_name: str) -> str:
    match = re.search(rf'class="{class_name}"[^>]*style="([^"]*)"', document)
    assert match, class_name
    return match.group(1)


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb (or #rgb) colours."""

    def luminance(colour: str) -> float:
        hex_digits = colour.lstrip("#")
        if len(hex_digits) == 3:
            hex_digits = "".join(c * 2 for c in hex_digits)
        channels = [int(hex_digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_head_declares_both_colour_schemes_and_stops_client_rewriting(config: Config) -> None:
    html = render(config, article(1))
    head = html.split("<body", 1)[0]
    for meta in (
        '<meta name="color-scheme" content="light dark">',
        '<meta name="supported-color-schemes" content="light dark">',
        '<meta name="format-detection" content="telephone=no,date=no,address=no,email=no">',
        '<meta name="x-apple-disable-message-reformatting">',
    ):
        assert meta in head
    # The dark scheme survives CSS inlining: media query and Outlook.com's data-ogsc rules.
    assert re.search(r"@media \(prefers-color-scheme: dark\) \{\s+body, \.page \{ background-color: #0d1117", head)
    assert "[data-ogsc] .card .article-title" in head and "[data-ogsb] .card" in head
    assert 'data-premailer' not in html


def test_lang_comes_from_the_digest(project: Path) -> None:
    path = project / "config.toml"
    path.write_text(path.read_text().replace('list = "weekly"\n', 'list = "weekly"\nlang = "de-CH"\n'))
    html = render(load_config(path), article(1))
    assert html.startswith('<!doctype html><html lang="de-CH"')


@pytest.mark.parametrize("lang", ["english", "en_US", "e", "de-", ""])
def test_a_bad_lang_is_one_config_error(project: Path, lang: str) -> None:
    path = project / "config.toml"
    path.write_text(path.read_text().replace('list = "weekly"\n', f'list = "weekly"\nlang = "{lang}"\n'))
    with pytest.raises(ConfigError, match=rf"\[digests.weekly\].lang: '{lang}' is not a language tag"):
        load_config(path)


def test_every_image_has_an_outlook_width_and_no_invalid_height(config: Config) -> None:
    html = render(config, article(1))
    images = {attributes(tag)["alt"]: attributes(tag) for tag in IMG_TAG.findall(html)}
    assert (images["wide"]["width"], images["wide"]["height"]) == (str(COLUMN_WIDTH), "333")
    assert (images["small"]["width"], images["small"]["height"]) == ("120", "80")
    assert images["unknown"]["width"] == str(COLUMN_WIDTH) and "height" not in images["unknown"]
    assert 'height="auto"' not in html
    for image in images.values():
        assert "max-width:100%" in image["style"].replace(" ", "")


def test_author_footer_is_a_table_cell_and_only_for_a_bio(config: Config) -> None:
    html = render(config, article(1))
    assert html.count('class="author-box"') == 1
    assert re.search(r'<td class="author-box" style="[^"]*border-left:3px solid #b3261e; padding:4px 0 4px 14px', html)
    assert not re.search(r"<div[^>]*border-left", html)
    # Bo Kim has no bio: named once, in the byline; Ann Lee's name links to her page there too.
    assert html.count("Bo Kim") == 1
    byline = re.search(r'<p class="article-meta".*?</p>', html).group()  # type: ignore[union-attr]
    assert '<a href="https://example.org/ann"' in byline and "Bo Kim" in byline
    assert re.search(r'<span class="nowrap" style="white-space:nowrap">November 25, 2026</span>', byline)


def test_preheader_is_hidden_without_a_colour_trick(config: Config) -> None:
    html = render(config, article(1), article(2))
    body = html.split("<body", 1)[1]
    preheader = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', body)
    assert preheader and preheader.group(2) == "Title 1 · Title 2"
    assert "display:none" in preheader.group(1) and "color" not in preheader.group(1)
    assert "#ffffff;line-height:1px" not in html and "font-size:1px" not in html


def test_footer_and_small_print_are_readable(config: Config) -> None:
    html = render(config, article(1))
    page = re.search(r'<body[^>]*bgcolor="(#[0-9a-f]{6})"', html).group(1)  # type: ignore[union-attr]
    for class_name in ("footer", "topbar"):
        colour = re.search(r"color:(#[0-9a-f]{3,6})", style_of(html, class_name)).group(1)  # type: ignore[union-attr]
        assert contrast(colour, page) >= 4.5, class_name
    meta = re.search(r"color:(#[0-9a-f]{3,6})", style_of(html, "article-meta")).group(1)  # type: ignore[union-attr]
    assert contrast(meta, "#ffffff") >= 4.5


def test_blockquotes_are_styled_not_indented_40px(config: Config) -> None:
    html = render(config, article(1))
    style = re.search(r"<blockquote style=\"([^\"]*)\"", html).group(1)  # type: ignore[union-attr]
    assert "margin:0 0 14px 0" in style and "border-left:3px solid #d0d7de" in style


def test_view_in_browser_and_past_issues_link_the_archive(config: Config) -> None:
    html = render(config, article(1))
    top = html.index("View this issue in your browser")
    assert html.rfind('href="https://news.example.org/archive/weekly/7"', 0, top) > html.index("<body")
    assert 'href="https://news.example.org/archive/weekly">Past issues</a>' in html.replace(' style="color:#57606a"', "")


def test_a_lead_image_shows_above_the_excerpt_with_width_and_alt(config: Config) -> None:
    lead = Image("https://example.org/lead.jpg?a=1&b=2", 'Soldiers "at" the border', 1200)
    html = render(config, article(1, url="https://example.org/story", excerpt="The excerpt.", image=lead))
    tag = next(t for t in IMG_TAG.findall(html) if "lead.jpg" in t)
    found = attributes(tag)
    assert found["src"] == "https://example.org/lead.jpg?a=1&amp;b=2"
    assert found["alt"] == "Soldiers &quot;at&quot; the border" and found["width"] == str(COLUMN_WIDTH)
    assert html.index("lead.jpg") < html.index("The excerpt.")
    assert 'href="https://example.org/story"><img' in html


def test_a_lead_image_the_body_already_shows_is_not_repeated(config: Config) -> None:
    shown = Image("https://example.org/wide.png", "wide", 1600)
    html = render(config, article(1, image=shown))
    assert html.count("https://example.org/wide.png") == 1
