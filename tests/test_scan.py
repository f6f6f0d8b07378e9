"""The daily scan against a real SQLite file: idempotent, catches up, never sends a stale touch."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from worker.planning.scan import scan
from worker.planning.scan_runs import scan_ran_on
from worker.registry import records as registry
from worker.store.db import make_engine, session_factory, unit_of_work
from worker.store.models import Notification, ScanRun, Team

from .support import add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)


def day(days_left: int) -> date:
    return EXPIRES - timedelta(days=days_left)


def rows(factory: sessionmaker[Session]) -> list[tuple[str, int, str, str]]:
    with unit_of_work(factory) as session:
        return [
            (n.stage, n.touch_day, n.channel, n.status)
            for n in session.scalars(select(Notification).order_by(Notification.id))
        ]


def test_a_second_scan_on_the_same_day_enqueues_nothing(factory, team: Team, policy: Policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    first = scan(factory, policy, SHANGHAI, today=day(30))
    second = scan(factory, policy, SHANGHAI, today=day(30))
    assert [(e.external_id, e.stage, e.channel, e.days_left) for e in first.enqueued] == [("E1", "upcoming", "sms", 30)]
    assert second.enqueued == []
    assert rows(factory) == [("upcoming", -30, "sms", "pending")]


def test_a_holder_first_seen_mid_stage_gets_that_stages_latest_touch_at_once(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    report = scan(factory, policy, SHANGHAI, today=day(5))
    assert [(e.stage, e.touch_day) for e in report.enqueued] == [("renew_in_person", -10)]
    assert scan(factory, policy, SHANGHAI, today=day(4)).enqueued == []  # same touch until -3 comes
    assert [(e.stage, e.touch_day) for e in scan(factory, policy, SHANGHAI, today=day(3)).enqueued] == [
        ("renew_in_person", -3)
    ]


def test_nothing_is_enqueued_on_a_day_between_touches(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    scan(factory, policy, SHANGHAI, today=day(30))
    assert scan(factory, policy, SHANGHAI, today=day(29)).enqueued == []
    assert scan(factory, policy, SHANGHAI, today=day(16)).enqueued == []


def test_after_downtime_one_scan_catches_up_and_the_stale_touch_is_superseded(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    scan(factory, policy, SHANGHAI, today=day(30))  # enqueued, never dispatched: the worker went down
    report = scan(factory, policy, SHANGHAI, today=day(12))
    assert [(e.stage, e.touch_day) for e in report.enqueued] == [("auto_renewal_window", -15)]
    assert rows(factory) == [
        ("upcoming", -30, "sms", "cancelled"),
        ("auto_renewal_window", -15, "sms", "pending"),
    ]


def test_a_holder_without_a_phone_is_reminded_by_email(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, phone=None, email="li@example.com")
    report = scan(factory, policy, SHANGHAI, today=day(30))
    assert [e.channel for e in report.enqueued] == ["email"]


def test_a_confirmed_renewal_starts_a_new_cycle_and_cancels_the_old_ones_pending(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, phone="+8613800138000")
    scan(factory, policy, SHANGHAI, today=day(10))
    with unit_of_work(factory) as session:
        registry.confirm_renewal(session, session.merge(team), "E1", EXPIRES + timedelta(days=365))
    assert rows(factory) == [("renew_in_person", -10, "sms", "cancelled")]
    assert scan(factory, policy, SHANGHAI, today=day(3)).enqueued == []  # valid again


def test_a_renewal_clears_the_changes_that_blocked_auto_renewal(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, address="浦东新区A路1号")
    add_holder(factory, team, "E1", EXPIRES, address="徐汇区B路2号")
    with unit_of_work(factory) as session:
        holder = registry.get_holder(session, session.merge(team), "E1")
        assert holder.changed_fields == {"address"}
        registry.confirm_renewal(session, session.merge(team), "E1", EXPIRES + timedelta(days=365))
        assert holder.changed_fields == frozenset()


def test_dry_run_reports_but_writes_nothing(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    report = scan(factory, policy, SHANGHAI, today=day(30), dry_run=True)
    assert [e.external_id for e in report.enqueued] == ["E1"]
    assert rows(factory) == []
    assert not scan_ran_on(factory, day(30))


def test_a_finished_scan_is_recorded_for_its_day(factory, team, policy) -> None:
    scan(factory, policy, SHANGHAI, today=day(30))
    scan(factory, policy, SHANGHAI, today=day(30))
    assert scan_ran_on(factory, day(30))
    with unit_of_work(factory) as session:
        assert session.get(ScanRun, day(30)).runs == 2


@freeze_time("2026-12-21 15:59:00")
def test_each_holders_today_is_their_own_time_zones_day(factory, team, policy) -> None:
    # 2026-12-21 15:59 UTC is 23:59 on the 21st in Shanghai and 00:59 on the 22nd in Tokyo.
    add_holder(factory, team, "SH", EXPIRES)  # Shanghai: day_left 30 on the 21st -> upcoming
    add_holder(factory, team, "TK", EXPIRES)
    with unit_of_work(factory) as session:
        registry.get_holder(session, session.merge(team), "TK").timezone = "Asia/Tokyo"
    report = scan(factory, policy, SHANGHAI)
    assert {e.external_id: e.days_left for e in report.enqueued} == {"SH": 30, "TK": 29}
    assert report.scan_date == date(2026, 12, 21)


def test_ten_concurrent_scans_enqueue_each_touch_once(db_url: str, team: Team, factory, policy) -> None:
    for i in range(40):
        add_holder(factory, team, f"E{i}", EXPIRES - timedelta(days=i % 12))
    totals: list[int] = []
    lock = threading.Lock()

    def replica() -> None:
        engine = make_engine(db_url)  # its own engine and connections, like another process
        report = scan(session_factory(engine), policy, SHANGHAI, today=day(3))
        with lock:
            totals.append(len(report.enqueued))
        engine.dispose()

    threads = [threading.Thread(target=replica) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with unit_of_work(factory) as session:
        stored = session.scalar(select(func.count()).select_from(Notification))
        keys = session.execute(select(Notification.holder_id, Notification.stage, Notification.touch_day)).all()
    assert stored == 40 == sum(totals)
    assert len(set(keys)) == 40


def test_an_import_that_changes_the_address_makes_the_holder_go_in_person(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, address="浦东新区A路1号")
    assert scan(factory, policy, SHANGHAI, today=day(13)).enqueued[0].stage == "auto_renewal_window"
    add_holder(factory, team, "E1", EXPIRES, address="浦东新区 A路1号")  # same address, other spacing
    assert scan(factory, policy, SHANGHAI, today=day(12)).enqueued == []
    add_holder(factory, team, "E1", EXPIRES, address="静安区C路3号")
    report = scan(factory, policy, SHANGHAI, today=day(12))
    assert [(e.stage, e.touch_day) for e in report.enqueued] == [("renew_in_person", -15)]


def test_scan_stops_between_batches_when_asked(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    report = scan(factory, policy, SHANGHAI, today=day(30), should_stop=lambda: True)
    assert report.interrupted and report.enqueued == []
    assert not scan_ran_on(factory, day(30))


def test_now_defaults_to_the_real_clock_in_utc(factory, team, policy) -> None:
    with freeze_time(datetime(2027, 1, 1, 2, 0, tzinfo=UTC)):
        assert scan(factory, policy, SHANGHAI).scan_date == date(2027, 1, 1)


def _holder_rows(factory) -> list[tuple[str, date]]:
    from worker.store.models import Holder

    with unit_of_work(factory) as session:
        return [(h.external_id, h.next_due_on) for h in session.scalars(select(Holder).order_by(Holder.id))]


def test_the_fast_scan_and_the_full_scan_enqueue_the_same_touches(factory, team, policy) -> None:
    import random

    rng = random.Random(42)
    for i in range(300):
        fields: dict[str, object] = {"housing_type": rng.choice(["own", "rental", "dormitory", None])}
        if rng.random() < 0.3:
            fields.update(phone=None, email=f"p{i}@example.com")
        if fields["housing_type"] == "rental" and rng.random() < 0.5:
            fields["rental_registration_ends_on"] = EXPIRES - timedelta(days=rng.randint(-5, 40))
        add_holder(factory, team, f"H{i}", EXPIRES + timedelta(days=rng.randint(-120, 60)), **fields)
    compared = 0
    # Day by day over the cycle, the fast path (next_due_on) must see exactly what a full scan sees.
    for offset in range(-45, 100, 3):
        day = EXPIRES + timedelta(days=offset)
        now = datetime.combine(day, datetime.min.time(), SHANGHAI)
        fast = scan(factory, policy, SHANGHAI, today=day, now=now, dry_run=True)
        full = scan(factory, policy, SHANGHAI, today=day, now=now, dry_run=True, naive=True)
        assert sorted(sorted(e.as_json().items()) for e in fast.enqueued) == \
            sorted(sorted(e.as_json().items()) for e in full.enqueued)
        compared += len(full.enqueued)
        scan(factory, policy, SHANGHAI, today=day, now=now)  # then run it, as the daemon would that day
    assert compared > 100  # the comparison covered real work


def test_a_day_with_nothing_due_reads_no_holder(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    scan(factory, policy, SHANGHAI, today=day(30), now=datetime.combine(day(30), datetime.min.time(), SHANGHAI))
    assert _holder_rows(factory) == [("E1", EXPIRES - timedelta(days=15))]  # the next touch day
    quiet = scan(factory, policy, SHANGHAI, today=day(29), now=datetime.combine(day(29), datetime.min.time(), SHANGHAI))
    assert quiet.holders_seen == 0 and quiet.enqueued == []


def test_a_scan_of_a_future_day_does_not_move_the_schedule(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    with freeze_time(datetime.combine(day(40), datetime.min.time(), SHANGHAI)):
        report = scan(factory, policy, SHANGHAI, today=day(30))  # a simulation, ten days ahead
    assert [e.stage for e in report.enqueued] == ["upcoming"]
    from worker.store.models import DUE_NOW

    assert _holder_rows(factory) == [("E1", DUE_NOW)]  # today's scans still look at the holder


def test_a_change_to_a_holder_makes_the_next_scan_look_again(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, address="浦东新区A路1号")
    scan(factory, policy, SHANGHAI, today=day(14), now=datetime.combine(day(14), datetime.min.time(), SHANGHAI))
    add_holder(factory, team, "E1", EXPIRES, address="静安区C路3号")  # moved: must go in person now
    report = scan(factory, policy, SHANGHAI, today=day(13), now=datetime.combine(day(13), datetime.min.time(), SHANGHAI))
    assert [(e.stage, e.touch_day) for e in report.enqueued] == [("renew_in_person", -15)]
