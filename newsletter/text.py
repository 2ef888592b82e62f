"""The text part: sanitized article HTML as plain text, wrapped, with no markup syntax.

A walk over the HTML (the standard library's parser) collects blocks: paragraphs,
headings, quotes (indented), list items (with a bullet or number and a hanging indent),
preformatted text (kept as it is) and table rows (cells side by side). Emphasis is
dropped, images too; a link's text stays in the sentence with a number after it, and
the numbered URLs follow at the end of the fragment, so a paragraph reads as prose and
no URL is ever broken across lines.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser

WIDTH = 76
_QUOTE_INDENT = "    "
_BLOCKS = {
    "address", "article", "blockquote", "body", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
    "section", "table", "tr", "ul",
}
_SKIPPED = {"head", "script", "style", "template", "title"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "source", "wbr"}
# Runs of HTML whitespace become one space; a no-break space is text and stays.
_SPACES = re.compile(r"[ \t\n\r\f]+")
_BREAK = "\x00"  # a <br> until the block is flushed (the sanitizer leaves no NUL in text)


def wrap(text: str, width: int = WIDTH, indent: str = "", hanging: str | None = None) -> str:
    """Wrap each line of `text` at `width`, never inside a word (so never inside a URL).

    The first line starts with `indent`, every later one with `hanging` (default: indent).
    """
    hanging = indent if hanging is None else hanging
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(
            textwrap.wrap(
                line,
                width=width,
                initial_indent=hanging if lines else indent,
                subsequent_indent=hanging,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [""]
        )
    return "\n".join(lines).rstrip()


def html_to_text(fragment: str, width: int = WIDTH) -> str:
    """Plain text of an HTML fragment: blocks separated by blank lines, links numbered."""
    walker = _Walker()
    walker.feed(str(fragment))
    walker.close()
    return walker.result(width)


@dataclass
class _Block:
    text: str
    indent: str  # for the first line
    hanging: str  # for the lines after it
    preformatted: bool = False
    # The outermost list or table the block is in: its items or rows go without blank lines.
    group: int | None = None


@dataclass
class _List:
    ordered: bool
    count: int = 0
    width: int = 0  # of the current item's marker: its later lines are indented by as much


class _Walker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
        self.inline: list[str] = []
        self.links: list[str] = []
        self.open_links: list[tuple[str | None, int]] = []  # (href, where its text starts)
        self.lists: list[_List] = []
        self.marker = ""  # the bullet or number waiting for the item's first text
        self.quotes = 0
        self.tables = 0
        self.groups = 0  # outermost lists and tables opened so far
        self.skipping = 0
        self.preformatted = 0
        self.cells = 0  # cells seen in the current table row

    # -- the parser's callbacks -------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif self.skipping:
            return
        elif tag == "br":
            self.inline.append(_BREAK)
        elif tag == "a":
            self.open_links.append((dict(attrs).get("href"), len(self.inline)))
        elif tag in ("td", "th"):
            if self.cells:
                self.inline.append(" | ")
            self.cells += 1
        elif tag in _BLOCKS:
            self.flush()
            self._open_block(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif self.skipping:
            return
        elif tag == "a" and self.open_links:
            self._close_link(*self.open_links.pop())
        elif tag in _BLOCKS:
            self.flush()
            self._close_block(tag)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.inline.append(data.replace(_BREAK, ""))

    # -- blocks ----------------------------------------------------------------------

    def _open_block(self, tag: str) -> None:
        if tag in ("ul", "ol", "table") and not self.lists and not self.tables:
            self.groups += 1
        if tag == "blockquote":
            self.quotes += 1
        elif tag in ("ul", "ol"):
            self.lists.append(_List(ordered=tag == "ol"))
        elif tag == "li" and self.lists:
            current = self.lists[-1]
            current.count += 1
            self.marker = f"{current.count}. " if current.ordered else "- "
            current.width = len(self.marker)
        elif tag == "pre":
            self.preformatted += 1
        elif tag == "table":
            self.tables += 1
        elif tag == "tr":
            self.cells = 0
        elif tag == "hr":
            self.blocks.append(_Block("* * *", "", ""))

    def _close_block(self, tag: str) -> None:
        if tag == "blockquote":
            self.quotes = max(0, self.quotes - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "pre":
            self.preformatted = max(0, self.preformatted - 1)
        elif tag == "table":
            self.tables = max(0, self.tables - 1)

    def _close_link(self, href: str | None, start: int) -> None:
        label = " ".join("".join(self.inline[start:]).replace(_BREAK, " ").split())
        if not href or not label:
            return
        shown = href.removeprefix("mailto:")
        if label in (href, shown):
            return  # the text is the address already
        if href not in self.links:
            self.links.append(href)
        self.inline.append(f" [{self.links.index(href) + 1}]")

    def flush(self) -> None:
        raw = "".join(self.inline)
        self.inline = []
        self.open_links = [(href, 0) for href, _ in self.open_links]
        if self.preformatted:
            text = raw.replace(_BREAK, "\n").strip("\n")
        else:
            text = "\n".join(_SPACES.sub(" ", line).strip() for line in raw.split(_BREAK)).strip("\n")
        if not text.strip():
            return
        outer = _QUOTE_INDENT * self.quotes + "".join(" " * level.width for level in self.lists[:-1])
        hanging = outer + (" " * self.lists[-1].width if self.lists else "")
        marker, self.marker = self.marker, ""
        self.blocks.append(
            _Block(
                text,
                outer + marker if marker else hanging,
                hanging,
                preformatted=bool(self.preformatted),
                group=self.groups if self.lists or self.tables else None,
            )
        )

    # -- output ----------------------------------------------------------------------

    def result(self, width: int) -> str:
        self.flush()
        out: list[str] = []
        previous: _Block | None = None
        for block in self.blocks:
            if previous is not None and (block.group is None or previous.group != block.group):
                out.append("")  # a blank line between blocks, none between list items
            if block.preformatted:
                out.append("\n".join(block.indent + _QUOTE_INDENT + line for line in block.text.split("\n")))
            else:
                out.append(wrap(block.text, width, block.indent, block.hanging))
            previous = block
        if self.links:
            out.append("")
            out.extend(f"[{n}] {url}" for n, url in enumerate(self.links, start=1))
        return "\n".join(out).strip("\n")
