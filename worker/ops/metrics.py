"""Operational numbers read from the database: /metrics (Prometheus) and /healthz share them.

Every number comes from the registry at scrape time, not from in-process counters, so whichever
API replica Prometheus scrapes it sees the same values, and a restart resets nothing. "Counter"
families are counts of rows that only grow (delivery attempts, sent notifications); erasing a
holder deletes their rows, which Prometheus' rate() treats as a counter reset.

Cheap on a large registry: no query touches holders. Filtered reads go through an index (the
due backlog through ix_notifications_due, the latency window through the primary key, bounded to
the newest LATENCY_SAMPLE attempts); scan_runs and worker_heartbeats are tiny. The two totals,
notifications by status and attempts by outcome, are one pass over those narrow tables (about
0.25 s for a whole snapshot at 1M notifications and 2M attempts on PostgreSQL), so a snapshot is
reused for CACHE_SECONDS (several Prometheus servers scraping cost one read) and PostgreSQL
cancels a scrape's query after STATEMENT_TIMEOUT_MS rather than let scrapes pile up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import case, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from worker.ops.heartbeat import (
    DISPATCHING_ROLES,
    FRESH_SECONDS,
    age_seconds,
    freshest_dispatcher_heartbeat,
)
from worker.store.models import (
    DeliveryAttempt,
    Notification,
    ScanRun,
    WorkerHeartbeat,
    utcnow,
)
from worker.store.statuses import NoteStatus, ScanRunStatus

log = structlog.get_logger("worker.metrics")

# Listed even at zero, so an alert on e.g. failed never sees an absent series.
STATUSES = tuple(NoteStatus)
OUTCOMES = ("sent", "transient", "permanent", "ambiguous", "error")
# worker.delivery.claims records a reclaimed (abandoned) claim as an attempt spanning the whole lease: a
# dead worker's lease, not a provider's latency, so the histogram leaves those out.
ABANDONED_PREFIX = "abandoned:"
ROLES = ("all", "scheduler", "dispatcher")
LATENCY_WINDOW = timedelta(hours=1)
# The latency histogram reads at most this many of the newest attempts (a primary-key range),
# so a burst hour costs a bounded read; at 10 messages/s that is still the last ~15 minutes.
LATENCY_SAMPLE = 10_000
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CACHE_SECONDS = 5.0
# A scrape must never pile up behind a slow database: PostgreSQL cancels the query instead.
STATEMENT_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class ScanStatus:
    last_finished_date: date | None
    last_finished_at: datetime | None
    finished_today: bool


@dataclass(frozen=True)
class Snapshot:
    """What one scrape reports; ages are in seconds at `taken_at`."""

    taken_at: datetime
    scan: ScanStatus
    scan_runs: int
    scan_enqueued: int
    notifications: dict[str, int]
    pending: int
    due: int
    oldest_due_age: float
    attempts: dict[str, int]
    retries: int
    # (notifier, outcome) -> attempts: sends and failures by provider and class, for the dashboard
    attempts_by_notifier: dict[tuple[str, str], int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # by notifier
    dispatcher_heartbeat_age: float | None = None
    last_dispatch_age: float | None = None
    alive: dict[str, int] = field(default_factory=dict)  # workers with a fresh heartbeat, by role


def scan_status(session: Session, today: date) -> ScanStatus:
    """The newest finished daily scan, and whether it is today's (scan_runs: one row a day)."""
    row = session.execute(
        select(ScanRun.scan_date, ScanRun.finished_at).where(ScanRun.status == ScanRunStatus.FINISHED)
        .order_by(ScanRun.scan_date.desc()).limit(1)
    ).first()
    if row is None:
        return ScanStatus(None, None, False)
    return ScanStatus(row.scan_date, row.finished_at, row.scan_date == today)


def alive_workers(session: Session, now: datetime) -> dict[str, int]:
    since = now - timedelta(seconds=FRESH_SECONDS)
    rows = session.execute(
        select(WorkerHeartbeat.role, func.count()).where(WorkerHeartbeat.heartbeat_at >= since)
        .group_by(WorkerHeartbeat.role)
    )
    return {role: count for role, count in rows}


