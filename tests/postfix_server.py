"""Pytest plugin: a private Postfix (Debian's `postfix`) that relays to the SMTP test server.

Its own configuration, queue and log in a temporary folder, listening on a free loopback
port, with the SMTP test server as its relayhost. What the test server refuses, Postfix
bounces: it writes a real DSN (RFC 3464) to the envelope sender, which it relays to the
test server too. Starting Postfix needs root (CI runs as root); elsewhere, or without
Postfix, the tests are skipped with one line, except where NEWSLETTER_REQUIRE_POSTFIX is
set (.ci/run sets it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_port

REQUIRE_ENV = "NEWSLETTER_REQUIRE_POSTFIX"
POSTFIX = "/usr/sbin/postfix"

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix.test
mydomain = postfix.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relayhost = [127.0.0.1]:{relay_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = {folder}
maillog_file = {folder}/maillog
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
biff = no
"""

# Only what relaying and bouncing need; nothing chrooted.
_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n  -  n  60  1  pickup
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
flush     unix  n  -  n  1000? 0 flush
proxymap  unix  -  -  n  -   -  proxymap
smtp      unix  -  -  n  -   -  smtp
relay     unix  -  -  n  -   -  smtp
showq     unix  n  -  n  -   -  showq
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n - n - 1  postlogd
"""


@dataclass
class PostfixServer:
    host: str
    port: int
    folder: Path

    @property
    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""



def _postfix(config: Path, *args: str) -> None:
    done = subprocess.run([POSTFIX, "-c", str(config), *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"postfix {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")


def _unavailable() -> str | None:
    if not Path(POSTFIX).exists():
        return "Postfix tests skipped: /usr/sbin/postfix not found (install Debian's `postfix`; .ci/run does)"
    if os.geteuid() != 0:
        return "Postfix tests skipped: starting a private Postfix needs root (CI runs as root)"
    return None


@pytest.fixture
def postfix_factory() -> Iterator[Callable[[int], PostfixServer]]:
    """Start a private Postfix relaying to the given port (the SMTP test server's)."""
    started: list[Path] = []

    def start(relay_port: int) -> PostfixServer:
        problem = _unavailable()
        if problem is not None:
            if os.environ.get(REQUIRE_ENV):
                pytest.fail(problem.replace("skipped", "cannot run"))
            pytest.skip(problem)
        folder = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
        folder.chmod(0o755)
        config = folder / "etc"
        config.mkdir()
        (folder / "queue").mkdir()
        (folder / "data").mkdir()
        shutil.chown(folder / "data", "postfix")
        port = free_port()
        (config / "main.cf").write_text(_MAIN_CF.format(folder=folder, relay_port=relay_port))
        (config / "master.cf").write_text(_MASTER_CF.format(port=port))
        _postfix(config, "check")  # creates the queue's folders with their owners
        _postfix(config, "start")
        started.append(folder)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Postfix did not start listening within 20 s") from None
                time.sleep(0.05)
        return PostfixServer("127.0.0.1", port, folder)

    yield start
    for folder in started:
        try:
            _postfix(folder / "etc", "stop")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
