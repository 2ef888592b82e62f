"""Writing a file the user names, all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import NewsletterError


@contextmanager
def replaced_on_success(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text handle to a temporary file beside `path` that takes its place when the
    block ends without an exception; on one, `path` is left as it was and the temporary
    file is removed. An OSError (a missing folder, a full disk) is a NewsletterError.

    A new file is readable by its owner only (it may hold personal data); a replaced one
    keeps the permissions it had.
    """
    try:
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise NewsletterError(f"cannot write {path}: {exc.strerror}") from None
    temporary = Path(name)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise NewsletterError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
