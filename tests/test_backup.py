"""`permit-worker backup` and `restore` on the embedded SQLite registry: a consistent copy taken
while the daemon writes, restored into a new file with every holder and notification; a bad or
foreign file refused in one line; PostgreSQL pointed at pg_dump."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from worker.cli.main import main
from worker.store.backup import BackupError, backup, inspect_file

from .test_cli import CMD

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOLDERS = 1500


def _ids(path: Path) -> tuple[set[str], set[int], int]:
    conn = sqlite3.connect(path)
    try:
        holders = {r[0] for r in conn.execute("SELECT external_id FROM holders")}
        notes = {r[0] for r in conn.execute("SELECT id FROM notifications")}
        sent = conn.execute("SELECT count(*) FROM notifications WHERE status = 'sent'").fetchone()[0]
    finally:
        conn.close()
    return holders, notes, sent


@pytest.mark.slow
def test_a_backup_taken_while_the_daemon_sends_restores_every_holder_and_notification(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    # The console "provider" at 150 messages a second: the daemon is still writing seconds later.
    env = {**os.environ, "PERMIT_DATABASE_URL": f"sqlite:///{db}", "PERMIT_LOG_LEVEL": "WARNING",
           "PERMIT_SEND_WINDOW": "00:00-24:00", "PERMIT_DISPATCH_INTERVAL_SECONDS": "0.2",
           "PERMIT_RATE_LIMITS": "console=150"}
    for args in (("db", "upgrade"), ("teams", "create", "acme", "--name", "Acme")):
        subprocess.run([*CMD, *args], env=env, check=True, capture_output=True, timeout=60)
    today = datetime.now(SHANGHAI).date()
    roster = tmp_path / "r.csv"
    roster.write_text("external_id,phone,expires_on\n" + "".join(
        f"E{i:05d},138{i:08d},{(today + timedelta(days=5)).isoformat()}\n" for i in range(HOLDERS)), encoding="utf-8")
    subprocess.run([*CMD, "holders", "import", str(roster), "--team", "acme"], env=env, check=True,
                   capture_output=True, timeout=120)
    queued = _ids(db)[1]
    assert len(queued) == HOLDERS  # each has a touch due now
    daemon = subprocess.Popen([*CMD, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _ids(db)[2] < 100:  # sending has begun
            assert time.monotonic() < deadline and daemon.poll() is None, "the daemon did not start sending"
            time.sleep(0.2)
        taken = subprocess.run([*CMD, "backup", str(tmp_path / "backup.db")], env=env, capture_output=True,
                               text=True, timeout=120)
        assert taken.returncode == 0, taken.stderr
        assert f"backed up {HOLDERS} holder(s), {HOLDERS} notification(s)" in taken.stdout
        assert "integrity ok" in taken.stdout
        still_writing = daemon.poll() is None and _ids(db)[2] < HOLDERS
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    holders, notes, sent_then = _ids(tmp_path / "backup.db")
    assert still_writing and 100 <= sent_then < HOLDERS  # a moment in the middle of the sending
    assert holders == {f"E{i:05d}" for i in range(HOLDERS)} and notes == queued
    assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file
    # Restore into a new registry: every holder and notification, as in the backup.
    fresh = {**env, "PERMIT_DATABASE_URL": f"sqlite:///{tmp_path / 'restored.db'}"}
    restored = subprocess.run([*CMD, "restore", str(tmp_path / "backup.db")], env=fresh, capture_output=True,
                              text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert _ids(tmp_path / "restored.db") == (holders, notes, sent_then)
    listed = subprocess.run([*CMD, "holders", "list", "--team", "acme", "--format", "csv"], env=fresh,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == HOLDERS + 1


def test_restore_over_a_registry_needs_yes_and_a_bad_file_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "registry.db"
    monkeypatch.setenv("PERMIT_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    assert main(["db", "upgrade"]) == 0
    assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
    assert main(["backup", str(tmp_path / "b.db")]) == 0
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "b.db")]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "b.db"), "--yes"]) == 0
    assert "restored 0 holder(s)" in capsys.readouterr().out
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    assert main(["restore", str(junk), "--yes"]) == 2
    assert "not a permit-worker registry" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "missing.db"), "--yes"]) == 2
    assert main(["backup", str(db)]) == 2  # onto itself
    assert inspect_file(db).teams == 1  # nothing was touched by the refusals


def test_postgresql_is_pointed_at_pg_dump() -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        backup("postgresql+psycopg://permit:permit@127.0.0.1/permit", Path("x.db"))
