"""Sending throughput and CPU per message, beside Postfix's own client in the same run.

    python bench/send.py [--recipients 10000] [--connections 4] [--workers 1,2,4]
                         [--repeat 3] [--memory 10000,100000] [--no-memory]

The sink is Postfix's `smtp-sink` (Debian's `postfix` package; as root it runs as
`nobody`), else a minimal asyncio SMTP sink in its own process. The sample project
(config.toml and articles/ of this repository) is copied to a temporary folder and given
N generated subscribers on SQLite. Each measured run is a fresh process:

- baselines: Postfix's `smtp-source` (C) pushing a message of the same size over the same
  number of persistent sessions (`-d`), where it is installed; and plain smtplib pushing
  the very bytes the sender builds over the same number of connections;
- sender: `newsletter send` as the library does it (sending.execute: record the issue,
  then claim, fill, send and record, in this process or in `--workers` sender processes
  sharing the connections), without and with DKIM (a 2048-bit RSA key). CPU is counted
  over every process of the send (the sender and its workers, not the sink);
- memory: one sender's peak RSS for each list size in --memory.

Prints medians of --repeat runs and the goals: the default configuration (workers
"auto": one process on SQLite) at least half of smtp-source's messages per second (of smtplib's,
without Postfix); at most 0.5 ms of CPU per message without DKIM; peak memory at the
largest list at most 1.3 times that at the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from ports import free_port  # noqa: E402

from newsletter.config import DeliverySettings  # noqa: E402
from newsletter.message import Recipient  # noqa: E402
from newsletter.store import Store  # noqa: E402

SENDER = "news@example.org"


# -- the sink ---------------------------------------------------------------------------


async def _sink_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while line := await reader.readline():
            command = line[:4].upper()
            if command == b"EHLO":
                writer.write(b"250-sink\r\n250-SIZE 100000000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif command == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 2.0.0 OK\r\n")
            elif command == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def _serve_sink(port: int) -> None:
    server = await asyncio.start_server(_sink_session, "127.0.0.1", port, limit=1 << 26)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class Sink:
    """Postfix's smtp-sink where installed, else the asyncio sink above; its own process."""

    def __init__(self, port: int) -> None:
        self.port = port
        binary = shutil.which("smtp-sink")
        self.postfix = binary is not None
        if binary:
            as_user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
            self.process = subprocess.Popen([binary, *as_user, f"127.0.0.1:{port}", "1000"])
            _wait_for_port(port)
        else:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--sink", str(port)], stdout=subprocess.PIPE, text=True
            )
            assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the SMTP sink did not start on port {port}")


# -- the project ------------------------------------------------------------------------


