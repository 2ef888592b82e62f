"""Sending throughput, CPU per recipient and peak memory, against a baseline in the same run.

    python bench/send.py [--recipients 10000] [--connections 4] [--repeat 3]
                         [--memory 10000,100000] [--no-memory]

A minimal asyncio SMTP sink (its own process, so its CPU is not counted) swallows every
message. The sample project (config.toml and articles/ of this repository) is copied to a
temporary folder and given N generated subscribers. Each measured run is a fresh process:

- baseline: plain smtplib pushing one prebuilt message (the same bytes the sender builds)
  to the same number of recipients over the same number of connections;
- sender: `newsletter send` as the library does it (sending.execute: claim, fill, send,
  record), without and with DKIM (a 2048-bit RSA key);
- memory: the sender's peak RSS for each list size in --memory.

Prints medians of --repeat runs and the goals: at least half the baseline's messages per
second; at most 1 ms of CPU per recipient without DKIM and 3 ms with; peak memory at the
largest list at most 1.3 times that at the smallest. Postfix's smtp-source/smtp-sink are
used as a second baseline where they are installed.
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
sys.path.insert(0, str(REPO))

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


def start_sink(port: int) -> subprocess.Popen[str]:
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    return sink


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


def run_sender(config_path: Path, database: Path) -> dict[str, float]:
    from newsletter.config import load_config
    from newsletter.sending import execute, prepare_send

    config = load_config(config_path)
    store = fresh_store(config.database.url, database)
    started = time.perf_counter()
    plan = prepare_send(config, store, "weekly")
    render_seconds = time.perf_counter() - started
    wall, cpu = time.perf_counter(), time.process_time()
    report = execute(config, store, plan)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.status == "done" and report.counts.failed == 0, report
    size = len(plan.template(config).fill(_recipient()))
    return {
        "sent": report.counts.sent,
        "seconds": wall,
        "cpu": cpu,
        "render": render_seconds,
        "message_bytes": size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_baseline(config_path: Path, database: Path, recipients: int) -> dict[str, float]:
    """Plain smtplib: the same bytes, the same number of connections, nothing else."""
    from newsletter.config import load_config
    from newsletter.sending import prepare_send

    config = load_config(config_path)
    store = fresh_store(config.database.url, database)
    data = prepare_send(config, store, "weekly").template(config).fill(_recipient())
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


def _recipient() -> Recipient:
    return Recipient("reader0000000@example.org", "Reader 0", 1, "1")


def measure(kind: str, config_path: Path, database: Path, recipients: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--run", kind, str(config_path), str(database), str(recipients)],
        capture_output=True, text=True, env={**os.environ, "NEWSLETTER_SECRET": "bench-secret"},
    )
    if result.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- Postfix, where it is installed ---------------------------------------------------------


def postfix_baseline(recipients: int, connections: int, size_kb: int) -> float | None:
    source, sink = shutil.which("smtp-source"), shutil.which("smtp-sink")
    if not source or not sink:
        return None
    port = _free_port()
    server = subprocess.Popen([sink, "-c", f"127.0.0.1:{port}", "1000"])
    try:
        time.sleep(0.3)
        started = time.perf_counter()
        subprocess.run(
            [source, "-s", str(connections), "-m", str(recipients), "-l", str(size_kb * 1024),
             f"127.0.0.1:{port}"],
            check=True,
        )
        return recipients / (time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", default="10000,100000", help="list sizes for peak memory")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()

    port = _free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
            report(Path(tmp), port, args)
    finally:
        sink.terminate()
        sink.wait()


def report(tmp: Path, port: int, args: argparse.Namespace) -> None:
    key = tmp / "dkim.pem"
    make_dkim_key(key)
    plain = make_project(tmp / "plain", port, args.connections, None)
    signed = make_project(tmp / "signed", port, args.connections, key)
    databases = {args.recipients: tmp / f"list-{args.recipients}.db"}
    make_database(databases[args.recipients], args.recipients)
    n = args.recipients

    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "sender": [], "sender+dkim": []}
    for _ in range(args.repeat):  # interleaved, so drift in the machine hits all alike
        runs["baseline"].append(measure("baseline", plain, databases[n], n))
        runs["sender"].append(measure("sender", plain, databases[n], n))
        runs["sender+dkim"].append(measure("sender", signed, databases[n], n))

    def median(kind: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[kind])

    size = runs["sender"][0]["message_bytes"]
    print(f"{n} recipients, {args.connections} connections, message {size / 1024:.1f} KB, "
          f"median of {args.repeat} runs (each a fresh process; the sink is another process)")
    rates = {kind: n / median(kind, "seconds") for kind in runs}
    print(f"  {'':<28}{'msg/s':>10}{'CPU/recipient':>16}")
    for kind in runs:
        print(f"  {kind:<28}{rates[kind]:>10.0f}{median(kind, 'cpu') / n * 1000:>13.3f} ms")
    print(f"  render once per issue: {median('sender', 'render') * 1000:.0f} ms (not in the figures above)")
    postfix = postfix_baseline(n, args.connections, round(size / 1024))
    print("  postfix smtp-source -> smtp-sink: "
          + (f"{postfix:.0f} msg/s" if postfix else "not installed, skipped"))

    ratio = rates["sender"] / rates["baseline"]
    cpu_plain = median("sender", "cpu") / n * 1000
    cpu_dkim = median("sender+dkim", "cpu") / n * 1000
    print("goals:")
    print(f"  throughput sender / baseline = {ratio:.2f} (goal >= 0.5: {_verdict(ratio >= 0.5)})")
    print(f"  CPU per recipient {cpu_plain:.3f} ms (goal <= 1 ms: {_verdict(cpu_plain <= 1)})")
    print(f"  CPU per recipient with DKIM {cpu_dkim:.3f} ms (goal <= 3 ms: {_verdict(cpu_dkim <= 3)})")

    if args.no_memory:
        return
    sizes = [int(s) for s in args.memory.split(",")]
    peaks = {}
    for count in sizes:
        database = databases.get(count) or tmp / f"list-{count}.db"
        if not database.exists():
            make_database(database, count)
        run = measure("sender", plain, database, count)
        peaks[count] = run["peak_rss_mb"]
        print(f"  peak memory sending to {count:>7} recipients: {peaks[count]:.1f} MB "
              f"({run['sent'] / run['seconds']:.0f} msg/s)")
    growth = peaks[sizes[-1]] / peaks[sizes[0]]
    print(f"  memory {sizes[-1]} / {sizes[0]} = {growth:.2f} (goal <= 1.3: {_verdict(growth <= 1.3)})")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--sink":
        asyncio.run(_serve_sink(int(sys.argv[2])))
    elif len(sys.argv) > 2 and sys.argv[1] == "--run":
        kind, config_path, database, recipients = sys.argv[2:6]
        if kind == "baseline":
            outcome = run_baseline(Path(config_path), Path(database), int(recipients))
        else:
            outcome = run_sender(Path(config_path), Path(database))
        print(json.dumps(outcome))
    else:
        main()
