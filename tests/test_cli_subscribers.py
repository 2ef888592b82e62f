"""`newsletter lists ...` and `newsletter subscribers ...` through typer's CliRunner."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from newsletter.cli import app

CSV = Path(__file__).parent / "fixtures" / "csv"
REPO = Path(__file__).parent.parent
TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")

runner = CliRunner()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "cli-test-secret")
    monkeypatch.setenv("COLUMNS", "100")  # rich tables: a fixed width, whatever the terminal


def invoke(project: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, ["--config", str(project / "config.toml"), *args], input=input)


def ok(project: Path, *args: str) -> str:
    result = invoke(project, *args)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout


def fails(project: Path, *args: str) -> str:
    """The error line of a command that must fail with exit code 1 and print nothing else."""
    result = invoke(project, *args)
    assert result.exit_code == 1 and result.stdout == "", result.output
    return result.stderr


# -- lists -----------------------------------------------------------------------------------


def test_lists_add_ls_and_rm(project: Path) -> None:
    assert ok(project, "lists", "add", "weekly", "--name", "Weekly") == (
        "Created list weekly (Weekly, single opt-in).\n"
    )
    assert ok(project, "lists", "add", "doi", "--double-opt-in", "--description", "Confirmed") == (
        "Created list doi (doi, double opt-in).\n"
    )
    ok(project, "subscribers", "add", "a@example.org", "--list", "weekly")
    ok(project, "subscribers", "add", "b@example.org", "--list", "doi")
    assert ok(project, "lists", "ls") == (  # not a terminal: tab-separated
        "List\tName\tOpt-in\tConfirmed\tUnconfirmed\tUnsubscribed\tBounced\tCreated\n"
        f"doi\tdoi\tdouble\t0\t1\t0\t0\t{TODAY}\n"
        f"weekly\tWeekly\tsingle\t1\t0\t0\t0\t{TODAY}\n"
    )
    listed = json.loads(ok(project, "lists", "ls", "--json"))
    assert [{k: v for k, v in entry.items() if k != "created"} for entry in listed] == [
        {"slug": "doi", "name": "doi", "description": "Confirmed", "double_opt_in": True,
         "unconfirmed": 1, "confirmed": 0, "unsubscribed": 0, "bounced": 0},
        {"slug": "weekly", "name": "Weekly", "description": "", "double_opt_in": False,
         "unconfirmed": 0, "confirmed": 1, "unsubscribed": 0, "bounced": 0},
    ]
    assert ok(project, "lists", "rm", "doi", "--yes") == "Removed list doi (1 membership(s)).\n"
    assert [entry["slug"] for entry in json.loads(ok(project, "lists", "ls", "--json"))] == ["weekly"]


def test_lists_errors_are_one_line_and_exit_1(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    assert fails(project, "lists", "add", "weekly") == (
        "Error: list 'weekly' already exists; pick another slug "
        "(or remove it first with `newsletter lists rm weekly`)\n"
    )
    assert fails(project, "lists", "rm", "monthly", "--yes") == (
        "Error: no list 'monthly'; create it with `newsletter lists add monthly`\n"
    )
    result = invoke(project, "lists", "rm", "weekly", input="n\n")
    assert result.exit_code == 1
    assert result.stderr == "Error: not confirmed; nothing was done (pass --yes to skip the question)\n"
    assert "weekly" in ok(project, "lists", "ls")


def test_an_empty_database_says_how_to_start(project: Path) -> None:
    assert ok(project, "lists", "ls") == "No lists yet: create one with `newsletter lists add SLUG`.\n"
    assert ok(project, "lists", "ls", "--json") == "[]\n"
    assert ok(project, "subscribers", "ls") == "No subscribers match.\n"


# -- subscribers add / ls / unsubscribe / block / forget ---------------------------------------


def test_subscribers_add_reports_what_happened(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    ok(project, "lists", "add", "doi", "--double-opt-in")
    assert ok(project, "subscribers", "add", "Ann@Example.org", "--list", "weekly", "--name", "Ann") == (
        "Added Ann@example.org to weekly (confirmed).\n"
    )
    assert ok(project, "subscribers", "add", "ann@example.org", "--list", "weekly") == (
        "Ann@example.org is already on weekly (confirmed).\n"
    )
    assert ok(project, "subscribers", "add", "ann@example.org", "--list", "doi") == (
        "Added Ann@example.org to doi (unconfirmed).\n"
        "Sent a confirmation link to Ann@example.org.\n"
    )
    assert ok(project, "subscribers", "add", "ann@example.org", "--list", "doi", "--confirmed") == (
        "Confirmed Ann@example.org on doi.\n"
    )
    assert ok(project, "subscribers", "unsubscribe", "ann@example.org", "--list", "doi") == (
        "Unsubscribed ann@example.org from doi.\n"
    )
    assert ok(project, "subscribers", "unsubscribe", "ann@example.org", "--list", "doi") == (
        "ann@example.org was already unsubscribed from doi.\n"
    )
    assert ok(project, "subscribers", "add", "ann@example.org", "--list", "doi") == (
        "Resubscribed Ann@example.org to doi (unconfirmed).\n"
        "Sent a confirmation link to Ann@example.org.\n"
    )
    assert ok(project, "subscribers", "unsubscribe", "ann@example.org") == (
        "Unsubscribed ann@example.org from doi, weekly.\n"
    )
    assert ok(project, "subscribers", "unsubscribe", "ann@example.org") == (
        "ann@example.org is not subscribed to any list.\n"
    )


def test_subscribers_add_errors(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    assert fails(project, "subscribers", "add", "bad@", "--list", "weekly") == (
        "Error: invalid address 'bad@': There must be something after the @-sign.\n"
    )
    assert fails(project, "subscribers", "add", "a@example.org", "--list", "nope") == (
        "Error: no list 'nope'; create it with `newsletter lists add nope`\n"
    )
    ok(project, "subscribers", "block", "@spam.example")
    assert fails(project, "subscribers", "add", "x@spam.example", "--list", "weekly") == (
        "Error: x@spam.example is blocked: it is on the suppression list "
        "(`newsletter subscribers unblock x@spam.example` lifts it)\n"
    )
    assert fails(project, "subscribers", "unsubscribe", "who@example.org") == (
        "Error: no subscriber who@example.org; see `newsletter subscribers ls`\n"
    )


def test_subscribers_ls_table_json_and_filters(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    ok(project, "lists", "add", "doi", "--double-opt-in")
    ok(project, "subscribers", "add", "ann@example.org", "--list", "weekly", "--name", "Ann")
    ok(project, "subscribers", "add", "ben@example.org", "--list", "doi")
    ok(project, "subscribers", "add", "cy@example.org", "--list", "weekly")
    assert ok(project, "subscribers", "block", "cy@example.org") == (
        "Blocked cy@example.org: it will not be mailed again.\n"
    )
    assert ok(project, "subscribers", "ls") == (
        "Email\tName\tStatus\tLists\tBounces\tCreated\n"
        f"ann@example.org\tAnn\tconfirmed\tweekly\t0\t{TODAY}\n"
        f"ben@example.org\t\tunconfirmed\tdoi\t0\t{TODAY}\n"
        f"cy@example.org\t\tblocked\tweekly\t0\t{TODAY}\n"
    )
    listed = json.loads(ok(project, "subscribers", "ls", "--list", "weekly", "--json"))
    assert [{k: v for k, v in item.items() if k != "created"} for item in listed] == [
        {"email": "ann@example.org", "name": "Ann", "status": "confirmed", "lists": ["weekly"],
         "memberships": {"weekly": "confirmed"}, "attributes": {}, "bounces": 0},
        {"email": "cy@example.org", "name": "", "status": "blocked", "lists": ["weekly"],
         "memberships": {"weekly": "confirmed"}, "attributes": {}, "bounces": 0},
    ]
    assert datetime.fromisoformat(listed[0]["created"]).tzinfo is not None
    emails = lambda *args: [i["email"] for i in json.loads(ok(project, "subscribers", "ls", "--json", *args))]
    assert emails("--status", "unconfirmed") == ["ben@example.org"]
    assert emails("--status", "blocked") == ["cy@example.org"]
    assert emails("--list", "weekly", "--status", "confirmed") == ["ann@example.org"]
    result = invoke(project, "subscribers", "ls", "--status", "gone")
    assert result.exit_code == 2 and "Invalid value for '--status'" in result.output


def test_block_unblock_and_forget(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    ok(project, "subscribers", "add", "fay@example.org", "--list", "weekly")
    assert ok(project, "subscribers", "block", "@Spam.Example") == (
        "Blocked @spam.example: no address there will be mailed.\n"
    )
    assert ok(project, "subscribers", "unblock", "@spam.example") == "Unblocked @spam.example.\n"
    assert ok(project, "subscribers", "unblock", "@spam.example") == "@spam.example was not blocked.\n"
    assert ok(project, "subscribers", "forget", "fay@example.org", "--yes") == (
        "Forgot fay@example.org: their data is erased; only a keyed hash remains.\n"
    )
    assert ok(project, "subscribers", "ls", "--json") == "[]\n"
    assert fails(project, "subscribers", "add", "fay@example.org", "--list", "weekly") == (
        "Error: fay@example.org is forgotten: it is on the suppression list "
        "(`newsletter subscribers unblock fay@example.org` lifts it)\n"
    )
    assert ok(project, "subscribers", "forget", "nobody@example.org", "--yes") == (
        "No subscriber nobody@example.org; a keyed hash now keeps the address from imports.\n"
    )


def test_forget_needs_the_secret(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET")
    error = fails(project, "subscribers", "forget", "fay@example.org", "--yes")
    assert error.startswith("Error: the token signing secret is not set: export NEWSLETTER_SECRET=...")


# -- import / export -----------------------------------------------------------------------------


def test_import_reports_added_updated_and_each_skipped_row(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    path = tmp_path / "people.csv"
    path.write_text("email,name\nann@example.org,Ann\nnope,No\nANN@example.org,Dup\n", encoding="utf-8")
    assert ok(project, "subscribers", "import", str(path), "--list", "weekly", "--dry-run") == (
        f"Dry run, nothing written: {path} (plain, utf-8, comma-separated) into weekly: "
        "1 added, 0 updated, 0 unchanged, 2 skipped.\n"
        "  line 3: nope: invalid address (An email address must have an @-sign.)\n"
        "  line 4: ANN@example.org: duplicate within the file (first on line 2)\n"
    )
    assert ok(project, "subscribers", "ls", "--json") == "[]\n"
    assert ok(project, "subscribers", "import", str(path), "--list", "weekly").startswith(
        f"{path} (plain, utf-8, comma-separated) into weekly: 1 added, 0 updated, 0 unchanged, 2 skipped.\n"
    )
    path.write_text("email,name\nann@example.org,Ann Again\n", encoding="utf-8")
    report = json.loads(ok(project, "subscribers", "import", str(path), "--list", "weekly", "--json"))
    assert report == {
        "file": str(path), "list": "weekly", "dry_run": False, "format": "plain",
        "encoding": "utf-8", "delimiter": ",", "rows": 1, "added": 0, "updated": 1,
        "unchanged": 0, "skipped": [],
    }


def test_import_errors_name_the_file_and_write_nothing(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert fails(project, "subscribers", "import", str(empty), "--list", "weekly") == (
        f"Error: {empty} is empty; export the subscribers again\n"
    )
    assert fails(project, "subscribers", "import", str(tmp_path / "none.csv"), "--list", "weekly") == (
        f"Error: {tmp_path / 'none.csv'} does not exist; check the file name\n"
    )
    no_email = tmp_path / "no_email.csv"
    no_email.write_text("name,city\nAnn,Oslo\n", encoding="utf-8")
    assert fails(project, "subscribers", "import", str(no_email), "--list", "weekly") == (
        f"Error: {no_email}: no email column in the header (name, city); "
        "name the column of addresses 'email'\n"
    )
    assert fails(project, "subscribers", "import", str(CSV / "plain.csv"), "--list", "monthly") == (
        "Error: no list 'monthly'; create it with `newsletter lists add monthly`\n"
    )
    assert fails(project, "subscribers", "import", str(CSV / "plain.csv")) == (
        f"Error: {CSV / 'plain.csv'} has no list column; name the list to import into with --list SLUG\n"
    )
    assert ok(project, "subscribers", "ls", "--json") == "[]\n"


def test_export_round_trips_through_import(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    ok(project, "subscribers", "import", str(CSV / "buttondown.csv"), "--list", "weekly")
    exported = ok(project, "subscribers", "export", "--list", "weekly")
    assert exported.splitlines() == [
        "email,name,status,list,blocked,attributes",
        'bea@example.org,,confirmed,weekly,,"{""id"": ""b1"", ""creation_date"": ""2024-03-03T09:00:00Z"", ""metadata"": ""{}"", ""tags"": ""weekly"", ""utm_source"": ""twitter""}"',
        'bob.new@example.com,,unconfirmed,weekly,,"{""id"": ""b2"", ""creation_date"": ""2024-03-04T09:00:00Z"", ""metadata"": ""{}""}"',
        'bill@example.org,,unsubscribed,weekly,,"{""id"": ""b3"", ""creation_date"": ""2024-03-05T09:00:00Z"", ""metadata"": ""{}""}"',
        'bart@example.com,,unsubscribed,weekly,yes,"{""id"": ""b4"", ""creation_date"": ""2024-03-06T09:00:00Z"", ""metadata"": ""{}""}"',
    ]
    target = tmp_path / "out.csv"
    assert ok(project, "subscribers", "export", "-o", str(target)) == f"Wrote 4 row(s) to {target}.\n"
    before = ok(project, "subscribers", "ls", "--json")
    (project / "subscribers" / "newsletter.db").unlink()
    ok(project, "lists", "add", "weekly")
    assert ok(project, "subscribers", "import", str(target)).startswith(
        f"{target} (newsletter, utf-8, comma-separated) into the lists it names: 4 added"
    )
    strip = lambda listing: [{k: v for k, v in i.items() if k != "created"} for i in json.loads(listing)]
    assert strip(ok(project, "subscribers", "ls", "--json")) == strip(before)


def test_the_readme_sample_list_imports_cleanly(project: Path) -> None:
    ok(project, "lists", "add", "weekly")
    sample = REPO / "subscribers" / "sample.csv"
    assert ok(project, "subscribers", "import", str(sample), "--list", "weekly") == (
        f"{sample} (plain, utf-8, comma-separated) into weekly: 8 added, 0 updated, 0 unchanged, 0 skipped.\n"
    )


# -- hostile input ---------------------------------------------------------------------------


def test_a_name_with_a_control_character_is_refused_at_add(project: Path) -> None:
    ok(project, "lists", "add", "weekly")

    assert fails(project, "subscribers", "add", "a@example.org", "--list", "weekly", "--name", "Ann\x00Lee") == (
        "Error: invalid name 'Ann\\x00Lee': it contains the control character U+0000 at position 4; remove it\n"
    )
    assert fails(project, "subscribers", "add", "a@example.org", "--list", "weekly", "--name", "Ann\x1b[2J") == (
        "Error: invalid name 'Ann\\x1b[2J': it contains the control character U+001B at position 4; remove it\n"
    )
    assert ok(project, "subscribers", "ls", "--json") == "[]\n"
    assert ok(project, "subscribers", "add", "a@example.org", "--list", "weekly", "--name", "Ann  Lee") == (
        "Added a@example.org to weekly (confirmed).\n"
    )


def test_a_stray_quote_refuses_the_whole_file_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    rows = ["email,name", *(f"reader{n}@example.org,Reader {n}" for n in range(1, 1001))]
    rows[11] = 'reader11@example.org,"Reader 11'
    path = tmp_path / "readers.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    assert fails(project, "subscribers", "import", str(path), "--list", "weekly") == (
        f"Error: {path}: line 12: a quote (\") opens a value there that never closes, so the rest "
        "of the file would be read as that one value; nothing was imported: close or remove that "
        "quote and import again\n"
    )
    assert ok(project, "subscribers", "ls", "--json") == "[]\n"


def test_import_status_map_and_its_errors(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    path = tmp_path / "tiny-news.csv"
    path.write_text("Email,First Name,Status\na@example.org,Ann,1\nb@example.org,Bo,0\nc@example.org,Cy,4\n", encoding="utf-8")

    assert fails(project, "subscribers", "import", str(path), "--list", "weekly", "--status-map", "1=yes") == (
        "Error: --status-map '1=yes': 'yes' is not a status the importer knows (STATUS: active, "
        "unconfirmed, unsubscribed or bounced, or another status word of the exports we read)\n"
    )
    assert ok(project, "subscribers", "import", str(path), "--list", "weekly", "--status-map", "1=active,0=unsubscribed") == (
        f"{path} (plain, utf-8, comma-separated) into weekly: 2 added, 0 updated, 0 unchanged, 1 skipped.\n"
        "  line 4: c@example.org: unknown status '4'; say what it means with --status-map '4=STATUS' "
        "(STATUS: active, unconfirmed, unsubscribed or bounced, or another status word of the exports we read)\n"
    )
    listed = {i["email"]: i["memberships"] for i in json.loads(ok(project, "subscribers", "ls", "--json"))}
    assert listed == {"a@example.org": {"weekly": "confirmed"}, "b@example.org": {"weekly": "unsubscribed"}}


def test_export_to_a_file_replaces_it_only_on_success(project: Path, tmp_path: Path) -> None:
    ok(project, "lists", "add", "weekly")
    ok(project, "subscribers", "add", "a@example.org", "--list", "weekly", "--name", "=HYPERLINK(\"x\")")
    (tmp_path / "backups").mkdir()
    backup = tmp_path / "backups" / "backup.csv"
    backup.write_text("the old backup\n", encoding="utf-8")

    assert fails(project, "subscribers", "export", "--list", "typo", "-o", str(backup)) == (
        "Error: no list 'typo'; create it with `newsletter lists add typo`\n"
    )
    assert fails(project, "subscribers", "export", "--list", "typo") == (
        "Error: no list 'typo'; create it with `newsletter lists add typo`\n"
    )
    assert backup.read_text(encoding="utf-8") == "the old backup\n"
    assert fails(project, "subscribers", "export", "-o", str(tmp_path / "missing" / "x.csv")) == (
        f"Error: cannot write {tmp_path / 'missing' / 'x.csv'}: No such file or directory\n"
    )

    assert ok(project, "subscribers", "export", "--list", "weekly", "-o", str(backup)) == f"Wrote 1 row(s) to {backup}.\n"
    assert backup.read_text(encoding="utf-8") == (
        'email,name,status,list,blocked,attributes\na@example.org,"\'=HYPERLINK(""x"")",confirmed,weekly,,\n'
    )
    assert [p.name for p in backup.parent.iterdir()] == ["backup.csv"]
