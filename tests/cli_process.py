"""`newsletter` commands run as real processes (as a user or cron runs them), and waiting."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def newsletter(project: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `newsletter --config PROJECT/config.toml ARGS...` in the project folder."""
    return subprocess.Popen(
        [sys.executable, "-c", "from newsletter.cli import main; main()",
         "--config", str(project / "config.toml"), *args],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def start_send(project: Path) -> subprocess.Popen[bytes]:
    return newsletter(project, "send", "weekly", "--yes")


def finish_send(project: Path) -> str:
    """Run `send weekly` to the end; its output. It must succeed."""
    again = start_send(project)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err.decode()
    return out.decode()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()  # reaped: its pid is gone, as after a real crash


def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)
