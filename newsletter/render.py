"""Render an issue once: Jinja2 -> MJML -> HTML -> inlined CSS, plus the text part.

Per-recipient values are markers in the result (personal.py: unguessable per issue); they
survive MJML and premailer untouched and are filled later by a plain substitution that
costs microseconds, so the expensive stages here run once per issue. Only the markers
themselves can put a marker into the result: any other value a template prints has the
marker syntax broken (`neutralize_markers`).
"""

from __future__ import annotations

import html
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from markupsafe import Markup
from mjml import mjml2html
from premailer import Premailer

from .config import Config, DigestSettings
from .errors import TemplateError
from .images import IMG_TAG, attributes, fit_images
from .models import Article, IssueContent
from .personal import MARKER_PREFIX, PersonalMarkers, Placeholder, neutralize_markers
from .sources.markdown import note_html
from .text import html_to_text, wrap
from .urls import archive_url

GMAIL_CLIP_BYTES = 102 * 1024
# The digest's layout in pixels: the body, the padding either side of the text, and the
# text column between (images are sized to it for Outlook).
BODY_WIDTH = 640
GUTTER = 24
COLUMN_WIDTH = BODY_WIDTH - 2 * GUTTER


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    html: str
    text: str
    markers: PersonalMarkers  # the personal values' markers in html and text
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict, compare=False)


def _neutralize_output(value: Any) -> Any:
    """Jinja's finalize hook: every value a template prints passes here, so nothing but
    our own Placeholder objects can put a marker into the rendered issue."""
    if isinstance(value, Placeholder):
        return value
    text = str(value)
    if MARKER_PREFIX not in text:
        return value
    return Markup(neutralize_markers(text)) if isinstance(value, Markup) else neutralize_markers(text)


def template_environment(config: Config) -> jinja2.Environment:
    """Templates in the config's folder first, then the packaged defaults."""
    loaders: list[jinja2.BaseLoader] = []
    if config.newsletter.templates.is_dir():
        loaders.append(jinja2.FileSystemLoader(config.newsletter.templates))
    loaders.append(jinja2.FileSystemLoader(str(files("newsletter.templates"))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "mjml", "mjml.j2", "html.j2"),
            default_for_string=False,
        ),
        undefined=jinja2.StrictUndefined,
        finalize=_neutralize_output,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["as_text"] = html_to_text
    env.filters["wrap"] = wrap
    env.filters["date"] = lambda moment, fmt="%B %-d, %Y": moment.strftime(fmt)
    return env


def render_issue(config: Config, digest: DigestSettings, content: IssueContent) -> RenderedIssue:
    """Every expensive step, once per issue, timed for the benchmark."""
    env = template_environment(config)
    markers = PersonalMarkers.new()
    context = template_context(config, digest, content, markers)
    timings: dict[str, float] = {}

    def timed(stage: str, work: Callable[[], str]) -> str:
        start = time.perf_counter()
        result = work()
        timings[stage] = time.perf_counter() - start
        return result

    mjml = timed("jinja", lambda: render_template(env, digest.template, context))
    compiled = timed("mjml", lambda: compile_mjml(mjml, digest.template))
    inlined = timed("inline", lambda: fit_images(inline_css(compiled), COLUMN_WIDTH))
    text = timed("text", lambda: render_text(env, digest.text_template, context, inlined))
    return RenderedIssue(
        subject=content.subject,
        html=inlined,
        text=text,
        markers=markers,
        warnings=tuple(preview_warnings(inlined)),
        timings=timings,
    )


def template_context(
    config: Config, digest: DigestSettings, content: IssueContent, markers: PersonalMarkers
) -> dict[str, Any]:
    settings = config.newsletter
    return {
        "lang": digest.lang,
        "layout": {"width": BODY_WIDTH, "gutter": GUTTER, "column": COLUMN_WIDTH},
        "newsletter": {
            "name": settings.name,
            "postal_address": settings.postal_address,
            "base_url": settings.base_url.rstrip("/"),
        },
        "issue": content,
        "digest": content.digest,
        "subject": content.subject,
        "articles": [article_context(a) for a in content.articles],
        # The editor's note: Markdown rendered and sanitized (the partials show it on top).
        "note_html": Markup(note_html(content.note)) if content.note.strip() else "",
        "date": content.created.astimezone(settings.tz),
        "unsubscribe_url": markers.placeholders["unsubscribe_url"],
        "subscriber_name": markers.placeholders["name"],
        "subscriber_first_name": markers.placeholders["first_name"],
        "subscriber_email": markers.placeholders["email"],
        "number": content.number,
        "archive_url": archive_url(settings.base_url, content.digest),
        "issue_url": archive_url(settings.base_url, content.digest, content.number),
    }


