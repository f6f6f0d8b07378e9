"""Backups of the embedded default: a consistent online copy of the SQLite registry, and a restore
that checks what it restores.

`backup` uses SQLite's online backup API (sqlite3.Connection.backup): it copies the database
page by page while the daemon keeps writing, restarting the copy when a writer changes a page
already copied, and the result is one consistent moment of the registry, WAL included. The copy
is written beside the target and renamed into place only after `PRAGMA integrity_check` passes,
so a failed backup never leaves a half file under the name a cron job rotates.

`restore` copies a backup into the configured database the same way, after checking it is a
permit-worker registry (an integrity check, and a schema this code knows); the daemon and the
HTTP app must be stopped. PostgreSQL: pg_dump and point-in-time recovery (deploy/README.md).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from worker.store.db import code_heads

_PAGES_PER_STEP = 1024  # copy in steps, so writers get the lock between them


class BackupError(ValueError):
    """A backup or restore refused, in one line for the operator (the CLI exits 2)."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    holders: int
    notifications: int
    teams: int
    revision: str
    bytes: int


def sqlite_file(url: str) -> Path:
    """The file of a SQLite URL; BadInput for another database (or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError("backup and restore are for the embedded SQLite registry; on PostgreSQL use pg_dump "
                       "and point-in-time recovery (deploy/README.md, \"Backups\")")
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("the database is in memory: there is nothing on disk to back up")
    return Path(parsed.database)


def inspect_file(path: Path) -> Snapshot:
    """What a registry file holds; BadInput if it is not a sound permit-worker registry."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot open it as SQLite ({exc})") from None
    try:
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()
            if not ok or ok[0] != "ok":
                raise BackupError(f"{path}: the integrity check failed ({ok[0] if ok else 'no answer'})")
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("holders", "notifications", "teams")]
        except sqlite3.DatabaseError as exc:  # not SQLite at all, or not our tables
            raise BackupError(f"{path}: not a permit-worker registry ({exc})") from None
    finally:
        conn.close()
    if revision is None:
        raise BackupError(f"{path}: not a permit-worker registry (no schema version)")
    return Snapshot(path, counts[0], counts[1], counts[2], str(revision[0]), path.stat().st_size)


def _copy(source: sqlite3.Connection, target_path: Path) -> None:
    target = sqlite3.connect(target_path)
    try:
        source.backup(target, pages=_PAGES_PER_STEP)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        target.close()


def backup(url: str, target: Path) -> Snapshot:
    """A consistent copy of the running registry at `target` (replaced atomically if present)."""
    source_path = sqlite_file(url)
    if not source_path.is_file():
        raise BackupError(f"{source_path}: no such database (PERMIT_DATABASE_URL)")
    if target.resolve() == source_path.resolve():
        raise BackupError("the backup file must not be the database itself")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(source_path, timeout=30)
        try:
            _copy(source, partial)
        finally:
            source.close()
        snapshot = inspect_file(partial)
        os.replace(partial, target)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Snapshot(target, snapshot.holders, snapshot.notifications, snapshot.teams, snapshot.revision,
                    target.stat().st_size)


def restore(backup_file: Path, url: str) -> Snapshot:
    """Replace the configured registry with a checked backup (the caller has asked for --yes)."""
    snapshot = inspect_file(backup_file)
    if snapshot.revision not in code_heads() and not _known_revision(snapshot.revision):
        raise BackupError(f"{backup_file}: schema {snapshot.revision} is not one this version knows: restore it "
                       "with the version that wrote it")
    target_path = sqlite_file(url)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(target_path, timeout=30)
        try:
            source.backup(target, pages=_PAGES_PER_STEP)  # the target's WAL is rewritten with it
        finally:
            target.close()
    finally:
        source.close()
    return inspect_file(target_path)


def _known_revision(revision: str) -> bool:
    """A revision of this code's migration history (older backups restore, then `db upgrade`)."""
    from alembic.script import ScriptDirectory

    from worker.store.db import alembic_config

    history = ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()
    return any(script.revision == revision for script in history)
