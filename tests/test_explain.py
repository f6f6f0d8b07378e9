"""`holders explain` and the social-insurance import, against a real registry."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from schedules.policy import Policy
from worker.planning.explain import explain, explain_text
from worker.registry import records as registry
from worker.registry.insurance import import_months, parse_months
from worker.registry.roster import RosterError
from worker.store.db import unit_of_work
from worker.store.models import InsuranceMonth, Team

from .support import add_holder


def _holder(factory, team: Team, **points: object):  # type: ignore[no-untyped-def]
    add_holder(factory, team, "E1", date(2026, 10, 5), housing_type="rental",
               rental_registration_ends_on=date(2026, 9, 1))
    with unit_of_work(factory) as session:
        holder = registry.get_holder(session, session.merge(team), "E1")
        for key, value in points.items():
            setattr(holder, key, value)


def test_explain_names_the_stage_deadlines_years_and_what_to_do(factory, team, policy: Policy) -> None:
    _holder(factory, team, accumulation_started_on=date(2022, 7, 31), points_basis="education",
            points_valid_until=date(2026, 11, 30), labor_contract_ends_on=date(2026, 12, 15))
    with unit_of_work(factory) as session:
        holder = registry.get_holder(session, session.merge(team), "E1")
        data = explain(session, holder, date(2026, 9, 20), policy)
    assert data["stage"] == "renew_in_person" and data["days_left"] == 15
    assert data["eligibility_reasons"] == ["rental_registration_ends_before_expiry"]
    # National Day 2026: 10/1-10/7 off, so the last working day before a 10/5 expiry is 9/30.
    assert data["deadlines"]["last_day_in_person"] == "2026-09-30"
    assert (data["accumulated"]["years"], data["accumulated"]["months"]) == (4, 1)
    assert [f["code"] for f in data["points"]["findings"]] == ["labor_contract_ending"]
    assert data["planned_touches"][0]["on"] == "2026-09-24"  # the extra working-day touch
    text = explain_text(data)
    for needle in ("需本人办理", "2026-09-30", "4年1个月", "租赁备案", "逾期超过60天", "劳动合同"):
        assert needle in text


def test_explain_for_a_holder_without_points_says_nothing_about_points(factory, team, policy) -> None:
    _holder(factory, team)
    with unit_of_work(factory) as session:
        data = explain(session, registry.get_holder(session, session.merge(team), "E1"), date(2026, 8, 1), policy)
    assert data["stage"] == "valid" and data["points"]["findings"] == []
    assert "积分风险" not in explain_text(data) and "积分有效期" not in explain_text(data)


def test_social_insurance_months_import_and_update(factory, team) -> None:
    _holder(factory, team)
    csv = "external_id,month,paid,base_multiple\nE1,2026-05,1,1.0\nE1,2026-06,否,\n".encode("gbk")
    with unit_of_work(factory) as session:
        assert len(import_months(session, session.merge(team), parse_months(csv))) == 1  # one holder, 2 months
    again = "工号,月份,是否缴纳,缴费基数倍数\nE1,2026-06,是,2\n".encode("utf-8-sig")
    with unit_of_work(factory) as session:
        import_months(session, session.merge(team), parse_months(again))
    with unit_of_work(factory) as session:
        rows = [(m.month, m.paid, m.base_multiple) for m in session.scalars(select(InsuranceMonth).order_by(InsuranceMonth.month))]
    assert rows == [(date(2026, 5, 1), True, 1.0), (date(2026, 6, 1), True, 2.0)]


@pytest.mark.parametrize(("line", "column"), [("E1,2026-13,1,1", "month"), ("E1,2026-05,maybe,1", "paid"),
                                              ("E1,2026-05,1,eleven", "base_multiple"), (",2026-05,1,1", "external_id")])
def test_a_bad_social_insurance_row_rejects_the_file(line: str, column: str) -> None:
    with pytest.raises(RosterError) as caught:
        parse_months(f"external_id,month,paid,base_multiple\nE1,2026-04,1,1\n{line}\n".encode())
    assert [(e.row, e.column) for e in caught.value.errors] == [(3, column)]


def test_an_unknown_holder_rejects_the_whole_months_file(factory, team) -> None:
    _holder(factory, team)
    rows = parse_months(b"external_id,month,paid\nE1,2026-05,1\nNOPE,2026-05,1\n")
    with pytest.raises(RosterError) as caught, unit_of_work(factory) as session:
        import_months(session, session.merge(team), rows)
    assert str(caught.value) == "row 3: external_id: no holder 'NOPE' in team 'acme'"
    with unit_of_work(factory) as session:
        assert session.scalars(select(InsuranceMonth)).all() == []


def test_a_points_touch_goes_to_the_holder_who_can_act_and_survives_the_permit_scan(factory, team, policy) -> None:
    import random
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from worker.delivery.dispatch import Dispatcher
    from worker.planning.points import scan_points
    from worker.planning.scan import scan
    from worker.store.models import Notification

    from .support import RecordingNotifier

    shanghai = ZoneInfo("Asia/Shanghai")
    valid_until = date(2027, 3, 31)
    day = valid_until - timedelta(days=60)
    add_holder(factory, team, "P1", date(2027, 2, 14))  # the permit's own -15 touch falls on `day` too
    with unit_of_work(factory) as session:
        holder = registry.get_holder(session, session.merge(team), "P1")
        holder.points_basis, holder.points_valid_until = "education", valid_until
        holder.labor_contract_ends_on = valid_until + timedelta(days=20)  # within 2 months of renewal
    now = datetime.combine(day, datetime.min.time(), shanghai).replace(hour=10)
    points = scan_points(factory, shanghai, today=day, now=now, policy=policy)
    assert [(e.stage, e.touch_day) for e in points] == [("points_renewal", -60)]
    scan(factory, policy, shanghai, today=day, now=now)  # the permit touch must not supersede it
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, shanghai, rng=random.Random(1))
    dispatcher.run_batch(now=now)
    with unit_of_work(factory) as session:
        statuses = {n.stage: n.status for n in session.scalars(select(Notification))}
    assert statuses == {"points_renewal": "sent", "auto_renewal_window": "sent"}
    points_sms = [m.body for m in notifier.sent if "积分" in m.body]
    assert len(points_sms) == 1 and "劳动合同" in points_sms[0]


@pytest.mark.parametrize(("overdue", "restarts"), [(60, False), (61, True), (91, True)])
def test_a_late_renewal_restarts_the_accumulated_years(factory, team, overdue: int, restarts: bool) -> None:
    from datetime import timedelta

    add_holder(factory, team, "L1", date(2026, 6, 30))
    with unit_of_work(factory) as session:
        holder = registry.get_holder(session, session.merge(team), "L1")
        holder.accumulation_started_on = date(2021, 3, 1)
        renewed_on = date(2026, 6, 30) + timedelta(days=overdue)
        registry.start_new_cycle(session, holder, date(2027, 8, 31), "renewed late", renewed_on=renewed_on)
        assert holder.accumulation_started_on == (renewed_on if restarts else date(2021, 3, 1))


@pytest.mark.parametrize(("today", "near"), [(date(2026, 9, 30), False), (date(2026, 10, 1), True),
                                             (date(2026, 11, 30), True), (date(2026, 12, 1), False)])
def test_explain_names_what_the_employer_prepares_once_a_points_renewal_is_near(factory, team, policy,
                                                                                today: date, near: bool) -> None:
    _holder(factory, team, points_basis="education", points_valid_until=date(2026, 11, 30))
    with unit_of_work(factory) as session:
        data = explain(session, registry.get_holder(session, session.merge(team), "E1"), today, policy)
    assert data["points"]["renewal_near"] is near
    text = explain_text(data)
    if near:
        assert "申报单位介绍信" in data["points"]["employer_materials"]
        assert "单位需准备" in text and "加盖单位公章" in text
    else:
        assert data["points"]["employer_materials"] == [] and "单位需准备" not in text
