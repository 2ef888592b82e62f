"""<img> tags in HTML: reading their attributes, and sizing them for Outlook.

Outlook for Windows lays images out by their `width` attribute alone (CSS max-width is
ignored), so a 1600-pixel photo without one breaks the layout. Every image of a rendered
issue gets a width: its own when it is known and fits the column, else the column's; a
numeric height is scaled along, and the invalid `height="auto"` (which premailer writes
from the CSS) is dropped. CSS `max-width: 100%; height: auto` keeps them fluid elsewhere.
"""

from __future__ import annotations

import re

# A tag ends at the first ">" outside a quoted attribute value.
IMG_TAG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.I)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


def attributes(tag: str) -> dict[str, str]:
    """The attributes of one <img> tag, names lower-cased, values as written (entities kept)."""
    inner = tag[len("<img") : -1].removesuffix("/")
    return {
        match[1].lower(): next((value for value in match.groups()[1:] if value is not None), "")
        for match in _ATTRIBUTE.finditer(inner)
    }


def pixels(value: str | None) -> int | None:
    """A width or height attribute as whole pixels ("600", "600px"), else None."""
    match = re.fullmatch(r"\s*(\d{1,5})(?:px)?\s*", value or "")
    return int(match[1]) if match and int(match[1]) > 0 else None


def fit_images(document: str, column_width: int) -> str:
    """Every <img> with a width attribute no wider than the column, and no invalid height."""
    return IMG_TAG.sub(lambda match: _fit(match.group(), column_width), document)


def _fit(tag: str, column_width: int) -> str:
    found = attributes(tag)
    width, height = pixels(found.pop("width", None)), pixels(found.pop("height", None))
    fitted = width if width is not None and width <= column_width else column_width
    found["width"] = str(fitted)
    if width is not None and height is not None:
        found["height"] = str(round(height * fitted / width))
    written = "".join(f' {name}="{value.replace(chr(34), "&quot;")}"' for name, value in found.items())
    return f"<img{written}>"
