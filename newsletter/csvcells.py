"""Cells a spreadsheet would run as a formula: neutralised in our export, restored on import.

OWASP's rule for CSV injection: a cell that begins with `=`, `+`, `-`, `@`, a tab or a
carriage return is a formula (or becomes one) when a spreadsheet opens the file, so the
export prefixes it with a single quote, which spreadsheets show as text. To keep
export -> import a round trip, a cell that already begins with quotes followed by one of
those characters gets one more, and import takes exactly one off such cells again:
`=1+1` is written `'=1+1`, `'=1+1` is written `''=1+1`, and `'hello` stays as it is.
"""

from __future__ import annotations

import re

_FORMULA = re.compile("'*[=+\\-@\t\r]")


def neutralise(value: str) -> str:
    """The cell as the export writes it."""
    return f"'{value}" if _FORMULA.match(value) else value


def restore(value: str) -> str:
    """The cell as it was before `neutralise` (any other cell unchanged)."""
    return value[1:] if value[:1] == "'" and _FORMULA.match(value, 1) else value
