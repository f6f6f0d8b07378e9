"""Roster uploads as XLSX, and picking CSV or XLSX for an HTTP upload.

The XLSX reader only turns a workbook into (row number, cells as text) pairs; validation is
`roster.parse_roster_rows`, shared with CSV, so both formats accept the same columns and report
the same `row N: column: reason` errors. Uploads are untrusted, so reading is bounded up front
(unzipped size) and while streaming (rows, cells) instead of trusting what the file declares.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Generator
from contextlib import closing
from datetime import date, datetime, time
from typing import TYPE_CHECKING

from openpyxl import load_workbook

from worker.registry.roster import (
    RosterError,
    RosterRow,
    RowError,
    parse_roster,
    parse_roster_rows,
)

if TYPE_CHECKING:  # a private module: imported for the annotation only
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

# Non-empty data rows after the header: far above any real roster, low enough to bound the work.
MAX_ROWS: int = 200_000
# A full 200,000-row, 10-column roster as written by openpyxl unzips to about 110 MiB of XML.
# zipfile never yields more than an entry's declared size (it stops there, then fails the CRC), so
# checking the declared sizes really does cap decompression: a zip bomb is refused before parsing.
MAX_UNZIPPED_BYTES: int = 256 * 1024 * 1024
# Cells handed out by openpyxl, blank ones included. openpyxl pads every row to its last cell, so a
# tiny sheet with one cell at column ZZZ per row would otherwise cost 18,278 cells a row.
MAX_CELLS: int = 50_000_000
# Excel's own limit. openpyxl fills gaps with empty rows, so a single <row r="999999999999"> would
# otherwise spin through a trillion of them.
_EXCEL_MAX_ROW: int = 1_048_576

XLSX_CONTENT_TYPE: str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ZIP_MAGIC: bytes = b"PK\x03\x04"
# OLE2 compound file: old binary .xls, and also password-protected .xlsx (unreadable here too).
_OLE_MAGIC: bytes = b"\xd0\xcf\x11\xe0"

_UNREADABLE = RowError(0, "file", "not a readable .xlsx workbook")
_TOO_LARGE = RowError(0, "file", "workbook is too large to read")
_OLD_XLS = RowError(0, "file", "old .xls files are not supported: save as .xlsx or CSV")


def cell_text(value: object) -> str:
    """One cell as the text a CSV export of it would hold, so the CSV validators apply unchanged."""
    if value is None:
        return ""
    if isinstance(value, datetime):  # before `date`: datetime is a date subclass
        # Excel has no date-only type: a date cell arrives as midnight of that day.
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):  # before `int`: bool is an int subclass; Excel shows TRUE/FALSE
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        # Excel stores every number as a double: a phone typed as 13800138000 may come back as
        # 13800138000.0, which must not reach validation as "13800138000.0".
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, time):
        return value.isoformat()
    return str(value).strip()  # text, and also error codes ("#N/A") and durations


def _check_archive(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except MemoryError:
        raise
    except Exception:
        raise RosterError([_UNREADABLE]) from None
    if unzipped > MAX_UNZIPPED_BYTES:
        raise RosterError([_TOO_LARGE])


def _sheet_rows(sheet: ReadOnlyWorksheet) -> Generator[tuple[int, list[str]], None, None]:
    """Non-blank rows as (sheet row number, cell texts); the first one yielded is the header."""
    # The <dimension> element is only a claim: openpyxl would stop at its last row (silently
    # dropping rows when it is wrong) and pad every row to its width. Read what is really there.
    sheet.reset_dimensions()
    values = sheet.iter_rows(values_only=True)
    cells_left = MAX_CELLS
    data_rows = -1  # the first non-blank row is the header, not data
    number = 0
    while True:
        try:
            # The sheet XML is parsed lazily, so a corrupt part can fail here rather than at load.
            row = next(values, None)
        except MemoryError:
            raise
        except Exception:
            raise RosterError([_UNREADABLE]) from None
        if row is None:
            return
        number += 1  # openpyxl yields one row per sheet row, gaps included, starting at row 1
        if number > _EXCEL_MAX_ROW:
            raise RosterError([_UNREADABLE])
        cells_left -= max(1, len(row))  # an empty row still costs a step
        if cells_left < 0:
            raise RosterError([_TOO_LARGE])
        if all(value is None for value in row):  # cheap test first: most padding is None
            continue
        cells = [cell_text(value) for value in row]
        if not any(cell.strip() for cell in cells):
            continue
        data_rows += 1
        if data_rows > MAX_ROWS:  # read at call time, so tests can lower it
            raise RosterError([RowError(0, "file", f"more than {MAX_ROWS} data rows")])
        yield number, cells


def parse_roster_xlsx(data: bytes) -> list[RosterRow]:
    """Parse the first worksheet of an .xlsx roster; row numbers are the sheet's own (header = 1).

    As with CSV, blank rows are skipped, and the header is the first non-blank row.
    """
    _check_archive(data)
    try:
        # data_only: a formula cell gives the value Excel last calculated, not "=A1&B1".
        # keep_links=False: external-workbook links are never needed, so don't parse them.
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except MemoryError:
        raise
    except Exception:
        raise RosterError([_UNREADABLE]) from None
    try:  # read-only workbooks keep the archive open until closed
        if not workbook.worksheets:  # e.g. only chart sheets
            raise RosterError([RowError(0, "file", "empty file")])
        # closing(): a header error leaves the row reader suspended; stop it before the archive goes.
        with closing(_sheet_rows(workbook.worksheets[0])) as rows:
            first = next(rows, None)
            if first is None:
                raise RosterError([RowError(0, "file", "empty file")])
            header_row, header = first
            return parse_roster_rows(header, rows, header_row=header_row)
    finally:
        workbook.close()


def header_titles(data: bytes) -> list[str]:
    """The first non-blank row of the first worksheet (what the file calls its columns); [] when
    it cannot be read (parse_roster_xlsx then says why)."""
    try:
        _check_archive(data)
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception:
        return []
    try:
        if not workbook.worksheets:
            return []
        with closing(_sheet_rows(workbook.worksheets[0])) as rows:
            first = next(rows, None)
            return [] if first is None else [cell.strip() for cell in first[1]]
    except RosterError:
        return []
    finally:
        workbook.close()


def _is_xls(name: str, data: bytes) -> bool:
    # The content type is not used: browsers send the .xls type (application/vnd.ms-excel) for
    # plain .csv files too when Excel is installed. The bytes win over the name, so an .xlsx
    # renamed to .xls is still read.
    is_zip = data.startswith(_ZIP_MAGIC)
    return data.startswith(_OLE_MAGIC) or (name.endswith(".xls") and not is_zip)


def parse_upload(filename: str | None, content_type: str | None, data: bytes) -> list[RosterRow]:
    """Parse an uploaded roster as XLSX or CSV, going by file name, content type and magic bytes."""
    name = (filename or "").strip().lower()
    # "type/subtype; param=..." -> "type/subtype"; media types are case-insensitive.
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if _is_xls(name, data):
        raise RosterError([_OLD_XLS])
    if name.endswith(".xlsx") or media_type == XLSX_CONTENT_TYPE or data.startswith(_ZIP_MAGIC):
        return parse_roster_xlsx(data)
    return parse_roster(data)