def make_project(root: Path, port: int, connections: int, dkim_key: Path | None) -> Path:
    """A copy of the sample project that sends to the sink; returns its config path."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "articles").exists():
        shutil.copytree(REPO / "articles", root / "articles")
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    text = text.replace('transport = "outbox"', 'transport = "smtp"')
    # Over SMTP the config needs an https base_url on a public host (config.py).
    text = text.replace('base_url = "http://127.0.0.1:8000"', 'base_url = "https://news.example.org"')
    text = text.replace("port = 587", f"port = {port}")
    text = text.replace('security = "starttls"', 'security = "none"')
    text = text.replace("connections = 4", f"connections = {connections}")
    # One article: a message of about 25 KB, near the 20 KB the figures are quoted for.
    text = text.replace("max_articles = 10", "max_articles = 1")
    if dkim_key is not None:
        text += f'\n[dkim]\ndomain = "example.org"\nselector = "bench"\nprivate_key = "{dkim_key}"\n'
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_database(path: Path, recipients: int) -> None:
    """A database file with one list of `recipients` confirmed subscribers."""
    from newsletter.store.records import CONFIRMED, ImportReport, ImportRow

    store = Store(f"sqlite:///{path}")
    store.lists.create("weekly", "Weekly")
    rows = (
        ImportRow(n + 2, f"reader{n:07d}@example.org", f"Reader {n}", CONFIRMED, False, None, {})
        for n in range(recipients)
    )
    report = ImportReport(file="bench", list_slug="weekly", dry_run=False)
    store.subscribers.import_rows(rows, report, list_slug="weekly", source="bench")
    store.close()


def make_dkim_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


# -- one measured run (a child process) ---------------------------------------------------


def run_sender(config_path: Path, database: Path, workers: int) -> dict[str, float]:
    from newsletter.config import load_config
    from newsletter.sending import execute, prepare_send

    config = load_config(config_path)
    store = fresh_store(config.database.url, database)
    started = time.perf_counter()
    plan = prepare_send(config, store, "weekly")
    render_seconds = time.perf_counter() - started
    wall, cpu = time.perf_counter(), cpu_with_children()
    report = execute(config, store, plan, workers=workers)
    wall, cpu = time.perf_counter() - wall, cpu_with_children() - cpu
    assert report.status == "done" and report.counts.failed == 0, report
    size = len(plan.template(config).fill(sample_recipient()))
    return {
        "sent": report.counts.sent,
        "seconds": wall,
        "cpu": cpu,
        "render": render_seconds,
        "message_bytes": size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def cpu_with_children() -> float:
    """User and system time of this process and of its finished worker processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_baseline(config_path: Path, database: Path, recipients: int) -> dict[str, float]:
    """Plain smtplib: the same bytes, the same number of connections, nothing else."""
    from newsletter.config import load_config
    from newsletter.sending import prepare_send

    config = load_config(config_path)
    store = fresh_store(config.database.url, database)
    data = prepare_send(config, store, "weekly").template(config).fill(sample_recipient())
    connections = config.smtp.connections

    def push(share: range) -> None:
        client = smtplib.SMTP(config.smtp.host, config.smtp.port)
        for n in share:
            client.sendmail(SENDER, [f"reader{n:07d}@example.org"], data)
        client.quit()

    threads = [
        threading.Thread(target=push, args=(range(i, recipients, connections),))
        for i in range(connections)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "sent": recipients,
        "seconds": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "message_bytes": len(data),
    }


def fresh_store(url: str, database: Path) -> Store:
    """The project's database replaced by a copy of `database` (no issue sent yet)."""
    target = Path(url.removeprefix("sqlite:///"))
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(database, target)
    return Store(url)


def sample_recipient() -> Recipient:
    return Recipient("reader0000000@example.org", "Reader 0", 1, "1")


