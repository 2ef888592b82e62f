"""A sender's registration on an issue: who it is, its lease, and when it must stop.

The lease lives in the store (`senders`, and each claim's claimed_until) and is renewed
every HEARTBEAT_SECONDS. A sender sends nothing once its own view of the lease is older
than the lease minus a margin: one that stalled (a long GC pause, a suspended laptop)
and whose claims others took over cannot send a message they send as well.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta, timezone
from secrets import token_hex

from ..store.ledger import Ledger

LEASE = timedelta(seconds=60)
HEARTBEAT_SECONDS = 10.0
# A sender stops sending this long before the lease it last renewed would run out.
LEASE_MARGIN_SECONDS = 15.0


def new_owner() -> str:
    """Who holds a lease: host, process and a random part (two runs in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner was a process on this host that no longer exists."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, _ = parts
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def lease_end() -> datetime:
    return datetime.now(timezone.utc) + LEASE


class SenderLease:
    def __init__(self, ledger: Ledger, issue_id: int, owner: str | None = None) -> None:
        self.ledger = ledger
        self.issue_id = issue_id
        self.owner = owner or new_owner()
        self._valid_until = 0.0
        self._next_heartbeat = 0.0

    def join(self) -> int | None:
        """Register on the issue; the revocation epoch it starts from, None when the issue
        is not sending (finished or paused by another sender)."""
        renewed_at = time.monotonic()
        epoch = self.ledger.join(self.issue_id, self.owner, lease_end(), owner_is_dead)
        if epoch is not None:
            self._renewed(renewed_at)
        return epoch

    def heartbeat_due(self) -> bool:
        return time.monotonic() >= self._next_heartbeat

    def heartbeat(self) -> bool:
        """Renew; False when this sender must stop (see Ledger.heartbeat)."""
        renewed_at = time.monotonic()
        if not self.ledger.heartbeat(self.issue_id, self.owner, lease_end()):
            return False
        self._renewed(renewed_at)
        return True

    def valid(self) -> bool:
        """Whether a message may still be started under this lease."""
        return time.monotonic() < self._valid_until

    def leave(self) -> None:
        self.ledger.leave(self.issue_id, self.owner)

    def _renewed(self, at: float) -> None:
        self._valid_until = at + LEASE.total_seconds() - LEASE_MARGIN_SECONDS
        self._next_heartbeat = at + HEARTBEAT_SECONDS
