"""The command line starts at once: `--help` loads none of the heavy libraries, and a
sender that joins an issue loads nothing of composing or rendering."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "sqlalchemy", "jinja2", "mjml", "premailer", "feedparser", "markdown_it", "nh3",
    "apscheduler", "starlette", "uvicorn", "rich", "lxml", "email_validator", "cryptography",
)
RENDERING = ("jinja2", "mjml", "premailer", "feedparser", "markdown_it", "lxml", "apscheduler", "starlette")


def loaded_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_help_loads_none_of_the_heavy_libraries() -> None:
    help_run = "from newsletter.cli import app\nfrom typer.main import get_command\n" \
        "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n" \
        "    try:\n        get_command(app)(['--help'], prog_name='newsletter')\n" \
        "    except SystemExit:\n        pass"
    assert loaded_after(help_run) == []
    for group in ("lists", "subscribers", "db", "schedule"):
        assert loaded_after(help_run.replace("['--help']", f"[{group!r}, '--help']")) == [], group


def test_a_worker_loads_nothing_of_composing_or_rendering() -> None:
    loaded = loaded_after("import newsletter.sending.worker, newsletter.sending.run")
    assert "sqlalchemy" in loaded and "cryptography" in loaded  # it does need the store and DKIM
    assert [name for name in loaded if name in RENDERING] == []
