"""Parse and validate HR roster uploads (CSV here, XLSX in `roster_xlsx`). No database code: this
module only turns bytes into validated `RosterRow`s, or into a `RosterError` listing every problem,
so a bad file is rejected whole and HR can fix everything in one pass.

Large files stream: `iter_roster_csv` validates record by record, and `spool_roster` parks the
valid rows in a temporary file for the write pass, so memory stays flat in the file size."""

from __future__ import annotations

import codecs
import csv
import io
import pickle
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any, BinaryIO, Self, TextIO

from worker.registry.phones import normalize_phone
from worker.store.privacy import CONTROL_REASON, control_characters

CANONICAL_COLUMNS: tuple[str, ...] = (
    "external_id", "name", "phone", "email", "expires_on",
    "housing_type", "rental_registration_ends_on", "address", "employer", "locale",
    # Points (积分) and accumulated years (issue 6); optional like every column after expires_on.
    "accumulation_started_on", "points_basis", "points_valid_until", "labor_contract_ends_on",
    # Appended, so files and scripts written for the columns above keep their positions.
    "labor_contract_starts_on",
    "wecom_userid",  # 企业微信账号: the member's userid, for the wecom channel (issue 12)
)
# Position-wise the same as CANONICAL_COLUMNS: Chinese HR teams keep their own header row.
CHINESE_HEADERS: dict[str, str] = dict(zip(
    ("工号", "姓名", "手机", "邮箱", "居住证有效期至", "居住类型", "租赁备案到期日", "居住地址", "用人单位", "语言",
     "累计起始日", "积分依据", "积分有效期至", "劳动合同到期日", "劳动合同起始日", "企业微信账号"),
    CANONICAL_COLUMNS,
    strict=True,
))
HOUSING_TYPES: tuple[str, ...] = ("own", "relative", "rental", "dormitory")
POINTS_BASES: tuple[str, ...] = ("education", "title", "social_insurance_multiple")
_POINTS_ALIASES: dict[str, str] = {"学历": "education", "职称": "title", "社保倍数": "social_insurance_multiple"}
_DATE_COLUMNS = frozenset({"expires_on", "rental_registration_ends_on", "accumulation_started_on",
                           "points_valid_until", "labor_contract_ends_on", "labor_contract_starts_on"})
_HOUSING_ALIASES: dict[str, str] = {"自有": "own", "亲属": "relative", "租赁": "rental", "宿舍": "dormitory"}
_LOCALE_ALIASES: dict[str, str] = {
    "zh": "zh-CN", "zh-cn": "zh-CN", "中文": "zh-CN",
    "en": "en", "en-us": "en", "english": "en", "英文": "en",
}
# Upper bounds match the holders table, so a row that validates here also fits the database.
_MAX_LEN: dict[str, int] = {"external_id": 64, "name": 200, "address": 500, "employer": 200, "email": 320,
                            "wecom_userid": 64}
# WeCom's rule for a member's userid: 1-64 of letters, digits and _-@. starting with a letter or digit.
_WECOM_USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}")
# ASCII digits only: `\d` would also admit e.g. Arabic-Indic digits, which `int()` happily parses.
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})|([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})")
# Bytes read at a time when checking a file's encoding.
_READ_CHUNK = 1 << 20
# Validated rows per pickle in a spooled roster.
SPOOL_CHUNK = 1000
# Row errors listed in full per file (CLI, API, web); the rest are counted by reason.
MAX_LISTED_ERRORS = 100
# The export escapes a cell that a spreadsheet would run as a formula with a leading apostrophe
# (worker/http/web/export.py); an import takes it off again, so an export re-imports unchanged.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Columns whose text may span lines (a quoted multi-line address is one spreadsheet row).
_MULTILINE = frozenset({"address"})


@dataclass(frozen=True)
class RosterRow:
    row: int
    external_id: str
    expires_on: date
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    housing_type: str | None = None
    rental_registration_ends_on: date | None = None
    address: str | None = None
    employer: str | None = None
    locale: str = "zh-CN"
    accumulation_started_on: date | None = None
    points_basis: str | None = None
    points_valid_until: date | None = None
    labor_contract_ends_on: date | None = None
    labor_contract_starts_on: date | None = None
    wecom_userid: str | None = None
    # Canonical columns present in the header, so an update can leave absent columns untouched.
    present: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str
    # The reason without the row's specifics ("duplicate of an earlier row" for "duplicate of
    # row 5"), so a file's errors can be counted by reason; None: the reason itself.
    summary: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"row {self.row}: {self.column}: {self.reason}"

    @property
    def kind(self) -> tuple[str, str]:
        return self.column, self.summary or self.reason


