"""Roster upload in two steps: preview what would change, then write it when HR confirms.

The preview runs the real import (`registry.import_roster`) in a transaction that is rolled
back, so "new / updated / unchanged" is exactly what confirming will do. The uploaded bytes
wait in a private temp directory under a random id, bound to the team and the browser session
that uploaded them; confirming re-parses them and runs the same import + `events.handle` path
as the API. Nothing touches the registry before that.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from worker import registry
from worker.events import Context, handle
from worker.models import Holder, Team
from worker.roster import RosterError, RosterRow, decode_roster, parse_roster_rows
from worker.roster_xlsx import XLSX_CONTENT_TYPE, cell_text, parse_upload
from worker.runtime import Runtime

MAX_AGE_SECONDS = 3600  # an unconfirmed upload is forgotten after an hour
_ID = re.compile(r"[A-Za-z0-9_-]{20,64}")
_COMPARED = ("name", "phone", "email", "expires_on", "housing_type", "rental_registration_ends_on",
             "address_fingerprint", "employer", "locale")
_BAD_INPUT = re.compile(r"row (\d+): (\w+): (.*)")


@dataclass
class RowChange:
    row: int
    external_id: str
    name: str | None
    changes: list[str] = field(default_factory=list)  # column names; "address" for the fingerprint
    renewed: bool = False


@dataclass
class Preview:
    id: str
    team_id: int
    sid: str
    filename: str
    rows: int = 0
    new: list[RowChange] = field(default_factory=list)
    updated: list[RowChange] = field(default_factory=list)
    unchanged: list[RowChange] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"row", "column", "reason"}
    file_error: bool = False  # the file as a whole is unreadable or lacks columns: no row list

    @property
    def can_confirm(self) -> bool:
        return not self.rejected and bool(self.new or self.updated or self.unchanged)


def _raw_records(filename: str, content_type: str | None, data: bytes) -> list[tuple[int, list[str]]]:
    """The file's non-blank records as (row number, cells), numbered as the real parser does.

    Only used after `parse_upload` reported row errors, so the file already passed its size and
    format guards; this re-read finds the rows that are fine, to preview them too.
    """
    name = filename.lower()
    if name.endswith(".xlsx") or (content_type or "").startswith(XLSX_CONTENT_TYPE) or data.startswith(b"PK\x03\x04"):
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
        try:
            sheet = book.worksheets[0]
            sheet.reset_dimensions()
            records = [(n, [cell_text(v) for v in row])
                       for n, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
        finally:
            book.close()
    else:
        records = list(enumerate(csv.reader(io.StringIO(decode_roster(data), newline="")), start=1))
    return [(n, r) for n, r in records if any(c.strip() for c in r)]


def _good_rows(filename: str, content_type: str | None, data: bytes, bad: set[int]) -> tuple[list[RosterRow], int]:
    """Rows without errors, each validated alone (and so exactly as the real parser would),
    plus the number of data rows in the file."""
    records = _raw_records(filename, content_type, data)
    if not records:
        return [], 0
    (header_row, header), body = records[0], records[1:]
    good: list[RosterRow] = []
    for number, cells in body:
        if number in bad:
            continue
        try:
            good.extend(parse_roster_rows(header, [(number, cells)], header_row=header_row))
        except RosterError:
            continue
    return good, len(body)


def _snapshot(holder: Holder) -> dict[str, Any]:
    return {name: getattr(holder, name) for name in _COMPARED}


def _dry_run(runtime: Runtime, team_id: int, rows: list[RosterRow], preview: Preview) -> None:
    """Run the import and roll it back, recording what it did to each row."""
    by_id = {r.external_id: r for r in rows}
    session = runtime.factory()
    try:
        team = session.get(Team, team_id)
        if team is None:
            raise registry.NotFound("team gone")
        before = {h.external_id: _snapshot(h) for h in session.scalars(
            select(Holder).where(Holder.team_id == team_id, Holder.external_id.in_(list(by_id))))}
        try:
            summary = registry.import_roster(session, team, rows, runtime.settings.fingerprint_key)
        except registry.BadInput as exc:  # e.g. an update would leave neither phone nor email
            match = _BAD_INPUT.fullmatch(str(exc))
            row, column, reason = (int(match[1]), match[2], match[3]) if match else (0, "file", str(exc))
            preview.rejected.append({"row": row, "column": column, "reason": reason})
            return
        after = {h.external_id: _snapshot(h) for h in session.scalars(
            select(Holder).where(Holder.team_id == team_id, Holder.external_id.in_(summary.updated)))}
        renewed = set(summary.renewed)
        for external_id in summary.created:
            preview.new.append(RowChange(by_id[external_id].row, external_id, by_id[external_id].name))
        for external_id in summary.updated:
            old, new = before.get(external_id, {}), after.get(external_id, {})
            changes = [("address" if k == "address_fingerprint" else k) for k in _COMPARED if old.get(k) != new.get(k)]
            preview.updated.append(RowChange(by_id[external_id].row, external_id, new.get("name"), changes,
                                             external_id in renewed))
        for external_id in summary.unchanged:
            preview.unchanged.append(RowChange(by_id[external_id].row, external_id, before[external_id]["name"]))
    finally:
        session.rollback()
        session.close()


def build_preview(runtime: Runtime, team_id: int, sid: str, filename: str, content_type: str | None,
                  data: bytes) -> Preview:
    preview = Preview(id=secrets.token_urlsafe(24), team_id=team_id, sid=sid, filename=filename)
    try:
        rows = parse_upload(filename, content_type, data)
        preview.rows = len(rows)
    except RosterError as exc:
        preview.rejected = [{"row": e.row, "column": e.column, "reason": e.reason} for e in exc.errors]
        if any(e.row == 0 or e.reason.startswith(("missing column", "duplicate column")) for e in exc.errors):
            preview.file_error = True  # header or file problems: the rows mean nothing yet
            return preview
        rows, preview.rows = _good_rows(filename, content_type, data, {e.row for e in exc.errors})
    if rows:
        _dry_run(runtime, team_id, rows, preview)
    return preview


def commit_upload(runtime: Runtime, team: Team, session: Session, filename: str, content_type: str | None,
                  data: bytes) -> registry.ImportSummary:
    """The API's import path: validate, import, act on the events (RosterError if now invalid)."""
    rows = parse_upload(filename, content_type, data)
    summary = registry.import_roster(session, team, rows, runtime.settings.fingerprint_key)
    handle(session, summary.events, Context(runtime.policy, runtime.settings.tz, datetime.now(UTC)))
    return summary