def read_snapshot(session: Session, now: datetime, zone: ZoneInfo) -> Snapshot:
    scans = session.execute(
        select(func.coalesce(func.sum(ScanRun.runs), 0), func.coalesce(func.sum(ScanRun.enqueued), 0))
    ).one()
    # Served by ix_notifications_due (status, next_attempt_at).
    by_status: dict[str, int] = {status: count for status, count in session.execute(
        select(Notification.status, func.count()).group_by(Notification.status)
    )}
    # A row is enqueued due since midnight of its day (holder time), so a touch enqueued at 10:00
    # would look ten hours late at once: count from when it became due *and* existed.
    due_since = case((Notification.next_attempt_at > Notification.created_at, Notification.next_attempt_at),
                     else_=Notification.created_at)
    due, oldest_due = session.execute(
        select(func.count(), func.min(due_since))
        .where(Notification.status == NoteStatus.PENDING, Notification.next_attempt_at <= now)
    ).one()
    attempts: dict[str, int] = {}
    by_notifier: dict[tuple[str, str], int] = {}
    retries = 0
    for notifier, outcome, count, beyond_first in session.execute(
        select(DeliveryAttempt.notifier, DeliveryAttempt.outcome, func.count(),
               func.coalesce(func.sum(case((DeliveryAttempt.attempt_no > 1, 1), else_=0)), 0))
        .group_by(DeliveryAttempt.notifier, DeliveryAttempt.outcome)
    ):
        attempts[outcome] = attempts.get(outcome, 0) + int(count)
        by_notifier[(notifier, outcome)] = int(count)
        retries += int(beyond_first)
    newest_id = session.scalar(select(func.max(DeliveryAttempt.id))) or 0
    latencies: dict[str, list[float]] = {}
    for notifier, started, finished in session.execute(
        select(DeliveryAttempt.notifier, DeliveryAttempt.started_at, DeliveryAttempt.finished_at)
        .where(DeliveryAttempt.id > newest_id - LATENCY_SAMPLE,
               DeliveryAttempt.finished_at >= now - LATENCY_WINDOW,
               DeliveryAttempt.notifier != "-",  # "-": the row failed before any notifier ran
               or_(DeliveryAttempt.error.is_(None), DeliveryAttempt.error.not_like(f"{ABANDONED_PREFIX}%")))
    ):
        latencies.setdefault(notifier, []).append(max(0.0, (finished - started).total_seconds()))
    last_dispatch = session.scalar(
        select(func.max(WorkerHeartbeat.last_dispatch_at)).where(WorkerHeartbeat.role.in_(DISPATCHING_ROLES))
    )
    return Snapshot(
        taken_at=now,
        scan=scan_status(session, now.astimezone(zone).date()),
        scan_runs=int(scans[0]),
        scan_enqueued=int(scans[1]),
        notifications={status: int(by_status.get(status, 0)) for status in sorted({*STATUSES, *by_status})},
        pending=int(by_status.get(NoteStatus.PENDING, 0)),
        due=int(due),
        # Since the oldest due row became due: what a backlog or a stuck dispatcher makes grow.
        # Rows deferred to the send window or a retry are not due, so they do not count.
        oldest_due_age=age_seconds(oldest_due, now) or 0.0,
        attempts=attempts,
        attempts_by_notifier=by_notifier,
        retries=retries,
        latencies=latencies,
        dispatcher_heartbeat_age=age_seconds(freshest_dispatcher_heartbeat(session), now),
        last_dispatch_age=age_seconds(last_dispatch, now),
        alive=alive_workers(session, now),
    )


