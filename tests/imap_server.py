"""Pytest plugin: a real IMAP server (Dovecot, from Debian's `dovecot-imapd`) for the tests.

Started per test in a temporary folder, IMAP over TLS only on a free loopback port, with a
self-signed certificate (tests/tls.py) and one user (`bounces`, password `imap-secret`)
whose mail is a Maildir in that folder. As root (CI) its processes run as the `dovecot`
user. Without Dovecot the IMAP tests are skipped with one line saying what to install,
except where NEWSLETTER_REQUIRE_DOVECOT is set (.ci/run sets it).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_port
from tls import self_signed

REQUIRE_ENV = "NEWSLETTER_REQUIRE_DOVECOT"
USER = "bounces"
PASSWORD = "imap-secret"

_CONFIG = """\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = {user}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


@dataclass
class ImapServer:
    host: str
    port: int
    cert: Path
    folder: Path

    def client(self) -> imaplib.IMAP4_SSL:
        """A logged-in client that trusts the server's certificate."""
        context = ssl.create_default_context(cafile=str(self.cert))
        client = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def append(self, folder: str, message: bytes) -> None:
        client = self.client()
        try:
            client.append(f'"{folder}"', None, None, message)
        finally:
            client.logout()

    def messages(self, folder: str) -> list[bytes]:
        """The messages of a folder (an empty list for a folder that does not exist)."""
        client = self.client()
        try:
            typ, _ = client.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            _, data = client.uid("SEARCH", "ALL")
            found = []
            for uid in (data[0] or b"").split():
                _, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
                found += [item[1] for item in fetched if isinstance(item, tuple)]
            return found
        finally:
            client.logout()



def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else process.stderr}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening within 20 s")


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        message = "IMAP tests skipped: dovecot not found (install Debian's `dovecot-imapd`; .ci/run does)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message.replace("skipped", "cannot run"))
        pytest.skip(message)
    # Not under pytest's own temporary folder, which only root may enter.
    folder = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    cert, _ = self_signed(folder)
    account = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    port = free_port()
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (folder / "dovecot.conf").write_text(
        _CONFIG.format(folder=folder, port=port, user=account.pw_name, uid=account.pw_uid, gid=account.pw_gid)
    )
    for sub in ("run", "state", "home"):
        (folder / sub).mkdir()
    if os.geteuid() == 0:
        for path in (folder / "home", folder / "state"):
            os.chown(path, account.pw_uid, account.pw_gid)
        folder.chmod(0o755)
    process = subprocess.Popen(
        [binary, "-F", "-c", str(folder / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for(port, process, folder / "dovecot.log")
        yield ImapServer("127.0.0.1", port, cert, folder)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
