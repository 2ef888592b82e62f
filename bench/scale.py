"""A million subscribers on PostgreSQL: import, record, memory and sending, beside baselines.

    python bench/scale.py [--subscribers 1000000] [--workers 1,2,4] [--connections 4]

Starts a throw-away PostgreSQL cluster (Debian's `postgresql` package; durable: fsync on)
and Postfix's `smtp-sink` (else the asyncio sink of bench/send.py), copies the sample
project with one article (a message of about 25 KB), and measures, each step a fresh
process:

- import: `newsletter subscribers import` of a generated CSV of N rows, rows/s and peak
  memory, beside psql's `\\copy` of the same file into a bare table (the floor);
- record: the time to record an issue with its N delivery rows (one transaction);
- send: msg/s into the sink with each number of worker processes (the connections shared
  among them), CPU per message over all processes, and the peak memory of the sending
  process and of its largest worker, beside `smtp-source -d` over as many sessions.

Each send starts from a copy of the imported database (CREATE DATABASE ... TEMPLATE), so
every run sends the same issue to all N. It takes a while: at 1,000,000 about as long as
three full sends. It is a benchmark, not a test; CI does not run it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH), str(REPO / "tests")]

from postgres_server import PostgresCluster, _binaries  # noqa: E402
from ports import free_port  # noqa: E402
from send import Sink, cpu_with_children, make_project, sample_recipient, smtp_source_rate  # noqa: E402

os.environ.setdefault("NEWSLETTER_SECRET", "bench-secret")  # _message_size runs in this process
ENV = dict(os.environ)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name"])
        writer.writerows((f"reader{n:07d}@example.org", f"Reader {n}") for n in range(rows))


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run a command; its wall time in seconds and its peak RSS in MB."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode() if process.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def newsletter(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "--config", str(config), *args]


def psql_copy_seconds(cluster: PostgresCluster, database: str, file: Path) -> float:
    """The floor for an import: psql's \\copy of the same CSV into a bare table."""
    psql = [str(cluster.bin_dir / "psql"), "-q", "-h", "127.0.0.1", "-p", str(cluster.port),
            "-U", cluster.user, "-d", database, "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run([*psql, "CREATE TABLE floor (email text, name text)"], check=True)
    started = time.perf_counter()
    subprocess.run([*psql, f"\\copy floor FROM '{file}' WITH (FORMAT csv, HEADER)"], check=True)
    seconds = time.perf_counter() - started
    subprocess.run([*psql, "DROP TABLE floor"], check=True)
    return seconds


def use_database(config: Path, url: str) -> None:
    """Point the project's [database] url at `url`."""
    text = config.read_text(encoding="utf-8")
    text = re.sub(r'^url = "(sqlite|postgresql)[^"]*"$', f'url = "{url}"', text, count=1, flags=re.M)
    config.write_text(text, encoding="utf-8")


# -- the child runs ---------------------------------------------------------------------


def record_issue(config_path: Path) -> dict[str, float]:
    from newsletter.config import load_config
    from newsletter.sending import NewIssue, prepare_send
    from newsletter.store import open_store

    config = load_config(config_path)
    store = open_store(config)
    plan = prepare_send(config, store, "weekly")
    assert isinstance(plan, NewIssue), plan
    started = time.perf_counter()
    issue = plan.take(store)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "recipients": store.ledger.counts(issue.id).pending}


def send_issue(config_path: Path, workers: int) -> dict[str, float]:
    from newsletter.config import load_config
    from newsletter.sending import execute, prepare_send
    from newsletter.store import open_store

    config = load_config(config_path)
    store = open_store(config)
    plan = prepare_send(config, store, "weekly")  # the recorded issue, to resume
    wall, cpu = time.perf_counter(), cpu_with_children()
    report = execute(config, store, plan, workers=workers)
    wall, cpu = time.perf_counter() - wall, cpu_with_children() - cpu
    assert report.status == "done" and report.counts.failed == 0, report
    return {
        "sent": report.counts.sent,
        "seconds": wall,
        "cpu": cpu,
        "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def child(*args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=ENV)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- the report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    bin_dir = _binaries()
    if bin_dir is None:
        raise SystemExit("bench/scale.py needs PostgreSQL: install Debian's `postgresql` package")
    cluster = PostgresCluster(bin_dir, durable=True)
    cluster.start()
    sink = Sink(free_port())
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            report(Path(tmp), cluster, sink, args)
    finally:
        sink.stop()
        cluster.stop()


def report(tmp: Path, cluster: PostgresCluster, sink: Sink, args: argparse.Namespace) -> None:
    n = args.subscribers
    people = tmp / "people.csv"
    write_csv(people, n)
    print(f"{n} subscribers on PostgreSQL (fsync on), {args.connections} connections, "
          f"{os.cpu_count()} CPU cores shared by the database, the sink and the senders")

    cluster.admin("CREATE DATABASE base")
    config = make_project(tmp / "project", sink.port, args.connections, None)
    use_database(config, cluster.url("base"))
    subprocess.run(newsletter(config, "lists", "add", "weekly"), env=ENV, check=True, capture_output=True)
    seconds, peak = timed(newsletter(config, "subscribers", "import", str(people), "--list", "weekly"), tmp)
    floor = psql_copy_seconds(cluster, "base", people)
    print(f"  import: {n / seconds:,.0f} rows/s ({seconds:.1f} s, peak {peak:.0f} MB); "
          f"psql \\copy into a bare table: {n / floor:,.0f} rows/s ({seconds / floor:.1f}x its time)")

    size = 0
    for number, workers in enumerate(int(w) for w in args.workers.split(",")):
        name = f"send{number}"
        cluster.admin(f"CREATE DATABASE {name} TEMPLATE base")
        use_database(config, cluster.url(name))
        recorded = child("--record", str(config))
        if number == 0:
            print(f"  record an issue with {recorded['recipients']:,.0f} deliveries: {recorded['seconds']:.1f} s")
            size = _message_size(config)
        sent = child("--send", str(config), str(workers))
        rate = sent["sent"] / sent["seconds"]
        print(f"  {workers} worker{'s' if workers > 1 else ' '}: {rate:,.0f} msg/s, a full send in "
              f"{sent['seconds'] / 60:.1f} min, CPU {sent['cpu'] / sent['sent'] * 1000:.3f} ms/message, "
              f"peak memory: sending process {sent['parent_mb']:.0f} MB, largest worker {sent['worker_mb']:.0f} MB")
        cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
    baseline = smtp_source_rate(sink.port, min(n, 100_000), args.connections, size)
    if baseline:
        print(f"  smtp-source -d, {args.connections} sessions, same size: {baseline:,.0f} msg/s "
              f"(a full send in {n / baseline / 60:.1f} min)")


def _message_size(config: Path) -> int:
    from newsletter.config import load_config
    from newsletter.sending import prepare_send
    from newsletter.store import open_store

    loaded = load_config(config)
    plan = prepare_send(loaded, open_store(loaded), "weekly")
    return len(plan.template(loaded).fill(sample_recipient()))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--record":
        print(json.dumps(record_issue(Path(sys.argv[2]))))
    elif len(sys.argv) > 3 and sys.argv[1] == "--send":
        print(json.dumps(send_issue(Path(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