def measure(kind: str, config_path: Path, database: Path, count: int) -> dict[str, float]:
    """One run in a fresh process; `count` is the recipients (baseline) or the workers."""
    result = subprocess.run(
        [sys.executable, __file__, "--run", kind, str(config_path), str(database), str(count)],
        capture_output=True, text=True, env={**os.environ, "NEWSLETTER_SECRET": "bench-secret"},
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- Postfix, where it is installed ---------------------------------------------------------


def smtp_source_rate(port: int, recipients: int, connections: int, size: int) -> float | None:
    """smtp-source's msg/s: `connections` persistent sessions (-d), messages of `size` bytes."""
    source = shutil.which("smtp-source")
    if not source:
        return None
    started = time.perf_counter()
    subprocess.run(
        [source, "-d", "-s", str(connections), "-m", str(recipients), "-l", str(size),
         "-f", SENDER, "-t", "reader@example.org", f"127.0.0.1:{port}"],
        check=True,
    )
    return recipients / (time.perf_counter() - started)



# -- the report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4", help="sender processes to measure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", default="10000,100000", help="list sizes for peak memory")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()

    sink = Sink(free_port())
    try:
        with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
            report(Path(tmp), sink, args)
    finally:
        sink.stop()


def report(tmp: Path, sink: Sink, args: argparse.Namespace) -> None:
    key = tmp / "dkim.pem"
    make_dkim_key(key)
    plain = make_project(tmp / "plain", sink.port, args.connections, None)
    signed = make_project(tmp / "signed", sink.port, args.connections, key)
    n = args.recipients
    database = tmp / f"list-{n}.db"
    make_database(database, n)
    # What [delivery] workers = "auto" gives for this project (SQLite) on this machine.
    default_workers = min(DeliverySettings().worker_count(single_writer=True), args.connections)
    counts = sorted({int(w) for w in args.workers.split(",")} | {default_workers})

    runs: dict[str, list[dict[str, float]]] = {"smtplib": []}
    rows = [(f"{w} worker{'s' if w > 1 else ''}{' + DKIM' if dkim else ''}", w, dkim)
            for dkim in (False, True) for w in counts]
    for label, _, _ in rows:
        runs[label] = []
    source_rates = []
    size = 0
    for _ in range(args.repeat):  # interleaved, so drift in the machine hits all alike
        runs["smtplib"].append(measure("baseline", plain, database, n))
        size = int(runs["smtplib"][-1]["message_bytes"])
        rate = smtp_source_rate(sink.port, n, args.connections, size)
        if rate is not None:
            source_rates.append(rate)
        for label, workers, dkim in rows:
            runs[label].append(measure("sender", signed if dkim else plain, database, workers))

    def median(kind: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[kind])

    sink_name = "Postfix smtp-sink" if sink.postfix else "an asyncio sink (Postfix not installed)"
    print(f"{n} recipients, {args.connections} connections, message {size / 1024:.1f} KB, into "
          f"{sink_name}; median of {args.repeat} runs, each a fresh process; "
          f"{os.cpu_count()} CPU cores, shared with the sink")
    rates = {kind: n / median(kind, "seconds") for kind in runs}
    print(f"  {'':<30}{'msg/s':>10}{'CPU/message':>14}")
    if source_rates:
        print(f"  {'smtp-source -d (C baseline)':<30}{statistics.median(source_rates):>10.0f}")
    for kind in runs:
        print(f"  {kind:<30}{rates[kind]:>10.0f}{median(kind, 'cpu') / n * 1000:>11.3f} ms")
    print(f"  render once per issue: {median(rows[0][0], 'render') * 1000:.0f} ms (not in the figures above)")

    default = next(label for label, workers, dkim in rows if workers == default_workers and not dkim)
    baseline_name, baseline = (
        ("smtp-source", statistics.median(source_rates)) if source_rates else ("smtplib", rates["smtplib"])
    )
    ratio = rates[default] / baseline
    cpu = min(median(label, "cpu") for label, _, dkim in rows if not dkim) / n * 1000
    print("goals:")
    print(f"  default ({default}) / {baseline_name} = {ratio:.2f} (goal >= 0.5: {_verdict(ratio >= 0.5)})")
    print(f"  CPU per message without DKIM {cpu:.3f} ms at best (goal <= 0.5 ms: {_verdict(cpu <= 0.5)})")

    if not args.no_memory:
        memory(tmp, plain, [int(s) for s in args.memory.split(",")], {n: database})


def memory(tmp: Path, config: Path, sizes: list[int], databases: dict[int, Path]) -> None:
    peaks = {}
    for count in sizes:
        database = databases.get(count) or tmp / f"list-{count}.db"
        if not database.exists():
            make_database(database, count)
        run = measure("sender", config, database, 1)
        peaks[count] = run["peak_rss_mb"]
        print(f"  peak memory of one sender to {count:>7} recipients: {peaks[count]:.1f} MB "
              f"({run['sent'] / run['seconds']:.0f} msg/s)")
    growth = peaks[sizes[-1]] / peaks[sizes[0]]
    print(f"  memory {sizes[-1]} / {sizes[0]} = {growth:.2f} (goal <= 1.3: {_verdict(growth <= 1.3)})")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--sink":
        asyncio.run(_serve_sink(int(sys.argv[2])))
    elif len(sys.argv) > 2 and sys.argv[1] == "--run":
        kind, config_path, database, count = sys.argv[2:6]
        if kind == "baseline":
            outcome = run_baseline(Path(config_path), Path(database), int(count))
        else:
            outcome = run_sender(Path(config_path), Path(database), int(count))
        print(json.dumps(outcome))
    else:
        main()
