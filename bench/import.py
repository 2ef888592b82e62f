"""Benchmark: import a generated subscriber CSV into a fresh database.

Prints rows per second for `newsletter subscribers import` (the library path the command
takes: detect the file's layout, validate and normalize every address, write subscribers,
memberships and consent events in one transaction) beside a baseline measured in the same
run: plain sqlite3 executemany of the same rows into a bare table. Then the peak Python
memory (tracemalloc) of the import at two file sizes, to show it does not grow with the
file (rows are streamed, duplicates are found in the database).

    python bench/import.py [--rows 100000] [--small 20000]

Addresses are spread over 2,000 domains, as a real list repeats its domains.
Goal: at least 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

from newsletter import importer
from newsletter.store import Store
from newsletter.store.records import ImportReport

DOMAINS = 2000
GOAL_ROWS_PER_SECOND = 20_000


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "city"])
        for i in range(rows):
            writer.writerow([f"reader.{i}@mail{i % DOMAINS}.example.org", f"Reader {i}", f"Town {i % 97}"])


def import_with_newsletter(csv_path: Path, db_path: Path) -> ImportReport:
    store = Store(f"sqlite:///{db_path}")
    store.lists.create("weekly")
    opened = importer.read(csv_path)
    report = ImportReport(str(csv_path), "weekly", False, opened.encoding, opened.delimiter, opened.format)
    store.subscribers.import_rows(opened.rows(), report, list_slug="weekly", source="import:bench")
    store.close()
    return report


def import_with_executemany(csv_path: Path, db_path: Path) -> None:
    """The floor: the same rows, no validation, one bare table, the store's pragmas."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE subscribers (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT, city TEXT)")
    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO subscribers (email, name, city) VALUES (?, ?, ?)", reader)
        conn.execute("COMMIT")
    conn.close()


def timed(action, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def peak_memory(csv_path: Path, db_path: Path) -> int:
    tracemalloc.start()
    import_with_newsletter(csv_path, db_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000, help="the smaller size for memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        big, small = work / "big.csv", work / "small.csv"
        generate(big, args.rows)
        generate(small, args.small)

        baseline = timed(import_with_executemany, big, work / "baseline.db")
        started = time.perf_counter()
        report = import_with_newsletter(big, work / "newsletter.db")
        ours = time.perf_counter() - started
        assert (report.added, len(report.skipped)) == (args.rows, 0), report.as_json()

        small_peak = peak_memory(small, work / "small.db")
        big_peak = peak_memory(big, work / "big.db")

    ours_rate, base_rate = args.rows / ours, args.rows / baseline
    print(f"rows: {args.rows:,} ({DOMAINS:,} domains), one transaction, fresh SQLite database")
    print(f"newsletter import:         {ours:6.2f} s  {ours_rate:9,.0f} rows/s")
    print(f"sqlite3 executemany floor: {baseline:6.2f} s  {base_rate:9,.0f} rows/s  "
          f"(import takes {ours / baseline:.1f}x as long)")
    print(f"peak Python memory: {small_peak / 2**20:5.1f} MiB at {args.small:,} rows, "
          f"{big_peak / 2**20:5.1f} MiB at {args.rows:,} rows")
    verdict = "met" if ours_rate >= GOAL_ROWS_PER_SECOND else "NOT met"
    print(f"goal {GOAL_ROWS_PER_SECOND:,} rows/s: {verdict}")


if __name__ == "__main__":
    main()
