"""Roster files on the command line: read CSV or XLSX by content, say errors in the file's own
words, show progress on a terminal, and write the team's registry back out as CSV or XLSX.

The web pages do the same with the same code (worker/registry/roster*.py for reading,
worker/http/web/export.py for writing, worker/http/web/i18n.py for the words), so a file that the
web hands out imports here, and a file exported here imports on the web, unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click

from worker.http.web.i18n import column_label, roster_error
from worker.registry.records import BadInput
from worker.registry.roster import CHINESE_HEADERS, RosterError, RosterRow, iter_roster_csv, spool_roster
from worker.registry.roster_pipe import PIPELINE_FROM_BYTES, validated_in_background
from worker.registry.roster_xlsx import header_titles, parse_upload

# A ZIP archive (XLSX) or an OLE2 compound file (old .xls): read whole, as the web does.
_WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
_HEAD = 64 * 1024


def _tracked(rows: Iterator[RosterRow], stream: BinaryIO, bar: Any) -> Iterator[RosterRow]:
    """The rows, moving the progress bar to how far into the file they are."""
    done = 0
    for n, row in enumerate(rows):
        if bar is not None and n % 500 == 0:
            position = stream.tell()
            bar.update(max(0, position - done))
            done = max(done, position)
        yield row


def language_of(head: bytes) -> str:
    """"zh" when the file's header row uses the Chinese column names, else "en"."""
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = head.decode(encoding, errors="ignore" if encoding == "gbk" else "strict")
        except UnicodeDecodeError:
            continue
        if any(title in text for title in CHINESE_HEADERS):
            return "zh"
    return "en"


def localized(exc: RosterError, lang: str) -> RosterError:
    """The same errors, naming each column as the file named it and giving the reason in its
    language (a Chinese header row gets "第 3 行 手机：不是有效的中国大陆手机号")."""
    if lang != "zh":
        return exc
    lines = [f"第 {e.row} 行 {column_label('zh', e.column)}：{roster_error('zh', e.reason)}" if e.row
             else f"{column_label('zh', e.column)}：{roster_error('zh', e.reason)}" for e in exc.errors]
    return LocalizedRosterError(exc, lines, lang)


class LocalizedRosterError(RosterError):
    def __init__(self, original: RosterError, lines: list[str], lang: str) -> None:
        super().__init__(original.errors, original.total, original.counts)
        self.lines = lines
        self.lang = lang

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def summary_line(self) -> str:
        kinds = "；".join(f"{n} × {column_label('zh', column)}：{roster_error('zh', reason)}"
                         for column, reason, n in self.by_reason())
        return f"另有 {self.total - len(self.errors)} 处错误（共 {self.total} 处）：{kinds}"


@contextmanager
def roster_rows(path: Path) -> Iterator[tuple[Iterator[RosterRow], str]]:
    """The file's valid rows and the file's language; RosterError (localized) for a bad file.
    Memory is flat in the file size for CSV either way: a small file is validated whole first,
    its rows spooled to a temporary file (nothing reaches the database from a bad one); a big
    one is validated by a child process while the import writes it (worker/registry/roster_pipe.py),
    and a bad row anywhere raises from the rows iterator, rolling the import back."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        head = stream.read(_HEAD)
        stream.seek(0)
        if head.startswith(_WORKBOOK_MAGIC):
            data = stream.read()
            lang = "zh" if any(t in CHINESE_HEADERS for t in header_titles(data)) else "en"
            try:
                parsed = parse_upload(path.name, None, data)
            except RosterError as exc:
                raise localized(exc, lang) from None
            with spool_roster(iter(parsed)) as spooled:
                yield _writing(spooled, spooled.rows), lang
            return
        lang = language_of(head)
        file_size = path.stat().st_size
        size = file_size if sys.stderr.isatty() else 0  # a progress bar only on a terminal
        if file_size >= PIPELINE_FROM_BYTES:
            # A big file: checked on a second core while its first rows are written already.
            with _checked_while_writing(path, size, lang) as rows:
                yield rows, lang
            return
        try:
            with _progress(size) as bar, spool_roster(_tracked(iter_roster_csv(stream), stream, bar)) as spooled:
                yield _writing(spooled, spooled.rows), lang
        except RosterError as exc:
            raise localized(exc, lang) from None


@contextmanager
def _checked_while_writing(path: Path, size: int, lang: str) -> Iterator[Iterator[RosterRow]]:
    """The rows of a big file as a child process validates them; one bar (over `size` bytes,
    none for 0) for both passes."""
    with _progress(size, "checking and writing the roster") as bar:
        done = 0

        def moved(position: int) -> None:
            nonlocal done
            if bar is not None:
                bar.update(max(0, position - done))
                done = max(done, position)

        with validated_in_background(path, moved) as rows:
            yield _localized_errors(rows, lang)


def _localized_errors(rows: Iterator[RosterRow], lang: str) -> Iterator[RosterRow]:
    try:
        yield from rows
    except RosterError as exc:
        raise localized(exc, lang) from None


def _writing(rows: Iterable[RosterRow], total: int) -> Iterator[RosterRow]:
    """The checked rows as the import writes them, with a second bar on a terminal (writing a
    50,000-row file takes seconds too)."""
    if not total or not sys.stderr.isatty():
        yield from rows
        return
    with click.progressbar(length=total, label="writing to the registry", file=sys.stderr) as bar:
        for n, row in enumerate(rows, 1):
            yield row
            if n % 500 == 0:
                bar.update(500)
        bar.update(total % 500)


@contextmanager
def _progress(size: int, label: str = "checking the roster") -> Iterator[Any]:
    """A progress bar over the file's bytes on a terminal (a 50,000-row file takes seconds)."""
    if not size:
        yield None
        return
    with click.progressbar(length=size, label=label, file=sys.stderr) as bar:
        yield bar
