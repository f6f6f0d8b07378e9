"""The daemon: APScheduler runs the daily scan (cron) and the dispatcher (interval).

Correctness across replicas comes from the database (outbox keys, row claims), not from the
scheduler, so each process keeps its own in-memory job store. The signal handler only sets a
flag; the main thread then stops the scheduler and waits for in-flight work (a warm stop).
A second signal forces the exit; any row claimed then is released when its lease runs out.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules.policy import parse_clock
from worker.dispatch import Dispatcher
from worker.hr_events import send_hr_notices
from worker.models import utcnow
from worker.runtime import Runtime
from worker.scan import scan, scan_ran_on

log = structlog.get_logger("worker.daemon")

SCAN_JOB = "daily-scan"
DISPATCH_JOB = "dispatch"
HR_NOTICE_JOB = "hr-notices"


class Daemon:
    def __init__(self, runtime: Runtime, dispatcher: Dispatcher | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.stopping = threading.Event()
        self._signals = 0
        self.dispatcher = dispatcher or runtime.dispatcher()  # builds notifiers: bad config fails here
        self.scheduler = BackgroundScheduler(
            timezone=self.settings.tz,
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # -- jobs -----------------------------------------------------------------------------
    def scan_job(self, now: datetime | None = None) -> None:
        report = scan(self.runtime.factory, self.runtime.policy, self.settings.tz, now=now,
                      should_stop=self.stopping.is_set)
        log.info("scan.finished", scan_date=report.scan_date.isoformat(), holders=report.holders_seen,
                 enqueued=len(report.enqueued), no_contact=report.no_contact, interrupted=report.interrupted,
                 seconds=round(report.seconds, 3))

    def dispatch_job(self) -> None:
        counts = self.dispatcher.run_batch(limit=self.settings.dispatch_batch_size, should_stop=self.stopping.is_set)
        if counts:
            log.info("dispatch.batch", **dict(counts))

    def hr_notice_job(self) -> None:
        sent = send_hr_notices(self.runtime.factory, self.dispatcher.notifiers["email"])
        if sent:
            log.info("hr.notices_sent", emails=sent)

    def catch_up(self, now: datetime | None = None) -> bool:
        """Scan now if today's scan has not run: days of downtime cost one scan, not one a day."""
        today = (now or utcnow()).astimezone(self.settings.tz).date()
        if scan_ran_on(self.runtime.factory, today):
            log.info("scan.already_ran_today", scan_date=today.isoformat())
            return False
        log.info("scan.catch_up", scan_date=today.isoformat())
        self.scan_job(now)
        return True

    # -- lifecycle ------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("daemon.forced_stop", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("daemon.stopping", signal=signal.Signals(signum).name)
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def schedule(self) -> None:
        at = parse_clock(self.settings.scan_time)
        self.scheduler.add_job(
            self.scan_job, CronTrigger(hour=at.hour, minute=at.minute, timezone=self.settings.tz),
            id=SCAN_JOB, name="daily scan", misfire_grace_time=6 * 3600, replace_existing=True,
        )
        self.scheduler.add_job(
            self.dispatch_job, IntervalTrigger(seconds=self.settings.dispatch_interval_seconds),
            id=DISPATCH_JOB, name="dispatch outbox", next_run_time=datetime.now(self.settings.tz),
            misfire_grace_time=max(5, int(self.settings.dispatch_interval_seconds)), replace_existing=True,
        )
        self.scheduler.add_job(
            self.hr_notice_job, IntervalTrigger(minutes=self.settings.hr_notice_interval_minutes),
            id=HR_NOTICE_JOB, name="batched HR notices", misfire_grace_time=600, replace_existing=True,
        )

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            self.install_signal_handlers()
        log.info("daemon.starting", scan_time=self.settings.scan_time, timezone=self.settings.timezone,
                 dispatch_interval=self.settings.dispatch_interval_seconds,
                 sms_backend=self.settings.sms_backend, email_backend=self.settings.email_backend)
        self.catch_up()
        if self.stopping.is_set():
            return 0
        self.schedule()
        self.scheduler.start()
        scan_job = self.scheduler.get_job(SCAN_JOB)
        log.info("daemon.running", next_scan=scan_job.next_run_time.isoformat() if scan_job else None)
        while not self.stopping.wait(timeout=1.0):
            pass
        self.scheduler.shutdown(wait=True)  # finishes the jobs in flight
        log.info("daemon.stopped")
        return 0
