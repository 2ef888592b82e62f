"""How long an unsubscribe takes while an issue is being sent, beside one with no send.

    python bench/concurrency.py [--recipients 3000] [--samples 100] [--backends sqlite,postgres]

For each store (a SQLite file; PostgreSQL on a throw-away cluster when initdb is
installed), a list of N readers and an SMTP server on loopback that takes 20 ms a message
over 4 connections. First `--samples` unsubscribes with nothing else running (the
baseline), then as many while `newsletter send` mails the list, one every 50 ms, each
taking a reader the send has not reached yet. Each unsubscribe is the library call the
CLI and the one-click link make; it returns once every running sender has seen it.
Prints the median and the 99th percentile of both, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from postgres_server import PostgresCluster, _binaries  # noqa: E402
from smtp_server import SmtpTestServer, generated_people, subscribe  # noqa: E402

from newsletter.store import Store  # noqa: E402

DELAY = 0.02
CONNECTIONS = 4


def config_text(url: str, server: SmtpTestServer) -> str:
    return f"""
[newsletter]
name = "Bench Weekly"
from = "Bench <news@example.org>"
base_url = "https://news.example.org"
[database]
url = "{url}"
[delivery]
transport = "smtp"
[smtp]
host = "{server.host}"
port = {server.port}
security = "none"
connections = {CONNECTIONS}
[[sources]]
name = "desk"
kind = "folder"
path = "{REPO / 'articles'}"
[digests.weekly]
list = "weekly"
subject = "Bench"
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def unsubscribe_latencies(store: Store, emails: list[str], spacing: float) -> list[float]:
    latencies = []
    for email in emails:
        started = time.perf_counter()
        store.memberships.unsubscribe(email, "weekly", source="bench")
        latencies.append(time.perf_counter() - started)
        time.sleep(spacing)
    return latencies


def measure(url: str, recipients: int, samples: int, workdir: Path) -> tuple[list[float], list[float]]:
    server = SmtpTestServer().start()
    server.slow_down(DELAY)
    try:
        (workdir / "config.toml").write_text(config_text(url, server), encoding="utf-8")
        people = generated_people(recipients)
        store = Store(url)
        store.lists.create("weekly")
        subscribe(store, "weekly", people)
        emails = [email for email, _ in people]
        quiet = unsubscribe_latencies(store, emails[-samples:], 0.0)
        send = subprocess.Popen(
            [sys.executable, "-c", "from newsletter.cli import main; main()",
             "--config", str(workdir / "config.toml"), "send", "weekly", "--yes"],
            cwd=workdir, env={**os.environ, "NEWSLETTER_SECRET": "bench-secret"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        while len(server.messages) < 100:
            time.sleep(0.01)
        busy: list[float] = []
        position = 0
        for _ in range(samples):
            # A reader 30 ahead of the messages sent so far: claimed, not yet mailed.
            position = max(position + 1, len(server.messages) + 30)
            busy += unsubscribe_latencies(store, [emails[position]], 0.05)
        send.terminate()
        send.wait()
        store.close()
        if len(server.messages) >= recipients - 2 * samples:
            print("  (the send finished before the samples did: raise --recipients)")
        return quiet, busy
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"unsubscribe latency, {args.samples} samples each, send to {args.recipients} over "
          f"{CONNECTIONS} connections at {DELAY * 1000:.0f} ms a message")
    print(f"  {'store':<12}{'no send: median':>17}{'p99':>9}{'during a send: median':>24}{'p99':>9}{'ratio':>8}")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
            workdir = Path(tmp)
            cluster = None
            if backend == "postgres":
                bin_dir = _binaries()
                if bin_dir is None:
                    print(f"  {backend:<12}skipped: PostgreSQL's initdb is not installed")
                    continue
                cluster = PostgresCluster(bin_dir)
                cluster.start()
                url = cluster.url(cluster.create_database())
            else:
                url = f"sqlite:///{workdir / 'bench.db'}"
            try:
                quiet, busy = measure(url, args.recipients, args.samples, workdir)
            finally:
                if cluster is not None:
                    cluster.stop()
        q50, q99 = statistics.median(quiet) * 1000, percentile(quiet, 0.99) * 1000
        b50, b99 = statistics.median(busy) * 1000, percentile(busy, 0.99) * 1000
        print(f"  {backend:<12}{q50:>14.1f} ms{q99:>6.1f} ms{b50:>21.1f} ms{b99:>6.1f} ms{b50 / q50:>7.1f}x")


if __name__ == "__main__":
    main()
