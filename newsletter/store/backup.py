"""A consistent copy of a SQLite store while others use it.

`cp newsletter.db` is not a backup: recent commits sit in the -wal file beside it. SQLite's
online backup API copies the database as one snapshot (writers carry on meanwhile) into a
temporary file, which replaces the target only when the copy is complete.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError

if TYPE_CHECKING:
    from . import Store


def backup(store: Store, target: Path) -> int:
    """Copy the store to `target`; its size in bytes."""
    if store.dialect != "sqlite":
        raise StoreError(
            f"{store.where} is a PostgreSQL database: back it up with pg_dump "
            "(for example `pg_dump --format=custom --file=newsletter.dump DBNAME`)"
        )
    source_path = store.engine.url.database
    target = target.absolute()
    if source_path and Path(source_path).absolute() == target:
        raise StoreError(f"{target} is the database itself; name another file for the copy")
    if not target.parent.is_dir():
        raise StoreError(f"cannot write {target}: the folder {target.parent} does not exist")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    raw = store.engine.raw_connection()
    try:
        destination = sqlite3.connect(temporary)
        try:
            raw.driver_connection.backup(destination)  # type: ignore[union-attr]
        finally:
            destination.close()
        os.replace(temporary, target)
    except (sqlite3.Error, OSError) as exc:
        temporary.unlink(missing_ok=True)
        raise StoreError(f"backup to {target} failed: {exc}") from None
    finally:
        raw.close()
    return target.stat().st_size
