"""Personal values in a rendered issue: markers now, a recipient's values at send time.

An issue is rendered once; what differs per recipient (the unsubscribe URL, the name, the
first name, the address) stands in it as markers that MJML and premailer leave alone, and
is filled in per recipient by splitting the part at its markers once and joining.

Nothing that comes from an article, a feed, the config or a subscriber may ever become a
marker (it would be filled with each reader's address and sent wherever it points):

- the markers are unguessable: `%%NL_<nonce>_NAME%%` with a random nonce per issue, which
  the issue keeps (issues.marker_nonce) so that a resumed send or the archive finds them;
- and the marker syntax `%%NL_` is broken in all source text (`neutralize_markers`).

Issues recorded before nonces carry the fixed markers `%%NL_NAME%%` (nonce None).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

MARKER_PREFIX = "%%NL_"
FIELDS = ("unsubscribe_url", "name", "first_name", "email")
# What a reader of the public web archive or a preview sees instead of a subscriber's own.
NEUTRAL_VALUES: dict[str, str] = {
    "unsubscribe_url": "#unsubscribe",
    "name": "reader",
    "first_name": "",
    "email": "you",
}


class Placeholder(str):
    """A marker as templates receive it: the one value the template environment prints
    with its marker syntax intact (render.py's finalize hook lets nothing else through)."""


@dataclass(frozen=True)
class PersonalMarkers:
    nonce: str | None  # None: the fixed markers of issues recorded before nonces
    placeholders: dict[str, Placeholder] = field(init=False, compare=False, repr=False)
    pattern: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        infix = "" if self.nonce is None else f"{self.nonce}_"
        placeholders = {name: Placeholder(f"{MARKER_PREFIX}{infix}{name.upper()}%%") for name in FIELDS}
        object.__setattr__(self, "placeholders", placeholders)
        object.__setattr__(self, "pattern", re.compile("|".join(map(re.escape, placeholders.values()))))

    @classmethod
    def new(cls) -> PersonalMarkers:
        """Markers for a new issue."""
        return cls(secrets.token_hex(8))

    def template(self, rendered: str, *, escape_html: bool) -> PersonalTemplate:
        return PersonalTemplate(rendered, self, escape_html=escape_html)

    def neutral(self, rendered: str, *, escape_html: bool) -> str:
        """A part as the public may see it: every personal value neutralised."""
        return self.template(rendered, escape_html=escape_html).fill(NEUTRAL_VALUES)


class PersonalTemplate:
    """A rendered part split once at its markers, filled per recipient by a join."""

    def __init__(self, rendered: str, markers: PersonalMarkers, *, escape_html: bool) -> None:
        self.escape_html = escape_html
        name_of = {marker: name for name, marker in markers.placeholders.items()}
        self.pieces: list[str] = []
        self.slots: list[str] = []  # the value's name after each piece but the last
        position = 0
        for match in markers.pattern.finditer(rendered):
            self.pieces.append(rendered[position : match.start()])
            self.slots.append(name_of[match.group()])
            position = match.end()
        self.pieces.append(rendered[position:])

    def fill(self, values: Mapping[str, str]) -> str:
        if self.escape_html:
            values = {k: html.escape(v, quote=True) for k, v in values.items()}
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:]):
            out.append(values[slot])
            out.append(piece)
        return "".join(out)


def neutralize_markers(text: str) -> str:
    """Source text (articles, feeds, config, names) with the marker syntax broken by a
    zero-width space: it reads the same and can never become a personal placeholder."""
    return text.replace(MARKER_PREFIX, "%%\u200bNL_")


def personal_values(unsubscribe_url: str, name: str, email: str) -> dict[str, str]:
    """The values for one recipient; an empty name reads as 'reader' and has no first name."""
    words = name.split(maxsplit=1)
    first = words[0].rstrip(",") if words else ""
    return {
        "unsubscribe_url": unsubscribe_url,
        "name": name or "reader",
        "first_name": f" {first}" if first else "",
        "email": email,
    }