def _timestamp(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0


def _age(value: float | None) -> float:
    # +Inf when there is no row at all: an alert "age > N" then fires, as it should.
    return float("inf") if value is None else value


def _histogram(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    buckets = [(str(bound), float(sum(1 for v in values if v <= bound))) for bound in LATENCY_BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    return buckets, sum(values)


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families (all named permit_*)."""
    s = snapshot
    yield GaugeMetricFamily("permit_database_up", "1 if the registry database answered this scrape.", value=1)

    yield CounterMetricFamily("permit_scan_runs", "Daily scan runs recorded in scan_runs (re-runs included).",
                              value=s.scan_runs)
    yield CounterMetricFamily("permit_scan_enqueued", "Notifications enqueued by daily scans.",
                              value=s.scan_enqueued)
    yield GaugeMetricFamily("permit_scan_last_finished_timestamp_seconds",
                            "Unix time the newest finished daily scan finished (0: never).",
                            value=_timestamp(s.scan.last_finished_at))
    yield GaugeMetricFamily("permit_scan_finished_today", "1 if today's scan (PERMIT_TIMEZONE) has finished.",
                            value=int(s.scan.finished_today))

    by_status = GaugeMetricFamily("permit_notifications", "Notifications (outbox rows) by status.",
                                  labels=["status"])
    for status, count in s.notifications.items():
        by_status.add_metric([status], count)
    yield by_status
    yield CounterMetricFamily("permit_notifications_sent", "Notifications delivered to a provider (status sent).",
                              value=s.notifications.get(NoteStatus.SENT, 0))
    yield CounterMetricFamily("permit_notifications_failed", "Notifications given up on (status failed).",
                              value=s.notifications.get(NoteStatus.FAILED, 0))
    yield GaugeMetricFamily("permit_outbox_pending", "Pending notifications, due now or later (window, retry).",
                            value=s.pending)
    yield GaugeMetricFamily("permit_outbox_due", "Pending notifications due now: the dispatchers' backlog.",
                            value=s.due)
    yield GaugeMetricFamily("permit_outbox_oldest_pending_age_seconds",
                            "Seconds the oldest due pending notification has waited (since due or enqueued, 0: none).",
                            value=s.oldest_due_age)

    attempts = CounterMetricFamily("permit_delivery_attempts", "Delivery attempts by outcome.", labels=["outcome"])
    for outcome in sorted({*OUTCOMES, *s.attempts}):
        attempts.add_metric([outcome], s.attempts.get(outcome, 0))
    yield attempts
    per_provider = CounterMetricFamily("permit_delivery_attempts_by_notifier",
                                       "Delivery attempts by notifier (provider) and outcome.",
                                       labels=["notifier", "outcome"])
    for (notifier, outcome), count in sorted(s.attempts_by_notifier.items()):
        per_provider.add_metric([notifier, outcome], count)
    yield per_provider
    yield CounterMetricFamily("permit_delivery_retries", "Delivery attempts beyond a notification's first.",
                              value=s.retries)

    # A gauge histogram: the window moves, so buckets can shrink. Use histogram_quantile() on
    # the buckets directly, without rate().
    latency = GaugeHistogramMetricFamily(
        "permit_send_latency_seconds",
        f"Send latency (attempt finished - started) over the last {int(LATENCY_WINDOW.total_seconds())} s.",
        labels=["notifier"])
    for notifier, values in sorted(s.latencies.items()):
        buckets, total = _histogram(values)
        latency.add_metric([notifier], buckets, total)
    yield latency

    yield GaugeMetricFamily("permit_dispatcher_heartbeat_age_seconds",
                            "Seconds since the freshest heartbeat of a dispatching worker (+Inf: none).",
                            value=_age(s.dispatcher_heartbeat_age))
    yield GaugeMetricFamily("permit_dispatcher_last_dispatch_age_seconds",
                            "Seconds since any dispatcher last completed a dispatch run (+Inf: none).",
                            value=_age(s.last_dispatch_age))
    alive = GaugeMetricFamily("permit_workers_alive",
                              f"Workers whose heartbeat is under {int(FRESH_SECONDS)} s old, by role.",
                              labels=["role"])
    for role in sorted({*ROLES, *s.alive}):
        alive.add_metric([role], s.alive.get(role, 0))
    yield alive


class DatabaseCollector(Collector):
    """Reads a Snapshot at scrape time (at most once per `cache_seconds`)."""

    def __init__(self, factory: sessionmaker[Session], zone: ZoneInfo, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.factory = factory
        self.zone = zone
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()  # concurrent scrapes share one read
        self._cached: tuple[float, Snapshot] | None = None

    def describe(self) -> Iterable[Metric]:
        # Nothing: otherwise registering would run collect(), i.e. query the database at start-up.
        return []

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            with self.factory() as session, session.begin():
                if session.get_bind().dialect.name == "postgresql":
                    session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                snap = read_snapshot(session, self.clock(), self.zone)
            self._cached = (time.monotonic(), snap)
            return snap

    def collect(self) -> Iterable[Metric]:
        try:
            snap = self.snapshot()
        except Exception as exc:  # a scrape reports the outage instead of failing
            log.warning("metrics.database_error", error=type(exc).__name__)
            yield GaugeMetricFamily("permit_database_up", "1 if the registry database answered this scrape.",
                                    value=0)
            return
        yield from families(snap)


def metrics_registry(factory: sessionmaker[Session], zone: ZoneInfo,
                     cache_seconds: float = CACHE_SECONDS) -> CollectorRegistry:
    """A registry of its own per app (not the process-global one): only the database's numbers,
    and several apps in one process (tests) do not collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(factory, zone, cache_seconds))
    return registry
