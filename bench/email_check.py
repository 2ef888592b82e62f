"""What a reader's mail client and a spam filter make of the digest (a developer tool, not CI).

    python bench/email_check.py [--out email-check] [--no-screenshots] [--base-url URL]

Builds two issues from this repository's sample project (config.toml, articles/, the
sample feed) with an https base_url: the sample digest as `newsletter send` would make
it, and a 10-article issue (the sample articles, repeated under new titles up to ten).
For each it writes the message a subscriber would get (`*.eml`), prints SpamAssassin's
score with its offline rules (`spamassassin -L -t`, Debian's `spamassassin`) and the rules
that fired, and the HTML size against Gmail's 102 KB clipping limit. Then it takes
headless Chromium screenshots (Debian's `chromium`) of each issue at 390 and 600 px
wide, light and dark, into the --out folder. Look at them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.compose import next_issue  # noqa: E402
from newsletter.config import Config, load_config  # noqa: E402
from newsletter.message import MessageTemplate, Recipient  # noqa: E402
from newsletter.models import IssueContent, stable_id  # noqa: E402
from newsletter.render import GMAIL_CLIP_BYTES, RenderedIssue, render_issue  # noqa: E402
from newsletter.store import Store  # noqa: E402

WIDTHS = (390, 600)
SCHEMES = ("light", "dark")
READER = Recipient("ada.lovelace@example.com", "Ada Lovelace", 1, "1")


def sample_project(tmp: Path, base_url: str) -> Config:
    """The repository's sample config and articles, copied, with an https base_url."""
    for name in ("articles",):
        shutil.copytree(REPO / name, tmp / name)
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{base_url}"', text)
    (tmp / "config.toml").write_text(text, encoding="utf-8")
    return load_config(tmp / "config.toml")


def ten_articles(content: IssueContent) -> IssueContent:
    """The sample issue's articles repeated under new titles (and ids) up to ten."""
    articles = list(content.articles)
    n = 0
    while len(articles) < 10:
        model = content.articles[n % len(content.articles)]
        n += 1
        articles.append(
            replace(
                model,
                id=stable_id("check", str(n)),
                title=f"{model.title} (follow-up {n})",
                published=model.published - timedelta(hours=n),
            )
        )
    return replace(content, articles=tuple(articles[:10]))


def message_bytes(config: Config, digest: str, content: IssueContent, rendered: RenderedIssue) -> bytes:
    template = MessageTemplate(
        config,
        list_id=1,
        list_slug=config.digest(digest).list,
        digest=digest,
        label=f"{digest}-{content.number}.check",
        subject=content.subject,
        html_part=rendered.html,
        text_part=rendered.text,
        markers=rendered.markers,
    )
    return template.fill(READER)


def spamassassin(message: Path) -> tuple[str, str]:
    """(score, rules that fired) from `spamassassin -L -t` (local tests only, no network)."""
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], stdin=message.open("rb"), capture_output=True, check=False
    )
    output = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: .*?(?=^\S)", output, re.M | re.S)
    if status is None:
        return "?", result.stderr.decode("utf-8", "replace").strip()[:300]
    unfolded = " ".join(status.group().split())
    score = re.search(r"score=(-?[\d.]+)", unfolded)
    tests = re.search(r"tests=(.*?) autolearn=", unfolded)
    return (score.group(1) if score else "?"), (tests.group(1).replace(" ", "") if tests else "none")


def screenshot(chromium: str, page: Path, target: Path, width: int, scheme: str, height: int) -> None:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={target}",
    ]
    if scheme == "dark":
        flags += ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *flags, f"--user-data-dir={profile}", page.as_uri()],
            capture_output=True, check=True, timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "email-check")
    parser.add_argument("--base-url", default="https://news.example.org")
    parser.add_argument("--height", type=int, default=5000, help="screenshot height in px")
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NEWSLETTER_SECRET", "email-check-secret")
    has_spamassassin = shutil.which("spamassassin") is not None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")

    with tempfile.TemporaryDirectory() as tmp:
        config = sample_project(Path(tmp), args.base_url)
        digest = config.digest(config.first_digest_name())
        store = Store(config.database.url)
        sample = next_issue(config, digest, store, lambda message: print(f"  warning: {message}"))
        store.close()
        issues = {"sample": sample, "ten": ten_articles(sample)}
        for label, content in issues.items():
            rendered = render_issue(config, digest, content)
            eml = args.out / f"{label}.eml"
            eml.write_bytes(message_bytes(config, digest.name, content, rendered))
            page = args.out / f"{label}.html"
            page.write_text(rendered.markers.neutral(rendered.html, escape_html=True), encoding="utf-8")
            size = len(rendered.html.encode("utf-8"))
            print(f"{label}: {len(content.articles)} articles, HTML {size / 1024:.1f} KB "
                  f"({size / GMAIL_CLIP_BYTES:.0%} of Gmail's clipping limit)")
            if has_spamassassin:
                score, tests = spamassassin(eml)
                print(f"  SpamAssassin (offline rules): {score}  tests: {tests}")
            else:
                print("  SpamAssassin: not installed (apt-get install spamassassin), skipped")
            if args.no_screenshots:
                continue
            if chromium is None:
                print("  screenshots: chromium not installed (apt-get install chromium), skipped")
                continue
            for width in WIDTHS:
                for scheme in SCHEMES:
                    target = args.out / f"{label}-{width}-{scheme}.png"
                    screenshot(chromium, page, target, width, scheme, args.height)
                    print(f"  {target}")


if __name__ == "__main__":
    main()
