"""Header lines of at most 78 characters (RFC 5322 2.1.1): folding at the spaces of a value.

A fold turns a space into CRLF + space, which unfolding (and DKIM's relaxed
canonicalization) turns back into the same space, so the value means what it did.
"""

from __future__ import annotations

CRLF = "\r\n"
MAX_LINE = 78


def fold_words(start: str, words: list[str]) -> str:
    """`start` then the words, one space apart, in lines of at most MAX_LINE characters
    (a word longer than a line gets a line of its own)."""
    lines = [start]
    for word in words:
        if len(lines[-1]) + 1 + len(word) <= MAX_LINE or not lines[-1].strip():
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return CRLF.join(lines)
