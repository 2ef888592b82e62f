"""Write subscribers as CSV: our own export, which `importer` reads back to the same state.

Every cell goes through `csvcells.neutralise`, so a name such as `=HYPERLINK(...)` is text
when a spreadsheet opens the file; the importer restores it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .csvcells import neutralise
from .files import replaced_on_success
from .store.records import BLOCKED, SubscriberListing

EXPORT_COLUMNS = ("email", "name", "status", "list", "blocked", "attributes")


def write_export(
    handle: TextIO, listings: Iterable[SubscriberListing], list_slug: str | None
) -> int:
    """Write subscribers as CSV in EXPORT_COLUMNS, one row per membership (of `list_slug`
    only, when given); the number of rows written. `import` reads it back to the same
    memberships, names, attributes and blocks (a domain block comes back as address
    blocks); subscribers on no list are not written."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for item in listings:
        blocked = "yes" if item.status == BLOCKED else ""
        attributes = json.dumps(item.attributes, ensure_ascii=False) if item.attributes else ""
        for slug in [list_slug] if list_slug is not None else item.memberships:
            cells = (item.email, item.name, item.memberships[slug], slug, blocked, attributes)
            writer.writerow([neutralise(cell) for cell in cells])
            count += 1
    return count


def write_export_file(
    path: Path, listings: Iterable[SubscriberListing], list_slug: str | None
) -> int:
    """`write_export` into `path`, which is replaced only once the whole export is written."""
    with replaced_on_success(path) as handle:
        return write_export(handle, listings, list_slug)
