"""One day's scan shared by several scheduler replicas: slices of due ids, each worked once,
and the day recorded finished only when every slice is done."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning import scan as scan_module
from worker.planning.scan import help_with_scan, scan
from worker.planning.scan_runs import claim_scan_day
from worker.planning.scan_slices import plan_slices, take_slice
from worker.store.db import make_engine, session_factory, unit_of_work
from worker.store.models import Holder, Notification, ScanRun, ScanSlice, Team

from .support import add_holder, recording_daemon

SHANGHAI = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
TODAY = MORNING.astimezone(SHANGHAI).date()


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "BATCH", 4)  # a scan batch is a slice: 4 holders each


def due_holders(factory: sessionmaker[Session], team: Team, n: int) -> list[int]:
    """n holders whose -30 touch falls due today."""
    return [add_holder(factory, team, f"E{i}", TODAY + timedelta(days=30)) for i in range(n)]


def outbox_keys(factory: sessionmaker[Session]) -> list[tuple[int, str, int]]:
    with unit_of_work(factory) as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(Notification.holder_id, Notification.stage, Notification.touch_day))]


def day_row(factory: sessionmaker[Session]) -> ScanRun:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, TODAY)
        assert run is not None
        session.expunge(run)
        return run


def slice_rows(factory: sessionmaker[Session]) -> list[tuple[int, str, str | None]]:
    with unit_of_work(factory) as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(ScanSlice.slice_no, ScanSlice.status, ScanSlice.done_by).order_by(ScanSlice.slice_no))]


def test_a_scan_files_its_slices_and_clears_them_when_done(factory, team, policy: Policy, small_slices) -> None:
    ids = due_holders(factory, team, 10)
    report = scan(factory, policy, SHANGHAI, now=MORNING, worker_id="a")
    assert report.holders_seen == 10 and len(report.enqueued) == 10
    assert (report.shared_seen, report.shared_enqueued) == (0, 0)
    assert sorted(k[0] for k in outbox_keys(factory)) == sorted(ids)
    assert slice_rows(factory) == []  # all done, then removed
    assert (day_row(factory).holders_seen, day_row(factory).enqueued) == (10, 10)


def test_a_dry_run_files_no_slices(factory, team, policy: Policy, small_slices) -> None:
    due_holders(factory, team, 6)
    report = scan(factory, policy, SHANGHAI, now=MORNING, dry_run=True)
    assert len(report.enqueued) == 6
    assert slice_rows(factory) == [] and outbox_keys(factory) == []


def test_a_replica_that_lost_the_day_works_the_claimants_slices(factory, team, policy: Policy) -> None:
    ids = due_holders(factory, team, 9)
    assert claim_scan_day(factory, TODAY, "claimant", MORNING)
    plan_slices(factory, TODAY, array("q", sorted(ids)), size=4)  # the claimant filed them, then died
    report = help_with_scan(factory, policy, SHANGHAI, "helper", now=MORNING)
    assert report.holders_seen == 9 and len(report.enqueued) == 9
    assert slice_rows(factory) == [(0, "done", "helper"), (1, "done", "helper"), (2, "done", "helper")]
    with unit_of_work(factory) as session:  # moved past today: nobody is due any more
        assert session.scalar(select(func.count()).select_from(Holder).where(Holder.next_due_on <= TODAY)) == 0


def test_a_helper_waits_for_nothing_once_the_day_is_finished(factory, team, policy: Policy) -> None:
    due_holders(factory, team, 3)
    scan(factory, policy, SHANGHAI, now=MORNING)  # records the day finished
    report = help_with_scan(factory, policy, SHANGHAI, "late", now=MORNING, plan_wait=timedelta(minutes=5))
    assert report.holders_seen == 0 and report.seconds < 5


def test_a_helper_gives_up_when_no_slices_are_filed_in_time(factory, team, policy: Policy) -> None:
    due_holders(factory, team, 3)
    assert claim_scan_day(factory, TODAY, "claimant", MORNING)  # running, but nothing filed
    report = help_with_scan(factory, policy, SHANGHAI, "helper", now=MORNING, plan_wait=timedelta(seconds=0.2))
    assert report.holders_seen == 0 and outbox_keys(factory) == []


def test_the_next_scan_works_the_slices_a_dead_claimant_left(factory, team, policy: Policy, small_slices) -> None:
    ids = due_holders(factory, team, 5)
    plan_slices(factory, TODAY, array("q", sorted(ids)), size=4)
    report = scan(factory, policy, SHANGHAI, now=MORNING, worker_id="takeover")
    assert report.holders_seen == 5 and len(report.enqueued) == 5
    assert len(outbox_keys(factory)) == 5
    # The leftovers are done (kept for the day); slices of the new scan are gone, it had none.
    assert slice_rows(factory) == [(0, "done", "takeover"), (1, "done", "takeover")]


def test_three_schedulers_on_one_day_enqueue_each_touch_once(db_url: str, factory, team, policy: Policy,
                                                             small_slices) -> None:
    ids = due_holders(factory, team, 30)
    helped: list[int] = []
    lock = threading.Lock()

    def scheduler(name: str) -> None:
        engine = make_engine(db_url)  # its own engine and connections, like another process
        replica = session_factory(engine)
        if claim_scan_day(replica, TODAY, name, MORNING):
            scan(replica, policy, SHANGHAI, now=MORNING, worker_id=name)
        else:
            report = help_with_scan(replica, policy, SHANGHAI, name, now=MORNING)
            with lock:
                helped.append(report.holders_seen)
        engine.dispose()

    threads = [threading.Thread(target=scheduler, args=(f"s{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = outbox_keys(factory)
    assert len(keys) == len(set(keys)) == 30
    assert sorted(k[0] for k in keys) == sorted(ids)
    run = day_row(factory)
    assert (run.status, run.holders_seen, run.enqueued) == ("finished", 30, 30)
    assert len(helped) == 2


@pytest.fixture
def postgres_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("row locks with SKIP LOCKED: PostgreSQL")


def test_a_slice_locked_by_one_replica_is_skipped_by_another(factory, postgres_only) -> None:
    plan_slices(factory, TODAY, array("q", [1, 2, 3, 4, 5]), size=2)
    first, second = factory(), factory()
    try:
        taken = take_slice(first, TODAY)
        other = take_slice(second, TODAY)
        assert taken is not None and other is not None
        assert (taken.slice_no, taken.ids, other.slice_no, other.ids) == (0, [1, 2], 1, [3, 4])
        first.rollback()  # a replica killed mid-slice: its lock goes, the slice is still pending
        again = factory()
        retaken = take_slice(again, TODAY)
        assert retaken is not None and retaken.slice_no == 0
        again.rollback()
        again.close()
    finally:
        second.rollback()
        first.close()
        second.close()


@pytest.fixture
def runtime(db_url: str) -> Iterator[Runtime]:
    rt = Runtime(Settings(database_url=db_url))
    yield rt
    rt.engine.dispose()


def test_a_scheduler_daemon_that_lost_the_day_shares_its_slices(runtime: Runtime, factory, team, policy) -> None:
    ids = due_holders(factory, team, 6)
    assert claim_scan_day(factory, TODAY, "other-replica", MORNING)
    plan_slices(factory, TODAY, array("q", sorted(ids)), size=3)
    daemon = recording_daemon(runtime, "scheduler")
    daemon.scan_job(MORNING)
    assert [status for _, status, _ in slice_rows(factory)] == ["done", "done"]
    assert {by for _, _, by in slice_rows(factory)} == {daemon.dispatcher.worker_id}
    assert len(outbox_keys(factory)) == 6
    assert day_row(factory).status == "running"  # the claimant records the day, not the helper


def test_slices_of_earlier_days_go_when_a_new_day_is_filed(factory) -> None:
    plan_slices(factory, TODAY - timedelta(days=1), array("q", [7, 8]))
    plan_slices(factory, TODAY, array("q", [9]))
    with unit_of_work(factory) as session:
        assert session.scalars(select(ScanSlice.scan_date)).all() == [TODAY]


def test_an_empty_day_files_no_slice(factory) -> None:
    plan_slices(factory, date(2026, 12, 2), array("q"))
    assert slice_rows(factory) == []
