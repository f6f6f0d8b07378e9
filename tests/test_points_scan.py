"""Points touches are first-class: the policy's channel order, a daily scan that reads only the
holders whose touch falls due (through an index, a few statements for any number of holders),
catch-up after downtime, and planning at once when a change makes a touch due."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, inspect, select, text

from schedules.policy import Policy, policy_from_mapping, read_packaged_policy
from worker.planning.events import Context, HolderUpdated, handle
from worker.planning.points import scan_points
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import Notification

from .support import add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2027, 1, 29)
NOW = datetime.combine(DAY, time(8, 30), SHANGHAI)


def _with_points(factory, team, external_id: str, valid_until: date, **fields: object) -> int:
    """A holder with education points whose labour contract ends within 2 months of renewal."""
    holder_id = add_holder(factory, team, external_id, DAY + timedelta(days=300), **fields)
    with unit_of_work(factory) as session:
        h = registry.get_holder(session, session.merge(team), external_id)
        h.points_basis, h.points_valid_until = "education", valid_until
        h.labor_contract_ends_on = valid_until + timedelta(days=20)
    return holder_id


def email_first(policy: Policy) -> Policy:
    raw = copy.deepcopy(read_packaged_policy("shanghai_residence_permit"))
    raw["channels"] = ["email", "sms"]
    return policy_from_mapping(raw)


def test_a_points_touch_goes_by_the_policys_channel_order(factory, team, policy) -> None:
    _with_points(factory, team, "P1", DAY + timedelta(days=60), email="p1@example.com")
    [sms] = scan_points(factory, SHANGHAI, now=NOW, policy=policy, dry_run=True)
    [email] = scan_points(factory, SHANGHAI, now=NOW, policy=email_first(policy), dry_run=True)
    assert (sms.channel, email.channel) == ("sms", "email")


def test_the_daily_scan_reads_only_holders_whose_touch_falls_due(factory, team, policy) -> None:
    _with_points(factory, team, "DUE60", DAY + timedelta(days=60))
    _with_points(factory, team, "DUE30", DAY + timedelta(days=30))
    _with_points(factory, team, "MID", DAY + timedelta(days=45))  # between touches: looked at on its touch days
    _with_points(factory, team, "FAR", DAY + timedelta(days=200))
    enqueued = scan_points(factory, SHANGHAI, now=NOW, policy=policy)
    assert sorted((e.external_id, e.touch_day) for e in enqueued) == [("DUE30", -30), ("DUE60", -60)]


def test_a_day_on_either_side_of_the_touch_day_reads_nobody(factory, team, policy) -> None:
    _with_points(factory, team, "P1", DAY + timedelta(days=60))
    for offset in (-1, 1):
        day = DAY + timedelta(days=offset)
        assert scan_points(factory, SHANGHAI, today=day, now=NOW, policy=policy, since=day - timedelta(days=1)) == []


def test_after_downtime_the_touch_missed_goes_out_once(factory, team, policy) -> None:
    _with_points(factory, team, "P1", DAY + timedelta(days=55))  # its -60 touch was 5 days ago
    assert scan_points(factory, SHANGHAI, now=NOW, policy=policy) == []  # yesterday's scan ran: nothing new
    [late] = scan_points(factory, SHANGHAI, now=NOW, policy=policy, since=DAY - timedelta(days=10))
    assert late.touch_day == -60
    assert scan_points(factory, SHANGHAI, now=NOW, policy=policy, since=DAY - timedelta(days=10)) == []


def test_the_scan_costs_a_few_statements_however_many_holders(factory, team, policy) -> None:
    for i in range(40):
        _with_points(factory, team, f"P{i}", DAY + timedelta(days=60), phone=f"+861380013{i:04d}")
    engine = factory.kw["bind"]
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        enqueued = scan_points(factory, SHANGHAI, now=NOW, policy=policy)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(enqueued) == 40
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 3, statements


def test_the_scan_reads_holders_through_the_points_index(factory, db_url: str) -> None:
    indexes = {i["name"] for i in inspect(factory.kw["bind"]).get_indexes("holders")}
    assert "ix_holders_points_valid_until" in indexes
    if db_url.startswith("sqlite"):
        with factory.kw["bind"].connect() as conn:
            plan = " ".join(str(r) for r in conn.execute(text(
                "EXPLAIN QUERY PLAN SELECT id FROM holders WHERE points_valid_until > '2027-01-01' "
                "AND points_valid_until <= '2027-01-02'")))
        assert "ix_holders_points_valid_until" in plan


def test_a_change_that_makes_a_points_touch_due_plans_it_at_once(factory, team, policy) -> None:
    holder_id = _with_points(factory, team, "MID", DAY + timedelta(days=45))
    now = datetime.combine(DAY, time(10), SHANGHAI).astimezone(UTC)
    with unit_of_work(factory) as session:
        enqueued = handle(session, [HolderUpdated(holder_id)], Context(policy, SHANGHAI, now))
    assert [(e.stage, e.touch_day) for e in enqueued] == [("points_renewal", -60)]
    with unit_of_work(factory) as session:  # and the permit's own pending touches are left alone
        assert session.scalar(select(Notification.status).where(Notification.stage == "points_renewal")) == "pending"
