"""Cost of each rendering stage against the per-recipient substitution.

    python bench/render.py [--articles 10] [--repeat 7] [--recipients 10000]

Renders a digest of N generated articles (with the packaged templates) `repeat` times and
prints the median time of each stage (Jinja2, MJML, CSS inlining, text), then the median
cost of filling one recipient's placeholders in both parts, and the ratio between the whole
render and one substitution. Goal: substitution at least 100 times cheaper than the render.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import load_config  # noqa: E402
from newsletter.models import Article, Author, IssueContent  # noqa: E402
from newsletter.personal import personal_values  # noqa: E402
from newsletter.render import render_issue  # noqa: E402

CONFIG = """\
[newsletter]
name = "Bench Weekly"
from = "Bench <news@example.org>"
postal_address = "1 Bench Street"
templates = "templates"
[digests.weekly]
list = "weekly"
subject = "Bench"
"""


def make_issue(count: int) -> IssueContent:
    now = datetime.now(timezone.utc)
    body = "\n".join(f"<p>Paragraph {i}: " + "lorem ipsum dolor sit amet " * 12 + "</p>" for i in range(6))
    articles = tuple(
        Article(
            id=f"a{n}", title=f"Article number {n} about the week's events", subtitle="A subtitle",
            body_html=body, url=f"https://example.org/{n}" if n % 2 else None,
            authors=(Author("Dave DeCamp", "Dave DeCamp is the news editor of Antiwar.com."),),
            published=now - timedelta(hours=n), source="bench", excerpt="An excerpt " * 10,
        )
        for n in range(count)
    )
    return IssueContent("weekly", 1, "Bench", articles, "Bench Weekly", now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--recipients", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "config.toml").write_text(CONFIG)
        config = load_config(Path(tmp, "config.toml"))
        digest = config.digest("weekly")
        issue = make_issue(args.articles)
        stages: dict[str, list[float]] = {}
        totals = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            rendered = render_issue(config, digest, issue)
            totals.append(time.perf_counter() - start)
            for stage, seconds in rendered.timings.items():
                stages.setdefault(stage, []).append(seconds)

    html_part = rendered.markers.template(rendered.html, escape_html=True)
    text_part = rendered.markers.template(rendered.text, escape_html=False)
    per_recipient = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for n in range(args.recipients):
            values = personal_values(f"https://example.org/u/token{n}", f"Reader {n}", f"r{n}@example.org")
            html_part.fill(values)
            text_part.fill(values)
        per_recipient.append((time.perf_counter() - start) / args.recipients)

    render_median = statistics.median(totals)
    fill_median = statistics.median(per_recipient)
    print(f"render of a {args.articles}-article issue, median of {args.repeat} runs "
          f"(HTML {len(rendered.html.encode()) / 1024:.1f} KB):")
    for stage, seconds in stages.items():
        print(f"  {stage:<8} {statistics.median(seconds) * 1000:9.2f} ms")
    print(f"  {'total':<8} {render_median * 1000:9.2f} ms")
    print(f"per-recipient substitution (HTML + text), median over {args.recipients} recipients:")
    print(f"  {'fill':<8} {fill_median * 1e6:9.2f} µs")
    ratio = render_median / fill_median
    verdict = "meets" if ratio >= 100 else "MISSES"
    print(f"ratio render / substitution: {ratio:,.0f}x ({verdict} the goal of >= 100x)")


if __name__ == "__main__":
    main()
