"""Read subscriber CSVs exported by other services, one row at a time.

What it copes with:
- encodings: UTF-8 with or without BOM, UTF-16 (Excel's "Unicode text" save: a BOM and
  tab-separated), and Windows-1252 when the bytes are not valid UTF-8;
- delimiters: comma, semicolon, tab and pipe, found by which one splits the header into
  a column we know as the email column (or, header-less, which one splits rows evenly);
- quoted fields holding delimiters and line breaks (the csv module does the parsing);
- the headers of the exports of Mailchimp (subscribed, unsubscribed and cleaned),
  Substack, Ghost members, listmonk, Buttondown, beehiiv and ConvertKit/Kit, our own
  export, a plain `email[,name]`, and a header-less single column of addresses.

Consent comes first: a row that its export marks unsubscribed, cleaned, bounced,
complained or blocklisted is read as unsubscribed (and, for the undeliverable ones,
suppressed), never as active; a status value we do not know is a skipped row, not a guess.
Columns we do not map are kept as the subscriber's attributes.

Nothing here touches the store: `read` gives an ImportFile whose `rows()` the store
consumes inside one transaction.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .addresses import check_name
from .csvcells import restore
from .errors import AddressError, ImportFileError, UsageError
from .store.records import CONFIRMED, UNCONFIRMED, UNSUBSCRIBED, ImportRow

DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_CHARS = 64 * 1024
_CHUNK_BYTES = 1 << 20

# Header names, after `_header_key` (lower-case, runs of space/dash/dot as "_").
EMAIL_COLUMNS = (
    "email",
    "email_address",
    "e_mail",
    "e_mail_address",
    "emailaddress",
    "subscriber_email",
    "mail",
    "emailadresse",
)
NAME_COLUMNS = ("name", "full_name", "fullname", "subscriber_name", "display_name")
FIRST_NAME_COLUMNS = ("first_name", "firstname", "fname", "given_name", "vorname")
LAST_NAME_COLUMNS = ("last_name", "lastname", "lname", "surname", "family_name", "nachname")
STATUS_COLUMNS = ("status", "state", "subscriber_type", "type", "subscription_status")
LIST_COLUMN = "list"
ATTRIBUTES_COLUMN = "attributes"  # a JSON object (listmonk, our own export)

# A non-empty value in one of these columns means the row left or bounced.
UNSUBSCRIBED_WHEN_SET = ("unsub_time", "unsubscribed_at", "unsubscribe_date", "unsubscribed_date")
SUPPRESSED_WHEN_SET = ("clean_time", "cleaned_at", "bounced_at")
# Boolean columns: (column, the value that means "do not mail").
UNSUBSCRIBED_FLAGS = (("email_disabled", True), ("subscribed_to_emails", False), ("subscribed", False))
SUPPRESSED_FLAGS = (("blocked", True),)

# Status words of the services above, lower-cased. "inactive" means unconfirmed at Kit
# but unsubscribed at beehiiv: read as unsubscribed, the reading that never mails anyone.
ACTIVE_STATUSES = frozenset(
    "active subscribed confirmed enabled regular premium paid free comp gift gifted "
    "trialed churned cold".split()
)
UNCONFIRMED_STATUSES = frozenset("unconfirmed unactivated pending validating".split())
UNSUBSCRIBED_STATUSES = frozenset(
    "unsubscribed cancelled canceled disabled inactive removed deleted archived".split()
)
SUPPRESSED_STATUSES = frozenset(
    "cleaned bounced blocklisted blacklisted blocked complained spammy undeliverable invalid "
    "suppressed".split()
)

_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})

# Which service wrote a file, told by a column only its export has (for the report).
_SIGNATURES = (
    ("newsletter", ("blocked",)),
    ("mailchimp", ("member_rating", "leid", "euid", "optin_time")),
    ("substack", ("email_disabled", "active_subscription")),
    ("ghost", ("subscribed_to_emails", "complimentary_plan")),
    ("listmonk", ("uuid",)),
    ("buttondown", ("subscriber_type", "creation_date")),
    ("beehiiv", ("tier", "free_tier")),
    ("convertkit", ("state",)),
)


@dataclass(frozen=True)
class Columns:
    """Where each field we understand sits in a row (indexes), the rest being attributes."""

    email: int
    name: int | None = None
    first_name: int | None = None
    last_name: int | None = None
    status: int | None = None
    list: int | None = None
    attributes_json: int | None = None
    unsubscribed_when_set: tuple[int, ...] = ()
    suppressed_when_set: tuple[int, ...] = ()
    unsubscribed_flags: tuple[tuple[int, bool], ...] = ()
    suppressed_flags: tuple[tuple[int, bool], ...] = ()
    extra: tuple[tuple[int, str], ...] = ()  # (index, header as written)


@dataclass
class ImportFile:
    """An opened CSV: how it is encoded and laid out, and its rows on demand."""

    path: Path
    encoding: str
    delimiter: str
    has_header: bool
    header: list[str]
    format: str
    columns: Columns = field(repr=False)

    def rows(self, status_map: Mapping[str, str] | None = None) -> Iterator[ImportRow]:
        """Rows in file order, streamed, with status words translated by `status_map` (see
        `parse_status_map`) first. ImportFileError for a decoding error, and for a quote
        that opens and never closes (it would swallow the rest of the file as one value)."""
        statuses = status_map or {}
        line = 1  # where the record being read starts
        try:
            with self.path.open(encoding=self.encoding, newline="") as handle:
                reader = csv.reader(_then_end(handle), delimiter=self.delimiter, strict=False)
                for index, record in enumerate(reader):
                    if record == [_END]:
                        return
                    if record and record[-1].endswith(_END_LINE):
                        raise self.unclosed_quote(line + sum(c.count("\n") for c in record[:-1]))
                    if (index or not self.has_header) and any(cell.strip() for cell in record):
                        yield _row(line, _restored(record), self.columns, statuses)
                    line = reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{self.path}: not readable as {self.encoding} near byte {exc.start}; "
                "save it as UTF-8 CSV"
            ) from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise self.unclosed_quote(line) from None
            raise ImportFileError(f"{self.path}: malformed CSV at line {line}: {exc}") from None

    def unclosed_quote(self, line: int) -> ImportFileError:
        return ImportFileError(
            f"{self.path}: line {line}: a quote (\") opens a value there that never closes, "
            "so the rest of the file would be read as that one value; nothing was imported: "
            "close or remove that quote and import again"
        )


# A line no text file holds (U+FFFF is a noncharacter), read after the last one: the csv
# reader returns it as a record of its own, unless a quote left open takes it into the
# value it is reading; that is how `rows` tells an unclosed quote from a closed one.
_END = "\uffff"
_END_LINE = _END + "\n"


def _then_end(lines: Iterator[str]) -> Iterator[str]:
    yield from lines
    yield _END_LINE


def read(path: str | Path) -> ImportFile:
    """Open a subscriber CSV: detect encoding, delimiter and columns (ImportFileError)."""
    file_path = Path(path)
    encoding = detect_encoding(file_path)
    sample = _text_sample(file_path, encoding)
    if not sample.strip():
        raise ImportFileError(f"{file_path} is empty; export the subscribers again")
    delimiter, header = _header_and_delimiter(sample)
    if header is not None:
        columns = map_columns(header, file_path)
        return ImportFile(
            file_path, encoding, delimiter, True, header, detect_format(header), columns
        )
    delimiter, email_index = _headerless_layout(file_path, sample)
    return ImportFile(
        file_path, encoding, delimiter, False, [], "header-less", Columns(email=email_index)
    )


def detect_encoding(path: Path) -> str:
    """"utf-8-sig", "utf-16", "utf-16-le"/"-be" (no BOM), "utf-8" or "cp1252"."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
            if head.startswith(codecs.BOM_UTF8):
                return "utf-8-sig"
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                return "utf-16"
            bom_less_utf16 = _bom_less_utf16(head)
            if bom_less_utf16:
                return bom_less_utf16
            handle.seek(0)
            return "utf-8" if _is_utf8(handle) else "cp1252"
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a folder, not a CSV file") from None
    except FileNotFoundError:
        raise ImportFileError(f"{path} does not exist; check the file name") from None
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None


