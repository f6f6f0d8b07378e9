"""Roster upload in two steps: preview what would change, then write it when HR confirms.

The preview runs the real import (`service.preview_rows`) in a unit of work that is rolled
back, so "new / updated / unchanged" is exactly what confirming will do. The uploaded bytes
wait in a private temp directory under a random id, bound to the team and the browser session
that uploaded them; confirming re-parses them and runs the same use case (`service.import_rows`)
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
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from worker.ops.runtime import Runtime
from worker.registry import records as registry
from worker.registry import service
from worker.registry.roster import RosterError, RosterRow, decode_roster, parse_roster_rows
from worker.registry.roster_import import EARLIER_EXPIRY, ImportReport
from worker.registry.roster_xlsx import XLSX_CONTENT_TYPE, cell_text, parse_upload
from worker.store.maintenance import checkpoint_after_erasure
from worker.store.models import Holder

MAX_AGE_SECONDS = 3600  # an unconfirmed upload is forgotten after an hour
PURGE_EVERY_SECONDS = 300  # how often the HTTP app removes forgotten uploads (worker.http.app)
_ID = re.compile(r"[A-Za-z0-9_-]{20,64}")


@dataclass
class RowChange:
    row: int
    external_id: str
    name: str | None
    # {"field", "old", "new", "hidden"} per changed field; "address" is hidden (a fingerprint).
    changes: list[dict[str, Any]] = field(default_factory=list)
    renewed: bool = False
    loses_auto_renewal: list[str] = field(default_factory=list)


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
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"row", "column", "reason"}, the first 100
    rejected_total: int = 0  # every problem, listed or not
    rejected_counts: list[dict[str, Any]] = field(default_factory=list)  # {"column", "reason", "count"}
    file_error: bool = False  # the file as a whole is unreadable or lacks columns: no row list
    # Rows whose expires_on is earlier than the one on file: {"row", "external_id", "on_file", "in_file"}.
    # Rejected unless HR ticks the override, which rebuilds the preview with it set.
    earlier: list[dict[str, Any]] = field(default_factory=list)
    allow_earlier_expiry: bool = False
    enqueued: int = 0  # reminders that go out at once on confirm
    # "This file lists everyone" (the CLI's --full-roster): holders missing from it have left and
    # are deleted on confirm, after HR ticks that they mean it. {"external_id", "name"}, all of them.
    full_roster: bool = False
    leavers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_confirm(self) -> bool:
        return not self.rejected and bool(self.new or self.updated or self.unchanged)

    @property
    def losing(self) -> list[RowChange]:
        """Holders who lose auto-renewal this cycle: phone, employer or address changed."""
        return [c for c in self.updated if c.loses_auto_renewal]


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


def _dry_run(runtime: Runtime, team_id: int, rows: list[RosterRow], preview: Preview) -> None:
    """Run the import, and what confirming sets off (the reminders due at once), then roll it
    all back, recording what it did to each row. Rows the import refuses (an earlier expiry,
    no contact left) are listed as rejected, and the rest previewed without them."""
    by_id = {r.external_id: r for r in rows}
    by_row = {r.row: r for r in rows}
    with runtime.unit() as uow:  # never committed: leaving the block rolls everything back
        team = service.team_of(uow, team_id)
        names = {h.external_id: h.name for h in uow.session.scalars(
            select(Holder).where(Holder.team_id == team_id, Holder.external_id.in_(list(by_id))))}
        try:
            summary = service.preview_rows(uow, team, rows, runtime.settings.fingerprint_key,
                                           allow_earlier_expiry=preview.allow_earlier_expiry)
        except RosterError as exc:
            _reject(preview, exc, by_row)
            uow.session.rollback()
            refused = {e.row for e in exc.errors}
            remaining = [r for r in rows if r.row not in refused]
            if remaining and not exc.truncated:
                _dry_run(runtime, team_id, remaining, preview)
            return
        preview.enqueued = uow.enqueued_count
        for external_id in summary.created:
            preview.new.append(RowChange(by_id[external_id].row, external_id, by_id[external_id].name))
        for change in summary.changes:
            preview.updated.append(RowChange(
                change.row, change.external_id, change.name,
                [{"field": c.field, "old": c.old, "new": c.new, "hidden": c.hidden} for c in change.changes],
                change.renewed, list(change.loses_auto_renewal)))
        for external_id in summary.unchanged:
            preview.unchanged.append(RowChange(by_id[external_id].row, external_id, names.get(external_id)))


def _reject(preview: Preview, exc: RosterError, by_row: dict[int, RosterRow] | None = None) -> None:
    preview.rejected.extend({"row": e.row, "column": e.column, "reason": e.reason} for e in exc.errors)
    preview.rejected_total += exc.total
    counts = {(c["column"], c["reason"]): c for c in preview.rejected_counts}
    for column, reason, n in exc.by_reason():
        entry = counts.setdefault((column, reason), {"column": column, "reason": reason, "count": 0})
        entry["count"] += n
    preview.rejected_counts = sorted(counts.values(), key=lambda c: -c["count"])
    for e in exc.errors:
        row = (by_row or {}).get(e.row)
        if e.summary == EARLIER_EXPIRY and row is not None:
            on_file = e.reason.partition("(")[2].partition(")")[0]
            preview.earlier.append({"row": e.row, "external_id": row.external_id, "on_file": on_file,
                                    "in_file": row.expires_on.isoformat()})


def build_preview(runtime: Runtime, team_id: int, sid: str, filename: str, content_type: str | None,
                  data: bytes, allow_earlier_expiry: bool = False, full_roster: bool = False) -> Preview:
    preview = Preview(id=secrets.token_urlsafe(24), team_id=team_id, sid=sid, filename=filename,
                      allow_earlier_expiry=allow_earlier_expiry, full_roster=full_roster)
    try:
        rows = parse_upload(filename, content_type, data)
        preview.rows = len(rows)
    except RosterError as exc:
        _reject(preview, exc)
        if any(e.row == 0 or e.reason.startswith(("missing column", "duplicate column")) for e in exc.errors):
            preview.file_error = True  # header or file problems: the rows mean nothing yet
            return preview
        if exc.truncated:  # thousands of bad rows: the listed ones and the counts say enough
            return preview
        rows, preview.rows = _good_rows(filename, content_type, data, {e.row for e in exc.errors})
    if rows:
        _dry_run(runtime, team_id, rows, preview)
    if full_roster and not preview.rejected:
        with runtime.unit() as uow:  # only reads
            gone = registry.leavers(uow.session, service.team_of(uow, team_id), {r.external_id for r in rows})
            session = uow.session
            names: dict[str, str | None] = {}
            for start in range(0, len(gone), 500):
                names.update((e, n) for e, n in session.execute(select(Holder.external_id, Holder.name).where(
                    Holder.team_id == team_id, Holder.external_id.in_(gone[start:start + 500]))))
        preview.leavers = [{"external_id": e, "name": names.get(e)} for e in gone]
    return preview


def commit_upload(runtime: Runtime, team_id: int, filename: str, content_type: str | None,
                  data: bytes, allow_earlier_expiry: bool = False,
                  leavers: list[str] | None = None, actor: str = "system") -> tuple[ImportReport, int]:
    """The API's import path: validate, import, act on the events (RosterError if now invalid).
    `leavers` (a full roster's preview): delete those of them the file still does not list, in
    the same transaction (never one the preview did not show). Returns the report and how many
    were deleted."""
    rows = parse_upload(filename, content_type, data)
    deleted = 0
    with runtime.unit(actor) as uow:
        team = service.team_of(uow, team_id)
        report = service.import_rows(uow, team, rows, runtime.settings.fingerprint_key,
                                     allow_earlier_expiry=allow_earlier_expiry)
        if leavers:
            still = set(registry.leavers(uow.session, team, {r.external_id for r in rows}))
            deleted = registry.delete_leavers(uow.session, team, [e for e in leavers if e in still], actor)
        uow.commit()
    if deleted:
        checkpoint_after_erasure(runtime.engine)  # as for one erasure: the deleted rows leave the disk
    return report, deleted


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

    def discard_session(self, sid: str) -> int:
        """Remove every upload of one browser session (at sign-out): an unconfirmed roster is
        personal data waiting for nobody. Returns how many were removed."""
        removed = 0
        if not self.directory.is_dir():
            return removed
        for meta_path in self.directory.glob("*.json"):
            try:
                if json.loads(meta_path.read_text(encoding="utf-8"))["preview"]["sid"] == sid:
                    self.discard(meta_path.stem)
                    removed += 1
            except (OSError, ValueError, KeyError, TypeError):
                continue  # gone meanwhile, or not ours to read
        return removed

    def purge(self, dry_run: bool = False) -> int:
        """Forget uploads older than MAX_AGE_SECONDS; returns how many (files pairs count once)."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - MAX_AGE_SECONDS
        removed = 0
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    removed += path.suffix == ".json"
                    if not dry_run:
                        path.unlink()
            except OSError:
                continue  # another process removed it first
        return removed

