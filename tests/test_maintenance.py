"""After a scan that moved holders, the daemon vacuums the holders table on PostgreSQL, so the
next day's range read does not walk the row versions the scan left behind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool
from structlog.testing import capture_logs

from worker.ops.daemon import Daemon
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.maintenance import vacuum_holders

from .conftest import POSTGRES_URL
from .support import add_holder, recording_daemon

SHANGHAI = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
TODAY = MORNING.astimezone(SHANGHAI).date()


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(database_url=db_url))
    yield rt
    rt.engine.dispose()


def scheduler(runtime: Runtime) -> Daemon:
    return recording_daemon(runtime, "scheduler")


def last_vacuum(runtime: Runtime) -> datetime | None:
    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'holders'")).scalar()


def events(logs: list[dict[str, object]]) -> list[object]:
    return [entry["event"] for entry in logs]


def test_a_scan_that_moved_holders_is_followed_by_a_vacuum_on_postgresql_only(
        runtime: Runtime, factory, team, db_url: str) -> None:
    add_holder(factory, team, "E1", TODAY + timedelta(days=30))  # its -30 touch is due today
    with capture_logs() as logs:
        scheduler(runtime).scan_job(MORNING)
    finished = next(e for e in logs if e["event"] == "scan.finished")
    assert finished["holders"] == 1 and finished["enqueued"] == 1
    assert "scan.vacuum_failed" not in events(logs)
    if db_url.startswith("sqlite"):
        assert "scan.vacuumed" not in events(logs)  # SQLite updates in place: nothing to clean
    else:
        assert "scan.vacuumed" in events(logs)
        assert last_vacuum(runtime) is not None


def test_a_scan_that_moved_nobody_does_not_vacuum(runtime: Runtime, factory, team) -> None:
    add_holder(factory, team, "E1", TODAY + timedelta(days=30))
    daemon = scheduler(runtime)
    daemon.scan_job(MORNING)
    with capture_logs() as logs:
        daemon.scan_job(MORNING + timedelta(days=1))  # nothing falls due the next day
    finished = next(e for e in logs if e["event"] == "scan.finished")
    assert finished["holders"] == 0
    assert "scan.vacuumed" not in events(logs) and "scan.vacuum_failed" not in events(logs)


def test_on_sqlite_there_is_nothing_to_vacuum(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert vacuum_holders(engine) is None
    engine.dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="needs the PostgreSQL test server")
def test_a_vacuum_that_fails_is_logged_and_not_raised() -> None:
    assert POSTGRES_URL
    # The server's maintenance database has no holders table: VACUUM fails as it would for a
    # role that does not own the table.
    engine = create_engine(make_url(POSTGRES_URL).set(database="postgres"), poolclass=NullPool)
    with capture_logs() as logs:
        assert vacuum_holders(engine) is None
    engine.dispose()
    [failed] = [e for e in logs if e["event"] == "scan.vacuum_failed"]
    assert "holders" in str(failed["error"])