def article_context(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "title": article.title,
        "subtitle": article.subtitle,
        "url": article.url,
        "excerpt": article.excerpt,
        # Sanitized by its source (nh3 for feeds and Markdown, escaped for plain text).
        "body_html": Markup(article.body_html),
        "authors": article.authors,
        "published": article.published,
        "source": article.source,
        # The lead image goes above the excerpt; above a whole body only if the body lacks it.
        "image": article.image if article.url or not _body_shows_image(article) else None,
    }


def _body_shows_image(article: Article) -> bool:
    return article.image is not None and any(
        html.unescape(attributes(tag).get("src", "")) == article.image.src
        for tag in IMG_TAG.findall(article.body_html)
    )


def render_subject(expression: str, context: Mapping[str, Any], digest_name: str) -> str:
    """The digest's `subject` is a Jinja2 template string over the issue; one line."""
    try:
        subject = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(expression).render(context)
    except jinja2.TemplateError as exc:
        raise TemplateError(
            f"[digests.{digest_name}].subject: {exc}; fix the expression in the config"
        ) from None
    return " ".join(subject.split())


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(_search_paths(env))
        raise TemplateError(
            f"template {exc.name!r} not found (looked in {searched}); "
            "fix the digest's template setting or add the file"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template {exc.filename or exc.name}, line {exc.lineno}: {exc.message}; fix the template"
        ) from None
    except jinja2.TemplateError as exc:
        where = _template_location(sys.exc_info()[2]) or f"template {name}"
        raise TemplateError(f"{where}: {exc}; fix the template") from None


def _search_paths(env: jinja2.Environment) -> list[str]:
    loader = env.loader
    assert isinstance(loader, jinja2.ChoiceLoader)
    return [p for sub in loader.loaders for p in getattr(sub, "searchpath", [])]


def _template_location(tb: TracebackType | None) -> str | None:
    """Jinja rewrites tracebacks so that template frames carry the template's file and line."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"template {filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return found


def compile_mjml(mjml: str, template_name: str) -> str:
    try:
        return mjml2html(mjml)
    except ValueError as exc:
        raise TemplateError(
            f"template {template_name} produced invalid MJML ({exc}); check its tags are closed"
        ) from None


def inline_css(document: str) -> str:
    """Move <style> rules into style attributes; media queries stay in a <style> block."""
    # lxml drops the doctype, and without it some clients render in quirks mode.
    doctype = document[: document.index(">") + 1] if document.lower().startswith("<!doctype") else ""
    return doctype + Premailer(
        document,
        keep_style_tags=False,
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        # No height attributes from CSS: `height: auto` would become the invalid height="auto"
        # and replace an image's real height (images.fit_images writes heights).
        disable_basic_attributes=["height"],
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)


def render_text(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], rendered_html: str
) -> str:
    """The text part from its own template, or from the HTML when there is none."""
    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        return html_to_text(rendered_html)
    return render_template(env, name, context)


def preview_warnings(document: str) -> list[str]:
    warnings = []
    size = len(document.encode("utf-8"))
    if size >= GMAIL_CLIP_BYTES:
        warnings.append(
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages at 102 KB: "
            "lower max_articles or excerpt_words"
        )
    for tag in IMG_TAG.findall(document):
        found = attributes(tag)
        if not found.get("alt", "").strip():
            warnings.append(
                f"image {found.get('src') or '(no src)'} has no alt text; "
                "readers with images off or screen readers see nothing"
            )
    return warnings


def write_preview(path: Path, rendered: RenderedIssue) -> None:
    """The preview as a subscriber would see it, with neutral personal values."""
    filled = rendered.markers.neutral(rendered.html, escape_html=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(filled, encoding="utf-8")
    tmp.replace(path)
