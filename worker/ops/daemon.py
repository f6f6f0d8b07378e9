"""The daemon: APScheduler runs the daily scan (cron), the dispatcher and the HR digest (interval).

Correctness across replicas comes from the database (outbox keys, row claims), not from the
scheduler, so each process keeps its own in-memory job store. The signal handler only sets a
flag; the main thread then stops the scheduler and waits for in-flight work (a warm stop).
A second signal forces the exit; any row claimed then is released when its lease runs out.

A role picks the jobs: "scheduler" (scan, scan watch, HR digest), "dispatcher" (sending only) or
"all" (both, the single-process default). Production runs one scheduler and N dispatchers; the
database claims make any mix safe, roles only keep the scan and the digest off the senders. A
city-sized registry runs several schedulers: one claims the day, the others share its slices.
Every daemon keeps a heartbeat row (worker.ops.heartbeat) that /healthz and /metrics read.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime
from types import FrameType
from typing import Literal, get_args

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules.policy import parse_clock
from worker.delivery.digest import send_digests
from worker.delivery.dispatch import Dispatcher
from worker.ops.heartbeat import Heartbeat
from worker.ops.retention import prune
from worker.ops.runtime import Runtime
from worker.planning.points import scan_points
from worker.planning.scan import help_with_scan, scan
from worker.planning.scan_runs import claim_scan_day, keeping_claim, last_finished_before, scan_ran_on
from worker.store.maintenance import vacuum_holders
from worker.store.models import utcnow

log = structlog.get_logger("worker.daemon")

SCAN_JOB = "daily-scan"
DISPATCH_JOB = "dispatch"
DIGEST_JOB = "hr-digest"
SCAN_WATCH_JOB = "scan-watch"
PRUNE_JOB = "retention-prune"
# The digest job only looks every half hour; send_digests decides whether today's is due.
DIGEST_CHECK_MINUTES = 30

Role = Literal["all", "scheduler", "dispatcher"]
ROLES: tuple[str, ...] = get_args(Role)


class Daemon:
    def __init__(self, runtime: Runtime, dispatcher: Dispatcher | None = None, role: Role = "all") -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        self.runtime = runtime
        self.settings = runtime.settings
        self.role: Role = role
        self.stopping = threading.Event()
        self._signals = 0
        # Built for every role: the worker id names this process in claims and heartbeats, and the
        # scheduler's digest sends through its email notifier. Bad notifier config fails here.
        self.dispatcher = dispatcher or runtime.dispatcher()
        self.heartbeat = Heartbeat(runtime.factory, self.dispatcher.worker_id, role)
        self.scheduler = BackgroundScheduler(
            timezone=self.settings.tz,
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # -- jobs -----------------------------------------------------------------------------
    def scan_job(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        day = now.astimezone(self.settings.tz).date()
        if not claim_scan_day(self.runtime.factory, day, self.dispatcher.worker_id, now):
            log.info("scan.claimed_elsewhere", scan_date=day.isoformat())
            # Another scheduler replica scans today: share its slices (nothing, once it is done).
            helped = help_with_scan(self.runtime.factory, self.runtime.policy, self.settings.tz,
                                    self.dispatcher.worker_id, now=now, should_stop=self.stopping.is_set)
            if helped.holders_seen:
                log.info("scan.shared", scan_date=day.isoformat(), holders=helped.holders_seen,
                         enqueued=len(helped.enqueued), seconds=round(helped.seconds, 3))
            return
        since = last_finished_before(self.runtime.factory, day)  # before this scan records itself
        with keeping_claim(self.runtime.factory, day, self.dispatcher.worker_id):
            report = scan(self.runtime.factory, self.runtime.policy, self.settings.tz, now=now,
                          should_stop=self.stopping.is_set, worker_id=self.dispatcher.worker_id)
            points = scan_points(self.runtime.factory, self.settings.tz, now=now, policy=self.runtime.policy,
                                 since=since)
        if points:
            log.info("scan.points_enqueued", enqueued=len(points))
        log.info("scan.finished", scan_date=report.scan_date.isoformat(), holders=report.holders_seen,
                 enqueued=len(report.enqueued), no_contact=report.no_contact, interrupted=report.interrupted,
                 shared_holders=report.shared_seen, shared_enqueued=report.shared_enqueued,
                 replanned=report.replanned,
                 seconds=round(report.seconds, 3))
        if report.holders_seen and not self.stopping.is_set():
            # Only after a scan that moved rows: an empty day leaves nothing to clean.
            took = vacuum_holders(self.runtime.engine)
            if took is not None:
                log.info("scan.vacuumed", table="holders", seconds=round(took, 3))

    @property
    def schedules(self) -> bool:
        return self.role in ("all", "scheduler")

    @property
    def dispatches(self) -> bool:
        return self.role in ("all", "dispatcher")

    def dispatch_job(self) -> None:
        counts = self.dispatcher.run_batch(limit=self.settings.dispatch_batch_size, should_stop=self.stopping.is_set)
        if counts:
            log.info("dispatch.batch", **dict(counts))
        # Only after a run that completed: a dispatcher whose batches keep failing must show an
        # ageing last_dispatch_at, even though its heartbeat thread keeps the row itself fresh.
        self.heartbeat.dispatched()

    def digest_job(self, now: datetime | None = None) -> None:
        sent = send_digests(self.runtime.factory, self.dispatcher.notifiers["email"], self.runtime.policy,
                            self.settings.tz, now=now, digest_time=parse_clock(self.settings.digest_time),
                            robot=self.dispatcher.notifiers.get("wecom_group"))
        if sent:
            log.info("digest.sent", emails=sent)

    def catch_up(self, now: datetime | None = None, quiet: bool = False) -> bool:
        """Scan now if today's scan has not finished: days of downtime cost one scan, not one a
        day. Also run every few minutes, so a scan whose replica was killed is taken over."""
        today = (now or utcnow()).astimezone(self.settings.tz).date()
        if scan_ran_on(self.runtime.factory, today):
            if not quiet:
                log.info("scan.already_ran_today", scan_date=today.isoformat())
            return False
        log.info("scan.catch_up", scan_date=today.isoformat())
        self.scan_job(now)
        return True

    def prune_job(self, now: datetime | None = None) -> None:
        """What is past its retention goes (worker/ops/retention.py); safe on several replicas:
        each delete is of rows already past their time."""
        pruned = prune(self.runtime.factory, self.settings, now=now)
        log.info("retention.pruned", **{p.table: p.rows for p in pruned})

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
        if self.schedules:
            self._schedule_scheduler_jobs()
        if self.dispatches:
            self._schedule_dispatcher_jobs()

    def _schedule_scheduler_jobs(self) -> None:
        at = parse_clock(self.settings.scan_time)
        self.scheduler.add_job(
            self.scan_job, CronTrigger(hour=at.hour, minute=at.minute, timezone=self.settings.tz),
            id=SCAN_JOB, name="daily scan", misfire_grace_time=6 * 3600, replace_existing=True,
        )
        self.scheduler.add_job(
            self.catch_up, IntervalTrigger(minutes=5), kwargs={"quiet": True},
            id=SCAN_WATCH_JOB, name="finish today's scan if its replica died", misfire_grace_time=300,
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.prune_job, CronTrigger(hour=3, minute=30, timezone=self.settings.tz),
            id=PRUNE_JOB, name="retention prune", coalesce=True, max_instances=1, misfire_grace_time=6 * 3600,
            replace_existing=True,
        )
        # A missed half-hour check is worth running late (the digest is still unsent), but not
        # after the next check would have run anyway.
        self.scheduler.add_job(
            self.digest_job, IntervalTrigger(minutes=DIGEST_CHECK_MINUTES),
            id=DIGEST_JOB, name="daily HR digest", coalesce=True, max_instances=1,
            misfire_grace_time=DIGEST_CHECK_MINUTES * 60, replace_existing=True,
        )

    def _schedule_dispatcher_jobs(self) -> None:
        self.scheduler.add_job(
            self.dispatch_job, IntervalTrigger(seconds=self.settings.dispatch_interval_seconds),
            id=DISPATCH_JOB, name="dispatch outbox", next_run_time=datetime.now(self.settings.tz),
            misfire_grace_time=max(5, int(self.settings.dispatch_interval_seconds)), replace_existing=True,
        )

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            self.install_signal_handlers()
        log.info("daemon.starting", role=self.role, worker_id=self.dispatcher.worker_id,
                 scan_time=self.settings.scan_time, timezone=self.settings.timezone,
                 dispatch_interval=self.settings.dispatch_interval_seconds,
                 sms_backend=self.settings.sms_backend, email_backend=self.settings.email_backend)
        # First, so the heartbeat is fresh even while a long catch-up scan runs.
        self.heartbeat.start()
        try:
            if self.schedules:
                self.catch_up()
            if self.stopping.is_set():
                return 0
            self.schedule()
            self.scheduler.start()
            scan_job = self.scheduler.get_job(SCAN_JOB)
            log.info("daemon.running", role=self.role,
                     next_scan=scan_job.next_run_time.isoformat() if scan_job else None)
            while not self.stopping.wait(timeout=1.0):
                pass
            self.scheduler.shutdown(wait=True)  # finishes the jobs in flight
        finally:
            # After the jobs (one may stamp a dispatch), so nothing re-inserts the deleted row.
            # A crash lands here too: the row goes, and the restarted process writes a new one.
            self.heartbeat.stop()
        log.info("daemon.stopped", role=self.role)
        return 0