class UploadStore:
    """Uploads awaiting confirmation: `<id>.bin` (the bytes) and `<id>.json` (the preview)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.gettempdir()) / "permit-worker-uploads"

    def _dir(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.directory

    def save(self, preview: Preview, data: bytes, content_type: str | None) -> None:
        self.purge()
        directory = self._dir()
        (directory / f"{preview.id}.bin").write_bytes(data)
        meta = {"preview": asdict(preview), "content_type": content_type}
        (directory / f"{preview.id}.json").write_text(json.dumps(meta, default=str), encoding="utf-8")

    def load(self, upload_id: str, team_id: int, sid: str) -> tuple[Preview, bytes, str | None] | None:
        """The upload, if it exists, is fresh, and belongs to this team and session; else None."""
        if not _ID.fullmatch(upload_id):
            return None
        meta_path, data_path = self.directory / f"{upload_id}.json", self.directory / f"{upload_id}.bin"
        try:
            if time.time() - meta_path.stat().st_mtime > MAX_AGE_SECONDS:
                return None
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            data = data_path.read_bytes()
        except (OSError, ValueError):
            return None
        raw = meta["preview"]
        if raw["team_id"] != team_id or raw["sid"] != sid:
            return None
        for kind in ("new", "updated", "unchanged"):
            raw[kind] = [RowChange(**c) for c in raw[kind]]
        return Preview(**raw), data, meta.get("content_type")

    def discard(self, upload_id: str) -> None:
        if _ID.fullmatch(upload_id):
            for suffix in (".bin", ".json"):
                (self.directory / f"{upload_id}{suffix}").unlink(missing_ok=True)

    def purge(self) -> None:
        if not self.directory.is_dir():
            return
        cutoff = time.time() - MAX_AGE_SECONDS
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue  # another process removed it first