def map_columns(header: list[str], path: Path) -> Columns:
    keys = [_header_key(name) for name in header]

    def first(names: tuple[str, ...]) -> int | None:
        for name in names:
            if name in keys:
                return keys.index(name)
        return None

    def every(names: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(i for i, key in enumerate(keys) if key in names)

    def flags(pairs: tuple[tuple[str, bool], ...]) -> tuple[tuple[int, bool], ...]:
        return tuple((keys.index(name), value) for name, value in pairs if name in keys)

    email = first(EMAIL_COLUMNS)
    if email is None:
        raise _no_email_column(header, path)
    columns = Columns(
        email=email,
        name=first(NAME_COLUMNS),
        first_name=first(FIRST_NAME_COLUMNS),
        last_name=first(LAST_NAME_COLUMNS),
        status=first(STATUS_COLUMNS),
        list=first((LIST_COLUMN,)),
        attributes_json=first((ATTRIBUTES_COLUMN,)),
        unsubscribed_when_set=every(UNSUBSCRIBED_WHEN_SET),
        suppressed_when_set=every(SUPPRESSED_WHEN_SET),
        unsubscribed_flags=flags(UNSUBSCRIBED_FLAGS),
        suppressed_flags=flags(SUPPRESSED_FLAGS),
    )
    used = {
        i
        for i in (
            columns.email,
            columns.name,
            columns.first_name,
            columns.last_name,
            columns.status,
            columns.list,
            columns.attributes_json,
            *(i for i, _ in columns.suppressed_flags),
        )
        if i is not None
    }
    extra = tuple((i, name.strip()) for i, name in enumerate(header) if i not in used and name.strip())
    return Columns(**{**columns.__dict__, "extra": extra})


def detect_format(header: list[str]) -> str:
    keys = {_header_key(name) for name in header}
    for name, marks in _SIGNATURES:
        if keys & set(marks):
            return name
    return "plain"


def parse_status(value: str, status_map: Mapping[str, str] | None = None) -> tuple[str, bool] | None:
    """(membership status, suppress) for a status word, None when it is unknown. A value
    `status_map` names (lower-cased) stands for the status word it maps to."""
    word = value.strip().lower()
    word = status_map.get(word, word) if status_map else word
    if not word or word in ACTIVE_STATUSES:
        return CONFIRMED, False
    if word in UNCONFIRMED_STATUSES:
        return UNCONFIRMED, False
    if word in UNSUBSCRIBED_STATUSES:
        return UNSUBSCRIBED, False
    if word in SUPPRESSED_STATUSES:
        return UNSUBSCRIBED, True
    return None


STATUS_MAP_OPTION = "--status-map"
_STATUS_EXAMPLE = "1=active,0=unsubscribed"
_KNOWN_TARGETS = (
    "STATUS: active, unconfirmed, unsubscribed or bounced, or another status word of the "
    "exports we read"
)


def parse_status_map(text: str) -> dict[str, str]:
    """`1=active,0=unsubscribed` as {"1": "active", "0": "unsubscribed"}: the values of
    an export's status column, each with the status word the importer reads it as.
    UsageError naming the entry that is malformed or maps to a word we do not know."""
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        value, equals, word = (part.strip().lower() for part in entry.partition("="))
        if not equals or not value:
            raise UsageError(
                f"{STATUS_MAP_OPTION} {text!r}: {entry.strip()!r} is not VALUE=STATUS; "
                f"write it as {_STATUS_EXAMPLE}"
            )
        if not word or parse_status(word) is None:
            raise UsageError(
                f"{STATUS_MAP_OPTION} {text!r}: {word!r} is not a status the importer knows "
                f"({_KNOWN_TARGETS})"
            )
        if mapping.setdefault(value, word) != word:
            raise UsageError(f"{STATUS_MAP_OPTION} {text!r}: {value!r} is mapped twice")
    return mapping


def _unknown_status(value: str) -> str:
    return (
        f"unknown status {value!r}; say what it means with {STATUS_MAP_OPTION} "
        f"'{value}=STATUS' ({_KNOWN_TARGETS})"
    )


# -- reading a row -------------------------------------------------------------------------


def _row(
    line: int, record: list[str], columns: Columns, status_map: Mapping[str, str]
) -> ImportRow:
    status, suppress, problem = CONFIRMED, False, None
    if columns.status is not None:
        parsed = parse_status(_cell(record, columns.status), status_map)
        if parsed is None:
            problem = _unknown_status(_cell(record, columns.status))
        else:
            status, suppress = parsed
    for index in columns.unsubscribed_when_set:
        if _cell(record, index):
            status = UNSUBSCRIBED
    for index, value in columns.unsubscribed_flags:
        if _flag(_cell(record, index)) is value:
            status = UNSUBSCRIBED
    for index in columns.suppressed_when_set:
        if _cell(record, index):
            status, suppress = UNSUBSCRIBED, True
    for index, value in columns.suppressed_flags:
        if _flag(_cell(record, index)) is value:
            suppress = True  # blocked here, whatever the membership says
    width = len(record)
    attributes = {name: record[i] for i, name in columns.extra if i < width and record[i]}
    if columns.attributes_json is not None and _cell(record, columns.attributes_json):
        attributes.update(_json_attributes(_cell(record, columns.attributes_json)))
    name = _cell(record, columns.name)
    if not name and (columns.first_name is not None or columns.last_name is not None):
        name = " ".join(
            part
            for part in (_cell(record, columns.first_name), _cell(record, columns.last_name))
            if part
        )
    try:
        check_name(name)
    except AddressError as exc:
        problem = problem or str(exc)
    return ImportRow(
        line,
        record[columns.email] if columns.email < width else "",
        name,
        status,
        suppress,
        _cell(record, columns.list) or None,
        attributes,
        problem,
    )


def _restored(record: list[str]) -> list[str]:
    """The cells with the export's formula guard taken off (csvcells.restore); only a cell
    starting with a quote can carry one, and few do."""
    return [restore(cell) if cell[:1] == "'" else cell for cell in record]


def _cell(record: list[str], index: int | None) -> str:
    return record[index].strip() if index is not None and index < len(record) else ""


def _flag(value: str) -> bool | None:
    word = value.lower()
    return True if word in _TRUE else False if word in _FALSE else None


def _json_attributes(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {ATTRIBUTES_COLUMN: text}
    return value if isinstance(value, dict) else {ATTRIBUTES_COLUMN: value}


def _header_key(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.strip().lower()).strip("_")


# -- layout detection ---------------------------------------------------------------------


def _bom_less_utf16(head: bytes) -> str | None:
    """UTF-16 without a BOM shows as NUL in every other byte of ASCII-heavy text."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even_nuls = head[0 : pairs * 2 : 2].count(0)
    odd_nuls = head[1 : pairs * 2 : 2].count(0)
    if odd_nuls > pairs * 0.8 and even_nuls == 0:
        return "utf-16-le"
    if even_nuls > pairs * 0.8 and odd_nuls == 0:
        return "utf-16-be"
    return None


def _is_utf8(handle: io.BufferedReader) -> bool:
    """Whether the whole file decodes as UTF-8 (one streamed pass, memory flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := handle.read(_CHUNK_BYTES):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _text_sample(path: Path, encoding: str) -> str:
    try:
        with path.open(encoding=encoding, newline="") as handle:
            return handle.read(_SAMPLE_CHARS)
    except UnicodeDecodeError:
        raise ImportFileError(
            f"{path} is not UTF-8, UTF-16 or Windows-1252 text; save it as UTF-8 CSV"
        ) from None


def _header_and_delimiter(sample: str) -> tuple[str, list[str] | None]:
    """The delimiter that makes the first record a header naming an email column, and
    that header; (",", None) when no delimiter does (a header-less file)."""
    found: list[tuple[int, str, list[str]]] = []
    for delimiter in DELIMITERS:
        header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
        if any(_header_key(name) in EMAIL_COLUMNS for name in header):
            found.append((len(header), delimiter, header))
    if not found:
        return ",", None
    # A one-column header ("email") reads the same with every delimiter: prefer the one
    # that splits it most, then the order of DELIMITERS.
    _, delimiter, header = max(found, key=lambda item: item[0])
    return delimiter, header


def _no_email_column(header: list[str], path: Path) -> ImportFileError:
    shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    return ImportFileError(
        f"{path}: no email column in the header ({shown}); name the column of addresses 'email'"
    )


def _headerless_layout(path: Path, sample: str) -> tuple[str, int]:
    """(delimiter, email column) of a file without a header: its first row must hold an
    address (a cell with '@'); a delimiter that splits the sample rows evenly wins."""
    lines = sample.splitlines()[:50]
    if len(sample) == _SAMPLE_CHARS and len(lines) > 1:
        lines = lines[:-1]  # possibly cut short
    best: tuple[str, int] | None = None
    for delimiter in DELIMITERS:
        records = [r for r in csv.reader(lines, delimiter=delimiter) if r]
        widths = {len(r) for r in records}
        if len(widths) == 1 and widths != {1}:
            cells = [i for i, value in enumerate(records[0]) if "@" in value]
            if cells:
                best = (delimiter, cells[0])
                break
    if best is not None:
        return best
    first_row = max(
        (next(csv.reader(lines, delimiter=delimiter), []) for delimiter in DELIMITERS), key=len
    )
    if not any("@" in cell for cell in first_row):
        raise _no_email_column(first_row, path)
    return ",", 0
