"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from worker.store.db import make_engine, schema_is_current, upgrade
from worker.store.models import Base


def test_migrations_and_models_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_schema_is_current_only_after_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    assert not schema_is_current(engine)
    upgrade(url)
    assert schema_is_current(engine)
    upgrade(url)  # a second upgrade is a no-op
    assert {"teams", "holders", "notifications", "delivery_attempts", "scan_runs"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_a_new_sqlite_file_is_put_in_wal_mode_once_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    # The mode lives in the file: a plain connection that sets nothing sees it too.
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_connecting_waits_for_another_process_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")  # a rollback-journal file, locked by someone else
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert time.monotonic() - started >= 0.4  # it really waited for the lock to go
    finally:
        release.join()
        engine.dispose()
        holder.close()