class RosterError(ValueError):
    """The file is rejected. `errors` holds the first MAX_LISTED_ERRORS problems (one per bad
    cell, or a file-level one); `total` counts them all and `counts` by (column, reason), so a
    file with thousands of bad rows costs a small answer and a small amount of memory."""

    def __init__(self, errors: Iterable[RowError], total: int | None = None,
                 counts: Counter[tuple[str, str]] | None = None) -> None:
        self.errors: list[RowError] = list(errors)
        self.total = len(self.errors) if total is None else total
        self.counts: Counter[tuple[str, str]] = counts if counts is not None else Counter(e.kind for e in self.errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @property
    def truncated(self) -> bool:
        return self.total > len(self.errors)

    def by_reason(self) -> list[tuple[str, str, int]]:
        """(column, reason, count), most frequent first."""
        return [(column, reason, n) for (column, reason), n in self.counts.most_common()]

    def summary_line(self) -> str:
        """One line for what is not listed: "and 4900 more (5000 in all): 4000 × phone: ...; ..."."""
        kinds = "; ".join(f"{n} × {column}: {reason}" for column, reason, n in self.by_reason())
        return f"and {self.total - len(self.errors)} more ({self.total} in all): {kinds}"


class RowErrors:
    """Collects a file's row errors: the first `limit` in full, every one counted by reason."""

    def __init__(self, limit: int = MAX_LISTED_ERRORS) -> None:
        self.limit = limit
        self.listed: list[RowError] = []
        self.total = 0
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, error: RowError) -> None:
        self.total += 1
        self.counts[error.kind] += 1
        if len(self.listed) < self.limit:
            self.listed.append(error)

    def __len__(self) -> int:
        return self.total

    def error(self) -> RosterError:
        return RosterError(self.listed, self.total, self.counts)


def decode_roster(data: bytes) -> str:
    # utf-8-sig first: it also reads plain UTF-8 and strips Excel's BOM. gb18030 is a superset of
    # GBK, which is what Excel on a Chinese Windows saves as "CSV".
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RosterError([RowError(0, "file", "not UTF-8 or GBK text")])


def parse_date(raw: str) -> date:
    match = _DATE_RE.fullmatch(raw.strip())
    if not match:
        raise ValueError("not a date (use YYYY-MM-DD)")
    year, month, day = (int(g) for g in match.groups() if g is not None)
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError("not a real calendar date") from None


def normalize_housing_type(raw: str) -> str:
    text = raw.strip()
    value = _HOUSING_ALIASES.get(text, text.lower())
    if value not in HOUSING_TYPES:
        raise ValueError("must be one of " + ", ".join(HOUSING_TYPES))
    return value


def normalize_points_basis(raw: str) -> str:
    value = _POINTS_ALIASES.get(raw.strip(), raw.strip().lower())
    if value not in POINTS_BASES:
        raise ValueError("must be one of education, title, social_insurance_multiple (学历, 职称, 社保倍数)")
    return value


def normalize_wecom_userid(raw: str) -> str:
    """A WeCom member's userid (企业微信账号), as WeCom allows it."""
    value = raw.strip()
    if not _WECOM_USERID.fullmatch(value):
        raise ValueError("not a WeCom userid (letters, digits and _-@. only, starting with a letter or digit)")
    return value


def normalize_locale(raw: str) -> str:
    # Lower-case and "_" -> "-" so zh_CN, ZH-cn, en_US all reach the alias table.
    value = _LOCALE_ALIASES.get(raw.strip().lower().replace("_", "-"))
    if value is None:
        raise ValueError("must be zh-CN or en")
    return value


def _normalize_email(raw: str) -> str:
    text = raw.strip()
    local, _, domain = text.partition("@")
    if (
        text.count("@") != 1 or not local or any(c.isspace() for c in text)
        or "." not in domain.strip(".")  # a dot inside the domain, not just at its ends
    ):
        raise ValueError("not an email address")
    # Only the domain is case-insensitive; the local part is the mailbox owner's business.
    return f"{local}@{domain.lower()}"


def _clean(cell: str) -> str:
    # str.strip() covers the ideographic space (U+3000) but not a stray BOM (U+FEFF).
    text = cell.replace("\ufeff", "").strip()
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_START:
        return text[1:]  # the export's formula-injection escape, undone
    return text


