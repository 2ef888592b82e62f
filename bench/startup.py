"""How long the command line takes to start, beside Python alone and sqlite-utils.

    python bench/startup.py [--repeat 10]

Runs each command `--repeat` times (after one warm-up run, so bytecode is cached) and
prints the median wall time: `python -c pass` (the floor), `newsletter --help`,
`newsletter lists ls` (config, store and a query on the sample project, in a temporary
copy), and `sqlite-utils --help` where it is installed (pip install sqlite-utils).
Goal: `newsletter --help` no slower than `sqlite-utils --help`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def median_seconds(command: list[str], repeat: int, cwd: Path) -> float:
    env = {**os.environ, "NEWSLETTER_SECRET": "bench-secret"}
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    newsletter = shutil.which("newsletter") or sys.exit("install the project first: pip install -e .")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        project = Path(tmp)
        shutil.copy(REPO / "config.toml", project)
        shutil.copytree(REPO / "articles", project / "articles")
        subprocess.run([newsletter, "lists", "add", "weekly"], cwd=project, capture_output=True, check=True)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "newsletter --help": [newsletter, "--help"],
            "newsletter lists ls": [newsletter, "lists", "ls"],
        }
        sqlite_utils = shutil.which("sqlite-utils")
        if sqlite_utils:
            commands["sqlite-utils --help"] = [sqlite_utils, "--help"]
        print(f"median of {args.repeat} runs, wall time")
        results = {name: median_seconds(command, args.repeat, project) for name, command in commands.items()}
    for name, seconds in results.items():
        print(f"  {name:<24}{seconds * 1000:>8.0f} ms")
    if not sqlite_utils:
        print("  sqlite-utils --help        not installed (pip install sqlite-utils), skipped")
        return
    ratio = results["newsletter --help"] / results["sqlite-utils --help"]
    verdict = "met" if ratio <= 1.0 else "MISSED"
    print(f"goal: newsletter --help / sqlite-utils --help = {ratio:.2f} (goal <= 1: {verdict})")


if __name__ == "__main__":
    main()
