"""Writers of one SQLite store take turns promptly, across threads and processes.

SQLite's own wait for its write lock (the busy handler) sleeps between tries, 1 ms, then
2, 5, 10 and up to 100 ms: with several sender processes committing small transactions
all the time, each wait costs far more than the transaction it waits for. So the store's
writers first take this lock, a `flock` on a file beside the database (and a thread lock
within the process), which they poll every fraction of a millisecond: the next writer
starts as soon as the last one committed. Other programs that write the database (the
sqlite3 shell) know nothing of it; against them SQLite's busy timeout still applies.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_FIRST_POLL = 0.00005
_LONGEST_POLL = 0.001


class WriterLockTimeout(Exception):
    """Another writer held the lock for longer than the timeout."""


class WriterLock:
    def __init__(self, database: Path, timeout: float) -> None:
        self.path = database.with_name(database.name + "-lock")
        self.timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise WriterLockTimeout
        try:
            fd = self._file()
            poll = _FIRST_POLL
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise WriterLockTimeout from None
                    time.sleep(poll)
                    poll = min(poll * 2, _LONGEST_POLL)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd
