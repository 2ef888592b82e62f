"""Store area: lists (to be filled in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Store


class Lists:
    def __init__(self, store: Store) -> None:
        self.store = store
