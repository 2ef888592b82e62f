"""Reading subscriber CSVs of other services, and importing them in one transaction.

The fixtures in tests/fixtures/csv/ carry the column headers these services' exports
use: Mailchimp's subscribed/unsubscribed/cleaned audience exports, Substack's email list,
Ghost's members CSV, listmonk's export, Buttondown's and Kit's (ConvertKit) subscriber
fields as their API documentation names them, and beehiiv's subscriber export. The rows
are made up.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from sqlalchemy import func, select

from newsletter import exporter, importer
from newsletter.errors import ImportFileError, StoreError, UsageError
from newsletter.store import Store
from newsletter.store.records import ImportReport
from newsletter.store.schema import events, subscribers
from newsletter.store.issues import deliverable

BACKENDS = ("sqlite", "postgres")

CSV = Path(__file__).parent / "fixtures" / "csv"
SECRET = b"import-secret"


@pytest.fixture
def store(database_url: str) -> Store:
    store = Store(database_url)
    store.lists.create("weekly")
    return store


def run_import(
    store: Store, path: Path, list_slug: str | None = "weekly", *, dry_run: bool = False,
    secret: bytes | None = None,
) -> ImportReport:
    opened = importer.read(path)
    report = ImportReport(str(path), list_slug, dry_run, opened.encoding, opened.delimiter, opened.format)
    return store.subscribers.import_rows(
        opened.rows(), report, list_slug=list_slug, source=f"import:{path.name}",
        secret=secret, dry_run=dry_run,
    )


def states(store: Store, slug: str = "weekly") -> dict[str, str]:
    """email -> status shown by `subscribers ls --list slug`."""
    return {item.email: item.status for item in store.subscribers.listing(slug)}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def totals(report: ImportReport) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, len(report.skipped)


# -- the services' exports -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "format", "expected"),
    [
        ("mailchimp_subscribed.csv", "mailchimp",
         {"ann.active@example.org": "confirmed", "ben.busy@example.com": "confirmed"}),
        ("mailchimp_unsubscribed.csv", "mailchimp", {"uma.gone@example.org": "unsubscribed"}),
        ("mailchimp_cleaned.csv", "mailchimp", {"cole.bounced@example.com": "blocked"}),
        ("substack.csv", "substack", {"sam.paid@example.org": "confirmed",
                                      "sue.free@example.com": "confirmed",
                                      "sid.disabled@example.org": "unsubscribed"}),
        ("ghost_members.csv", "ghost", {"gina.reader@example.org": "confirmed",
                                        "gus.quiet@example.com": "unsubscribed"}),
        ("listmonk.csv", "listmonk", {"lena@example.org": "confirmed", "leo@example.com": "blocked",
                                      "lou@example.org": "unsubscribed"}),
        ("buttondown.csv", "buttondown", {"bea@example.org": "confirmed",
                                          "bob.new@example.com": "unconfirmed",
                                          "bill@example.org": "unsubscribed",
                                          "bart@example.com": "blocked"}),
        ("beehiiv.csv", "beehiiv", {"hana@example.org": "confirmed", "hugo@example.com": "unsubscribed",
                                    "hal@example.org": "unsubscribed", "hex@example.com": "unconfirmed"}),
        ("convertkit.csv", "convertkit", {"kim@example.org": "confirmed", "kai@example.com": "unsubscribed",
                                          "kit@example.org": "blocked", "kay@example.com": "blocked"}),
        ("plain.csv", "plain", {"pat@example.org": "confirmed", "quinn@example.com": "confirmed"}),
        ("headerless.txt", "header-less", {"one@example.org": "confirmed", "Two@example.com": "confirmed",
                                           "three@example.org": "confirmed"}),
    ],
)
def test_each_services_export_imports_with_consent_kept(
    store: Store, fixture: str, format: str, expected: dict[str, str]
) -> None:
    report = run_import(store, CSV / fixture)
    assert report.format == format
    assert (report.added, report.skipped) == (len(expected), [])
    assert states(store) == expected
    with store.write() as conn:  # nobody the export marks as gone is ever a recipient
        mailed = {row.email for row in conn.execute(deliverable(store.lists.get("weekly").id))}
    assert mailed == {email for email, status in expected.items() if status == "confirmed"}


def test_names_and_unknown_columns_are_kept(store: Store) -> None:
    run_import(store, CSV / "mailchimp_subscribed.csv")
    ann = store.subscribers.get("ann.active@example.org")
    assert ann.name == "Ann Active"
    assert ann.attributes["Company"] == "Acme, Inc."
    assert ann.attributes["TAGS"] == '"Readers"'
    assert store.subscribers.get("ben.busy@example.com").name == "Ben Busy"  # cells trimmed
    run_import(store, CSV / "listmonk.csv")
    assert store.subscribers.get("lena@example.org").attributes == {
        "uuid": "6f1c2b1e-0000-4000-8000-000000000001", "city": "Pune", "plan": 2,
        "created_at": "2024-01-02 10:00:00.000000+00:00",
        "updated_at": "2024-01-02 10:00:00.000000+00:00",
    }


def test_cleaned_rows_are_suppressed_with_the_file_named(store: Store) -> None:
    run_import(store, CSV / "mailchimp_cleaned.csv")
    assert [(s.kind, s.value, s.reason) for s in store.suppressions.all()] == [
        ("address", "cole.bounced@example.com", f"marked undeliverable in {CSV / 'mailchimp_cleaned.csv'}")
    ]


# -- encodings and delimiters ----------------------------------------------------------------


def test_excel_utf16_tab_separated_with_an_idn_domain(store: Store) -> None:
    opened = importer.read(CSV / "excel_unicode.txt")
    assert (opened.encoding, opened.delimiter) == ("utf-16", "\t")
    run_import(store, CSV / "excel_unicode.txt")
    assert states(store) == {"zoe@example.org": "confirmed", "zed@exämple.de": "confirmed"}
    assert store.subscribers.get("zoe@example.org").attributes == {"City": "München"}
    assert store.subscribers.get("zed@xn--exmple-cua.de").name == "Zed"


def test_windows_1252_with_semicolons(store: Store) -> None:
    opened = importer.read(CSV / "windows1252_semicolon.csv")
    assert (opened.encoding, opened.delimiter) == ("cp1252", ";")
    run_import(store, CSV / "windows1252_semicolon.csv")
    rene = store.subscribers.get("rene@example.org")
    assert (rene.name, rene.attributes) == ("René Müller", {"Betrag": "12,50 €"})
    assert store.subscribers.get("francois@example.com").name == "François Œuvre"


def test_utf8_with_a_byte_order_mark(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", "Email,Name\r\nbom@example.org,Bö\r\n", "utf-8-sig")
    assert importer.read(path).encoding == "utf-8-sig"
    run_import(store, path)
    assert store.subscribers.get("bom@example.org").name == "Bö"


def test_utf16_without_a_bom_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "le.csv"
    path.write_bytes("email\tname\nx@example.org\tX\n".encode("utf-16-le"))
    assert (importer.read(path).encoding, importer.read(path).delimiter) == ("utf-16-le", "\t")


# -- bad rows inside a good file -------------------------------------------------------------


def test_bad_rows_are_skipped_with_their_line_and_reason(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.csv",
        "email,name,note\n"
        "ok@example.org,Ok,\n"                            # line 2
        "not-an-address,Bad,\n"                           # line 3
        '"multi@example.org","Multi","two\nlines"\n'     # lines 4-5
        "OK@EXAMPLE.ORG,Dup,\n"                           # line 6: duplicate by case
        "ünï@bücher.de,Idn,\n"                            # line 7
        "ünï@xn--bcher-kva.de,Idn again,\n"               # line 8: same address, punycode
        ",,empty address\n"                               # line 9
        "bad@,Bad,\n",                                    # line 10
    )
    report = run_import(store, path)
    assert totals(report) == (3, 0, 0, 5)
    assert report.skipped == [
        (3, "not-an-address", "invalid address (An email address must have an @-sign.)"),
        (6, "OK@EXAMPLE.ORG", "duplicate within the file (first on line 2)"),
        (8, "ünï@xn--bcher-kva.de", "duplicate within the file (first on line 7)"),
        (9, "", "invalid address (it is empty)"),
        (10, "bad@", "invalid address (There must be something after the @-sign.)"),
    ]
    assert store.subscribers.get("multi@example.org").attributes == {"note": "two\nlines"}


def test_blocked_forgotten_and_unsubscribed_addresses_are_not_brought_back(
    store: Store, tmp_path: Path
) -> None:
    store.suppressions.block("@blocked.example")
    store.suppressions.block("hold@example.org")
    store.subscribers.add("gone@example.org", "weekly")
    store.memberships.unsubscribe("gone@example.org", "weekly", source="web")
    store.subscribers.add("forget.me@example.org", "weekly")
    store.subscribers.forget("forget.me@example.org", secret=SECRET)
    path = write(
        tmp_path / "back.csv",
        "email\nany@blocked.example\nHold@example.org\nforget.me@example.org\ngone@example.org\nnew@example.org\n",
    )
    with pytest.raises(StoreError, match="forgotten address"):
        run_import(store, path)  # without the secret a forgotten address cannot be recognised
    report = run_import(store, path, secret=SECRET)
    assert report.skipped == [
        (2, "any@blocked.example", "blocked"),
        (3, "Hold@example.org", "blocked"),
        (4, "forget.me@example.org", "forgotten"),
        (5, "gone@example.org", "unsubscribed from weekly; an import does not resubscribe"),
    ]
    assert states(store) == {"gone@example.org": "unsubscribed", "new@example.org": "confirmed"}


def test_an_export_that_says_unsubscribed_unsubscribes_an_existing_member(store: Store) -> None:
    store.subscribers.add("uma.gone@example.org", "weekly")
    report = run_import(store, CSV / "mailchimp_unsubscribed.csv")
    assert totals(report) == (0, 1, 0, 0)
    assert states(store) == {"uma.gone@example.org": "unsubscribed"}


def test_importing_the_same_file_twice_changes_nothing_the_second_time(store: Store) -> None:
    assert totals(run_import(store, CSV / "plain.csv")) == (2, 0, 0, 0)
    assert totals(run_import(store, CSV / "plain.csv")) == (0, 0, 2, 0)
    with store.write() as conn:
        logged = conn.execute(select(events.c.kind, events.c.source, events.c.detail)).all()
    assert logged == [("subscribed", "import:plain.csv", {"status": "confirmed"})] * 2


# -- whole-file errors and the transaction ---------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty; export the subscribers again"),
        (b"name,city\nAnn,Oslo\n", "no email column in the header (name, city); name the column of addresses 'email'"),
        (b"name;city\nAnn;Oslo\n", "no email column in the header (name, city); name the column of addresses 'email'"),
        (b"Ann\nBen\n", "no email column in the header (Ann); name the column of addresses 'email'"),
    ],
)
def test_files_that_cannot_be_imported_are_one_line_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        importer.read(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="missing.csv does not exist"):
        importer.read(tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="is a folder, not a CSV file"):
        importer.read(tmp_path)


def test_an_unreadable_byte_late_in_the_file_leaves_nothing_behind(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"r{i}@example.org\n" for i in range(5000))  # past the detection sample
    path = tmp_path / "broken.csv"
    path.write_bytes(b"email\n" + rows.encode() + b"\x81oops@example.org\n")  # 0x81: not cp1252
    with pytest.raises(ImportFileError, match="not readable as cp1252"):
        run_import(store, path)
    with store.write() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0


def test_a_dry_run_reports_the_same_and_writes_nothing(store: Store) -> None:
    dry = run_import(store, CSV / "convertkit.csv", dry_run=True)
    assert totals(dry) == (4, 0, 0, 0)
    assert states(store) == {} and store.suppressions.all() == []
    real = run_import(store, CSV / "convertkit.csv")
    assert totals(real) == totals(dry)


# -- export round trip, and the list column ---------------------------------------------------


def test_export_then_import_into_a_fresh_database_gives_the_same_state(
    store: Store, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store.lists.create("daily", double_opt_in=True)
    for fixture in ("mailchimp_subscribed.csv", "buttondown.csv", "listmonk.csv", "excel_unicode.txt"):
        run_import(store, CSV / fixture)
    store.subscribers.add("pending@example.org", "daily")
    store.subscribers.add("ann.active@example.org", "daily", confirmed=True)
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as handle:
        written = exporter.write_export(handle, store.subscribers.listing(), None)
    assert written == 13

    if backend == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        fresh = Store(cluster.url(cluster.create_database()))
    else:
        fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.lists.create("weekly")
    fresh.lists.create("daily", double_opt_in=True)
    report = run_import(fresh, exported, list_slug=None)
    assert report.format == "newsletter" and report.skipped == []

    def snapshot(s: Store) -> list[tuple[object, ...]]:
        return sorted(
            (item.email, item.name, item.status, tuple(sorted(item.memberships.items())),
             json.dumps(item.attributes, sort_keys=True))
            for item in s.subscribers.listing()
        )

    assert snapshot(fresh) == snapshot(store)


def test_rows_naming_an_unknown_list_are_skipped(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "lists.csv", "email,list\na@example.org,weekly\nb@example.org,nope\nc@example.org,\n")
    report = run_import(store, path, list_slug=None)
    assert report.skipped == [
        (3, "b@example.org", "no list 'nope'"),
        (4, "c@example.org", "no list: pass --list SLUG or fill the file's list column"),
    ]


def test_an_unknown_status_word_is_skipped_not_guessed(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "email,status\na@example.org,active\nb@example.org,frozen\n")
    assert run_import(store, path).skipped == [
        (
            3,
            "b@example.org",
            "unknown status 'frozen'; say what it means with --status-map 'frozen=STATUS' "
            "(STATUS: active, unconfirmed, unsubscribed or bounced, or another status word "
            "of the exports we read)",
        )
    ]


# -- detection, by property --------------------------------------------------------------------

_cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
    | st.sampled_from([",", ";", "\t", "|", '"', "\n", "\r", " "]),
    max_size=12,
)
_header_names = st.lists(
    st.sampled_from(["name", "city", "Tags", "Company", "Notes", "plan", "Vorname"]),
    unique=True, max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    email_header=st.sampled_from(["email", "Email Address", "E-Mail", "email_address", "EMAIL"]),
    others=_header_names,
    cells=st.lists(st.lists(_cell_text, min_size=4, max_size=4), min_size=1, max_size=8),
    delimiter=st.sampled_from(importer.DELIMITERS),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    email_first=st.booleans(),
)
def test_delimiter_encoding_and_cells_are_detected_as_written(
    tmp_path: Path, email_header: str, others: list[str], cells: list[list[str]],
    delimiter: str, encoding: str, email_first: bool,
) -> None:
    header = [email_header, *others] if email_first else [*others, email_header]
    email_at = header.index(email_header)
    rows = []
    for i, row_cells in enumerate(cells):
        row = [cell for cell, _ in zip(row_cells, others)]
        row.insert(email_at, f"user{i}@example.org")
        rows.append(row)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows([header, *rows])
    text = buffer.getvalue()
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    if encoding == "cp1252":
        assume(not _is_utf8(data))  # such bytes are UTF-8 too: reading them so is right
    path = tmp_path / "generated.csv"
    path.write_bytes(data)

    opened = importer.read(path)
    if others:  # a single column has no delimiter to find
        assert opened.delimiter == delimiter
    assert codecs.lookup(opened.encoding).name == codecs.lookup(
        "utf-8" if encoding == "cp1252" and text.isascii() else encoding
    ).name
    read_back = list(opened.rows())
    assert [row.email for row in read_back] == [row[email_at] for row in rows]
    for row, original in zip(read_back, rows):
        expected = {
            name: value for name, value in zip(header, original)
            if name not in (email_header, "name", "Vorname") and value
        }
        assert row.attributes == expected


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_batches_are_seamless_for_duplicates_and_blocks(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.store import imports

    monkeypatch.setattr(imports, "BATCH_ROWS", 1)  # every row its own batch
    store.lists.create("daily")
    path = write(
        tmp_path / "export.csv",
        "email,name,status,list,blocked,attributes\n"
        "vic@example.org,Vic,confirmed,weekly,yes,\n"
        "vic@example.org,Vic,unsubscribed,daily,yes,\n"
        "VIC@example.org,Vic,confirmed,weekly,yes,\n",
    )
    report = run_import(store, path, list_slug=None)
    assert totals(report) == (2, 0, 0, 1)
    assert report.skipped == [(4, "VIC@example.org", "duplicate within the file (first on line 2)")]
    [vic] = store.subscribers.listing()
    assert (vic.status, vic.memberships) == ("blocked", {"daily": "unsubscribed", "weekly": "confirmed"})
    assert [(s.kind, s.value) for s in store.suppressions.all()] == [("address", "vic@example.org")]


# -- hostile and unusual files ----------------------------------------------------------------


def thousand_rows(tmp_path: Path, line_12: str) -> Path:
    rows = ["email,name", *(f"reader{n}@example.org,Reader {n}" for n in range(1, 1001))]
    rows[11] = line_12
    return write(tmp_path / "readers.csv", "\n".join(rows) + "\n")


@pytest.mark.parametrize("line_12", ['"reader11@example.org,Reader 11', 'reader11@example.org,"Reader 11'])
def test_a_quote_that_never_closes_refuses_the_file_naming_its_line(
    store: Store, tmp_path: Path, line_12: str
) -> None:
    path = thousand_rows(tmp_path, line_12)

    with pytest.raises(ImportFileError) as refused:
        run_import(store, path)

    assert str(refused.value) == (
        f"{path}: line 12: a quote (\") opens a value there that never closes, so the rest of "
        "the file would be read as that one value; nothing was imported: close or remove that "
        "quote and import again"
    )
    assert states(store) == {}


def test_quotes_that_close_and_values_on_several_lines_still_import(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "notes.csv",
        'email,name,note\na@example.org,"Ann ""Nan"" Lee","first line\nsecond, line"\n'
        'b@example.org,Bo"b,plain\nc@example.org,Cy,"ends the file quoted"',
    )

    report = run_import(store, path)

    assert totals(report) == (3, 0, 0, 0)
    people = {item.email: (item.name, item.attributes) for item in store.subscribers.listing()}
    assert people == {
        "a@example.org": ('Ann "Nan" Lee', {"note": "first line\nsecond, line"}),
        "b@example.org": ('Bo"b', {"note": "plain"}),
        "c@example.org": ("Cy", {"note": "ends the file quoted"}),
    }


def test_a_quote_left_open_in_a_huge_file_names_its_line(store: Store, tmp_path: Path) -> None:
    rows = ["email,name", *(f"reader{n}@example.org,Reader {n}" for n in range(1, 10_001))]
    rows[11] = '"reader11@example.org,Reader 11'  # swallows more than csv's field size limit
    path = write(tmp_path / "readers.csv", "\n".join(rows) + "\n")

    with pytest.raises(ImportFileError, match=r": line 12: a quote \(\"\) opens a value there"):
        run_import(store, path)
    assert states(store) == {}


def test_control_characters_in_a_name_skip_the_row_with_a_reason(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path / "names.csv",
        'email,first_name,last_name\nann@example.org,Ann,Smith\nnul@example.org,Bob\x00,X\n'
        'esc@example.org,"\x1b[31mRed",\ndel@example.org,De\x7fl,\nc1@example.org,A\x85B,Y\n',
    )

    report = run_import(store, path)

    assert report.skipped == [
        (3, "nul@example.org", "invalid name 'Bob\\x00 X': it contains the control character U+0000 at position 4; remove it"),
        (4, "esc@example.org", "invalid name '\\x1b[31mRed': it contains the control character U+001B at position 1; remove it"),
        (5, "del@example.org", "invalid name 'De\\x7fl': it contains the control character U+007F at position 3; remove it"),
        (6, "c1@example.org", "invalid name 'A\\x85B Y': it contains the control character U+0085 at position 2; remove it"),
    ]
    assert states(store) == {"ann@example.org": "confirmed"}


FORMULAS = ["=HYPERLINK(\"https://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTab", "'=quoted", "'plain"]


def test_export_neutralises_formulas_and_import_restores_them(store: Store, tmp_path: Path) -> None:
    for n, text in enumerate(FORMULAS):
        store.subscribers.add(f"p{n}@example.org", "weekly", text.strip(), attributes={"note": text})
    store.subscribers.add("-dash@example.org", "weekly", "=cmd|' /C calc'!A0")
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as handle:
        exporter.write_export(handle, store.subscribers.listing(), None)

    cells = [cell for row in csv.reader(exported.open(encoding="utf-8")) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd|' /C calc'!A0" in cells and "'-dash@example.org" in cells
    assert "''=quoted" in cells and "'plain" in cells

    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.lists.create("weekly")
    assert run_import(fresh, exported, list_slug=None).skipped == []
    again = tmp_path / "again.csv"
    with again.open("w", encoding="utf-8", newline="") as handle:
        exporter.write_export(handle, fresh.subscribers.listing(), None)
    assert again.read_text(encoding="utf-8") == exported.read_text(encoding="utf-8")
    people = {item.email: (item.name, item.attributes) for item in fresh.subscribers.listing()}
    assert people["-dash@example.org"] == ("=cmd|' /C calc'!A0", {})
    assert people["p0@example.org"] == (FORMULAS[0], {"note": FORMULAS[0]})
    assert people["p5@example.org"] == ("'=quoted", {"note": "'=quoted"})
    assert people["p4@example.org"] == ("Tab", {"note": "\tTab"})


def test_a_status_map_reads_numeric_statuses(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "tnc.csv", "Email,Status\na@example.org,1\nb@example.org,0\nc@example.org,4\n")

    unmapped = run_import(store, path)
    assert [reason for _, _, reason in unmapped.skipped] == [
        f"unknown status '{value}'; say what it means with --status-map '{value}=STATUS' "
        "(STATUS: active, unconfirmed, unsubscribed or bounced, or another status word of the "
        "exports we read)"
        for value in "104"
    ]
    opened = importer.read(path)
    report = ImportReport(str(path), "weekly", False)
    statuses = importer.parse_status_map("1=active, 0=Unsubscribed,4=cleaned")
    store.subscribers.import_rows(opened.rows(statuses), report, list_slug="weekly", source="t")
    assert report.skipped == []
    assert states(store) == {"a@example.org": "confirmed", "b@example.org": "unsubscribed", "c@example.org": "blocked"}


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("1", "--status-map '1': '1' is not VALUE=STATUS; write it as 1=active,0=unsubscribed"),
        ("=active", "--status-map '=active': '=active' is not VALUE=STATUS; write it as 1=active,0=unsubscribed"),
        ("1=active,", "--status-map '1=active,': '' is not VALUE=STATUS; write it as 1=active,0=unsubscribed"),
        ("1=yes", "--status-map '1=yes': 'yes' is not a status the importer knows (STATUS: active, "
         "unconfirmed, unsubscribed or bounced, or another status word of the exports we read)"),
        ("1=", "--status-map '1=': '' is not a status the importer knows (STATUS: active, "
         "unconfirmed, unsubscribed or bounced, or another status word of the exports we read)"),
        ("1=active,1=unsubscribed", "--status-map '1=active,1=unsubscribed': '1' is mapped twice"),
    ],
)
def test_a_malformed_status_map_is_one_clear_error(option: str, error: str) -> None:
    with pytest.raises(UsageError) as refused:
        importer.parse_status_map(option)
    assert str(refused.value) == error