def _map_header(record: Sequence[str], row: int, errors: list[RowError]) -> dict[str, int]:
    """Canonical column -> cell index; unknown headers are ignored."""
    index: dict[str, int] = {}
    for position, cell in enumerate(record):
        title = _clean(cell)
        column = CHINESE_HEADERS.get(title) or (title.lower() if title.lower() in CANONICAL_COLUMNS else None)
        if column is None:
            continue
        if column in index:  # e.g. both "phone" and "手机": which one wins would be a guess
            errors.append(RowError(row, column, "duplicate column"))
        else:
            index[column] = position
    for column in ("external_id", "expires_on"):
        if column not in index:
            errors.append(RowError(row, column, "missing column"))
    if "phone" not in index and "email" not in index and "wecom_userid" not in index:
        errors.append(RowError(row, "phone", "missing column (need phone or email)"))
    return index


def _parse_row(
    cells: dict[str, str], row: int, present: frozenset[str], errors: RowErrors
) -> RosterRow | None:
    values: dict[str, Any] = {}  # column -> normalized value; Any because types vary per column
    before = len(errors)
    for column in CANONICAL_COLUMNS:  # canonical order keeps error output stable
        raw = cells.get(column)
        if raw is None:
            if column in ("external_id", "expires_on"):
                errors.add(RowError(row, column, "required"))
            continue
        limit = _MAX_LEN.get(column)
        if limit is not None and len(raw) > limit:
            errors.add(RowError(row, column, f"longer than {limit} characters", "longer than allowed"))
            continue
        # Every way a holder's data comes in (file, API body, web form) is validated here, so
        # this is the one place that keeps NUL and its kind out of the registry (and the HTML).
        if control_characters(raw, multiline=column in _MULTILINE):
            errors.add(RowError(row, column, CONTROL_REASON))
            continue
        try:
            if column == "phone":
                values[column] = normalize_phone(raw)
            elif column == "email":
                values[column] = _normalize_email(raw)
            elif column in _DATE_COLUMNS:
                values[column] = parse_date(raw)
            elif column == "points_basis":
                values[column] = normalize_points_basis(raw)
            elif column == "housing_type":
                values[column] = normalize_housing_type(raw)
            elif column == "locale":
                values[column] = normalize_locale(raw)
            elif column == "wecom_userid":
                values[column] = normalize_wecom_userid(raw)
            else:
                values[column] = raw
        except ValueError as exc:
            errors.add(RowError(row, column, str(exc)))
    if "phone" not in cells and "email" not in cells and "wecom_userid" not in cells:
        errors.add(RowError(row, "phone" if "phone" in present else "email", "phone or email is required"))
    starts, ends = values.get("labor_contract_starts_on"), values.get("labor_contract_ends_on")
    if starts is not None and ends is not None and starts > ends:
        errors.add(RowError(row, "labor_contract_starts_on", f"after the contract's end ({ends.isoformat()})",
                            "after the contract's end"))
    if len(errors) > before:
        return None
    return RosterRow(row=row, present=present, **values)


def iter_roster_rows(
    header: Sequence[str], rows: Iterable[tuple[int, Sequence[str]]], *, header_row: int = 1
) -> Iterator[RosterRow]:
    """Validate already-split cells as they stream in, whatever file format they came from.

    Yields each valid row as soon as it is validated, so a caller can pass rows on (e.g. spool
    them to disk) without holding the file in memory; only the errors and each external_id's
    first row number (for duplicate detection) are kept. Once any row is bad nothing more is
    yielded, and when `rows` is exhausted a RosterError lists the problems (the first
    MAX_LISTED_ERRORS in full, every one counted by reason): a consumer must treat what it was
    given as provisional until the generator finishes cleanly.

    Each row carries its own number, so errors point at the row HR sees in their spreadsheet.
    Blank rows are skipped. `rows` is consumed lazily: a reader may raise RosterError mid-way
    (e.g. a size guard), and that error is what the caller gets.
    """
    header_errors: list[RowError] = []
    index = _map_header(header, header_row, header_errors)
    if header_errors:
        # Without those columns every row would fail too; that noise would hide the real problem.
        raise RosterError(header_errors)
    errors = RowErrors()
    present = frozenset(index)
    first_seen: dict[str, int] = {}
    any_rows = False
    for row, record in rows:
        # A record whose cells are all blank (",,,," is what Excel writes for an empty row) is
        # skipped.
        if not any(_clean(c) for c in record):
            continue
        any_rows = True
        cells = {
            column: value
            for column, position in index.items()
            if position < len(record) and (value := _clean(record[position]))
        }
        external_id = cells.get("external_id")
        if external_id is not None and external_id in first_seen:
            errors.add(RowError(row, "external_id", f"duplicate of row {first_seen[external_id]}",
                                "duplicate of an earlier row"))
        elif external_id is not None:
            first_seen[external_id] = row
        parsed = _parse_row(cells, row, present, errors)
        # After the first bad row the file is rejected anyway: keep validating, stop yielding.
        if parsed is not None and not errors:
            yield parsed
    if not any_rows:
        raise RosterError([RowError(0, "file", "no data rows")])
    if errors:
        raise errors.error()


