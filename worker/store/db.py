"""Engine, sessions and schema migration."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    # hide_parameters: an error's message never carries the statement's values (names, phones).
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.startswith("sqlite"):
        # Several threads (scheduler jobs) share the engine; SQLite serialises writers itself.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout first, so every pragma below waits for a writer instead of failing.
    cursor.execute("PRAGMA busy_timeout=30000")
    _ensure_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deletion really deletes: freed pages are zeroed, so an erased holder is not left in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _ensure_wal(cursor: Any, patience: float = 30.0) -> None:
    """WAL lets the dispatcher read while the scan writes.

    The mode is stored in the file, so it is set once; asking again on every connect needs a
    lock that SQLite reports as "database is locked" without waiting for the busy handler
    while another process holds it (seen in CI with a daemon and a reader on one file).
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE hit: how a conditional claim knows it won."""
    return cast(CursorResult[Any], result).rowcount or 0


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate to `revision`; says what it found: "created", "migrated" or "current"."""
    from alembic import command

    engine = make_engine(url)
    try:
        existed = inspect(engine).has_table("alembic_version")
        current = existed and schema_is_current(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), revision)
    return "current" if current else "migrated" if existed else "created"


@cache
def code_heads() -> frozenset[str]:
    """The migrations' heads in this code: read once (a readiness probe asks every few seconds)."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext

    if not inspect(engine).has_table("alembic_version"):
        return False
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == code_heads()
