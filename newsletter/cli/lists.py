"""Commands: lists (to be filled in)."""

from __future__ import annotations

from .app import app  # noqa: F401
