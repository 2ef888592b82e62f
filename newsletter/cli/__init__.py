"""Command line: `newsletter [--config PATH] COMMAND`."""

from __future__ import annotations

from . import articles, bounces, database, drafts, inbound, lists, sending, service, subscribers  # noqa: F401  (register commands)
from .app import app


def main() -> None:
    app()
