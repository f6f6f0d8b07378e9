"""The daemon: starts, catches up with one scan, dispatches, and stops cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from notifiers.base import Message, SendResult
from worker.delivery.dispatch import Dispatcher
from worker.ops.daemon import Daemon
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work
from worker.store.models import Notification

from .support import RecordingNotifier, add_holder
from .test_cli import CMD

# Subprocesses (the installed CLI, daemons): seconds each; `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


SHANGHAI = ZoneInfo("Asia/Shanghai")


def _reader(stream: IO[str], sink: queue.Queue[str]) -> None:
    for line in stream:
        sink.put(line)


def _collect(sink: queue.Queue[str], count: int, timeout: float, until: str | None = None) -> list[str]:
    """Lines from a stream: `count` of them, or up to one containing `until`, or what came in time."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        if until is not None and lines and until in lines[-1]:
            break
        with contextlib.suppress(queue.Empty):
            lines.append(sink.get(timeout=0.2))
    return lines


def _roster(path: Path) -> None:
    today = datetime.now(SHANGHAI).date()
    rows = [f"D{i},持证人{i},1380013800{i},,{(today + timedelta(days=d)).isoformat()},own"
            for i, d in enumerate((30, 10, -1))]
    path.write_text("external_id,name,phone,email,expires_on,housing_type\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_the_daemon_catches_up_dispatches_and_stops_on_sigterm(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "PERMIT_DATABASE_URL": db_url, "PERMIT_LOG_FORMAT": "json",
           "PERMIT_SEND_WINDOW": "00:00-24:00", "PERMIT_DISPATCH_INTERVAL_SECONDS": "0.5"}
    for args in (("db", "upgrade"), ("teams", "create", "acme", "--name", "Acme")):
        subprocess.run([*CMD, *args], env=env, check=True, capture_output=True, timeout=60)
    _roster(tmp_path / "r.csv")
    subprocess.run([*CMD, "holders", "import", str(tmp_path / "r.csv"), "--team", "acme"], env=env, check=True,
                   capture_output=True, timeout=60)

    def start() -> tuple[subprocess.Popen[str], queue.Queue[str], queue.Queue[str]]:
        proc = subprocess.Popen([*CMD, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out: queue.Queue[str] = queue.Queue()
        err: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, out), daemon=True).start()
        threading.Thread(target=_reader, args=(proc.stderr, err), daemon=True).start()
        return proc, out, err

    proc, out, err = start()
    try:
        messages = [json.loads(line) for line in _collect(out, 3, timeout=30)]
        assert sorted(m["to"] for m in messages) == ["+8613800138000", "+8613800138001", "+8613800138002"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
    events = [json.loads(line)["event"] for line in _collect(err, 10**6, timeout=1)]
    assert "scan.catch_up" in events and "daemon.stopped" in events
    assert not any("13800138000" in line for line in events)

    # A restart the same day does not scan again, and sends nothing twice.
    proc, out, err = start()
    try:
        logs = _collect(err, 100, timeout=20, until='"daemon.running"')
        assert any('"scan.already_ran_today"' in line for line in logs)
        assert _collect(out, 1, timeout=2) == []
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()


class SlowNotifier(RecordingNotifier):
    """Takes a while per message and says when the first send has started."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def send(self, message: Message) -> SendResult:
        self.started.set()
        time.sleep(0.5)
        return super().send(message)


def test_a_warm_stop_finishes_the_message_in_hand_and_leaves_the_rest(tmp_path: Path, db_url: str, factory, team) -> None:
    today = datetime.now(SHANGHAI).date()
    for i in range(5):
        add_holder(factory, team, f"W{i}", today + timedelta(days=30))
    settings = Settings(database_url=db_url, send_window="00:00-24:00", dispatch_interval_seconds=0.2)
    runtime = Runtime(settings)
    notifier = SlowNotifier()
    # Two senders: two messages are in hand when the stop comes, fewer than the five due.
    dispatcher = Dispatcher(runtime.factory, {"sms": notifier, "email": notifier}, runtime.policy, settings.tz,
                            send_window=settings.send_window_override(), concurrency=2)
    daemon = Daemon(runtime, dispatcher=dispatcher)
    worker = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    worker.start()
    assert notifier.started.wait(timeout=20)
    daemon.stopping.set()  # exactly what the SIGTERM handler does
    worker.join(timeout=20)
    assert not worker.is_alive()
    with unit_of_work(runtime.factory) as session:
        statuses = sorted(session.scalars(select(Notification.status)))
    assert "sending" not in statuses  # nothing left claimed
    assert statuses.count("sent") == len(notifier.sent) >= 1
    assert statuses.count("pending") == 5 - len(notifier.sent) >= 1
    runtime.engine.dispose()


def test_catch_up_scans_once_however_long_the_worker_was_down(tmp_path: Path, db_url: str, factory, team) -> None:
    runtime = Runtime(Settings(database_url=db_url))
    daemon = Daemon(runtime, dispatcher=Dispatcher(runtime.factory, {}, runtime.policy, SHANGHAI))
    now = datetime(2027, 3, 1, 12, tzinfo=SHANGHAI)
    add_holder(factory, team, "L1", now.date() - timedelta(days=40))  # touches +1 and +30 were missed
    assert daemon.catch_up(now) is True
    assert daemon.catch_up(now) is False
    with unit_of_work(runtime.factory) as session:
        rows = session.execute(select(Notification.stage, Notification.touch_day)).all()
    assert rows == [("expired_grace", 30)]  # the latest due touch only, not one per missed day
    runtime.engine.dispose()


def test_the_scheduler_jobs_have_explicit_ids_and_no_overlap(db_url: str) -> None:
    runtime = Runtime(Settings(database_url=db_url, scan_time="07:45"))
    daemon = Daemon(runtime, dispatcher=Dispatcher(runtime.factory, {}, runtime.policy, SHANGHAI))
    daemon.schedule()
    daemon.scheduler.start(paused=True)
    try:
        scan_job = daemon.scheduler.get_job("daily-scan")
        dispatch_job = daemon.scheduler.get_job("dispatch")
        assert scan_job.coalesce and scan_job.max_instances == 1 and scan_job.misfire_grace_time >= 3600
        assert dispatch_job.coalesce and dispatch_job.max_instances == 1
        assert (scan_job.next_run_time.hour, scan_job.next_run_time.minute) == (7, 45)
        assert str(scan_job.next_run_time.tzinfo) == "Asia/Shanghai"
    finally:
        daemon.scheduler.shutdown(wait=False)
    runtime.engine.dispose()