def parse_roster_rows(
    header: Sequence[str], rows: Iterable[tuple[int, Sequence[str]]], *, header_row: int = 1
) -> list[RosterRow]:
    """Validate already-split cells into a list (see `iter_roster_rows`)."""
    return list(iter_roster_rows(header, rows, header_row=header_row))


def detect_encoding(stream: BinaryIO) -> str:
    """The encoding `decode_roster` would pick, found by streaming the file once (constant
    memory), and the stream rewound to its start."""
    for encoding in ("utf-8-sig", "gb18030"):
        stream.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            while chunk := stream.read(_READ_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        stream.seek(0)
        return encoding
    raise RosterError([RowError(0, "file", "not UTF-8 or GBK text")])


def _csv_records(text: TextIO) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with their physical record numbers (header = 1, blank lines counted),
    so they match the spreadsheet HR opens; a quoted multi-line address is one record, like one
    Excel row."""
    try:
        for number, record in enumerate(csv.reader(text), start=1):
            if any(_clean(c) for c in record):
                yield number, record
    except csv.Error as exc:  # e.g. a field over csv's size limit
        raise RosterError([RowError(0, "file", f"malformed csv: {str(exc).lower()}")]) from None


def iter_roster_csv(stream: BinaryIO) -> Iterator[RosterRow]:
    """Stream a roster CSV (UTF-8, UTF-8 with BOM or GBK) from a seekable binary file: valid rows
    as they are read, then RosterError at the end if anything was wrong (see `iter_roster_rows`).
    Memory stays flat in the file size apart from the external_ids kept to spot duplicates."""
    encoding = detect_encoding(stream)  # decoding is checked whole first, as `decode_roster` does
    # newline="": csv does its own line handling (quoted newlines, \r\n), as with io.StringIO.
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        records = _csv_records(text)
        first = next(records, None)
        if first is None:
            raise RosterError([RowError(0, "file", "empty file")])
        header_row, header = first
        try:
            yield from iter_roster_rows(header, records, header_row=header_row)
        except RosterError:
            # A malformed record anywhere wins over header and cell errors, as it did when the
            # whole file was read before validation: read on, and let a csv error surface.
            for _ in records:
                pass
            raise
    finally:
        text.detach()  # the caller owns (and closes) the binary stream


def parse_roster(data: bytes) -> list[RosterRow]:
    """Parse a roster CSV (UTF-8, UTF-8 with BOM or GBK) held in memory."""
    return list(iter_roster_csv(io.BytesIO(data)))


class SpooledRoster:
    """Validated rows parked in an anonymous temporary file, so a second pass (the database
    write) can stream them back without validating twice or holding them in memory."""

    def __init__(self, chunk_size: int = SPOOL_CHUNK) -> None:
        # Anonymous: deleted when closed, and by the OS if the process dies. Closed by close().
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._chunk_size = chunk_size
        self._pending: list[RosterRow] = []
        self.rows = 0

    def add(self, row: RosterRow) -> None:
        self._pending.append(row)
        self.rows += 1
        if len(self._pending) >= self._chunk_size:
            self._flush()

    def finish(self) -> None:
        """Write out the last partial chunk; iterating does this too."""
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            # One pickle per chunk: the rows' shared `present` frozenset is stored once per chunk.
            pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._pending = []

    def __iter__(self) -> Iterator[RosterRow]:
        self._flush()
        self._file.seek(0)
        while True:
            try:
                chunk: list[RosterRow] = pickle.load(self._file)  # only ever our own temp file
            except EOFError:
                return
            yield from chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def spool_roster(rows: Iterable[RosterRow], chunk_size: int = SPOOL_CHUNK) -> SpooledRoster:
    """Validate a whole roster (first pass), keeping the valid rows on disk. Raises RosterError
    (and keeps nothing) if any row is bad, so nothing reaches the database from a bad file."""
    spooled = SpooledRoster(chunk_size)
    try:
        for row in rows:
            spooled.add(row)
    except BaseException:
        spooled.close()
        raise
    spooled.finish()
    return spooled
