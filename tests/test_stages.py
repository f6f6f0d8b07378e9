"""Stage boundaries of RULES.md, day by day from 31 days before expiry to 91 days after."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, timedelta

import pytest

from schedules.policy import PolicyError, default_policy, policy_from_mapping
from schedules.stages import (
    ADDRESS_CHANGED,
    EMPLOYER_CHANGED,
    PHONE_CHANGED,
    RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY,
    STAGES,
    HolderFacts,
    eligibility,
    evaluate,
    key_dates,
    next_touch_on,
    planned_touches,
    stage_touches,
    working_day_touch_day,
)

POLICY = default_policy()
EXPIRES = date(2026, 12, 31)


def expected_stage(days_left: int, eligible: bool) -> str:
    """RULES.md's stage table, written out independently of the policy file."""
    if days_left > 30:
        return "valid"
    if 16 <= days_left <= 30:
        return "upcoming"
    if 11 <= days_left <= 15:
        return "auto_renewal_window" if eligible else "renew_in_person"
    if 0 <= days_left <= 10:
        return "renew_in_person"
    overdue = -days_left
    if 1 <= overdue <= 60:
        return "expired_grace"
    if 61 <= overdue <= 90:
        return "accumulation_reset"
    return "lapsed"


# The default touch days of the contract, written out independently too.
TOUCHES = {
    "upcoming": [-30], "auto_renewal_window": [-15], "renew_in_person": [-15, -10, -3, 0],
    "expired_grace": [1, 30, 50], "accumulation_reset": [61, 80], "lapsed": [91], "valid": [],
}

ELIGIBLE = HolderFacts(expires_on=EXPIRES, housing_type="own")
INELIGIBLE = HolderFacts(expires_on=EXPIRES, housing_type="own", changed_since_endorsement=frozenset({"address"}))
DAYS = [*range(31, -92, -1), 365, 120, 32, -92, -200, -1000]


def test_policy_uses_exactly_the_stage_names_of_rules_md() -> None:
    assert POLICY.stage_names == STAGES


@pytest.mark.parametrize("days_left", DAYS)
@pytest.mark.parametrize("facts", [ELIGIBLE, INELIGIBLE], ids=["eligible", "not-eligible"])
def test_every_day_maps_to_the_stage_rules_md_gives(days_left: int, facts: HolderFacts) -> None:
    today = EXPIRES - timedelta(days=days_left)
    result = evaluate(facts, today, POLICY)
    assert result.days_left == days_left
    assert result.stage == expected_stage(days_left, facts is ELIGIBLE)


@pytest.mark.parametrize("days_left", DAYS)
@pytest.mark.parametrize("facts", [ELIGIBLE, INELIGIBLE], ids=["eligible", "not-eligible"])
def test_the_due_touch_is_the_latest_touch_of_the_current_stage(days_left: int, facts: HolderFacts) -> None:
    today = EXPIRES - timedelta(days=days_left)
    result = evaluate(facts, today, POLICY)
    offset = -days_left
    due = [d for d in TOUCHES[result.stage] if d <= offset]
    if not due:
        assert result.due_touch is None
    else:
        assert result.due_touch is not None
        assert (result.due_touch.stage, result.due_touch.day) == (result.stage, max(due))
        assert result.due_touch.on == EXPIRES + timedelta(days=max(due))


@pytest.mark.parametrize(
    ("days_left", "stage", "touch"),
    [
        (31, "valid", None), (30, "upcoming", -30), (16, "upcoming", -30),
        (15, "auto_renewal_window", -15), (11, "auto_renewal_window", -15), (10, "renew_in_person", -10),
        (4, "renew_in_person", -10), (3, "renew_in_person", -3), (1, "renew_in_person", -3),
        (0, "renew_in_person", 0), (-1, "expired_grace", 1), (-29, "expired_grace", 1),
        (-30, "expired_grace", 30), (-50, "expired_grace", 50), (-60, "expired_grace", 50),
        (-61, "accumulation_reset", 61), (-79, "accumulation_reset", 61), (-80, "accumulation_reset", 80),
        (-90, "accumulation_reset", 80), (-91, "lapsed", 91), (-400, "lapsed", 91),
    ],
)
def test_boundaries_on_both_sides_for_an_eligible_holder(days_left: int, stage: str, touch: int | None) -> None:
    result = evaluate(ELIGIBLE, EXPIRES - timedelta(days=days_left), POLICY)
    assert result.stage == stage
    assert (result.due_touch.day if result.due_touch else None) == touch


def test_a_holder_who_cannot_auto_renew_is_sent_in_person_from_day_15() -> None:
    at_16 = evaluate(INELIGIBLE, EXPIRES - timedelta(days=16), POLICY)
    at_15 = evaluate(INELIGIBLE, EXPIRES - timedelta(days=15), POLICY)
    assert at_16.stage == "upcoming"
    assert at_15.stage == "renew_in_person"
    assert at_15.due_touch is not None and at_15.due_touch.day == -15


@pytest.mark.parametrize(
    ("changed", "reason"),
    [({"address"}, ADDRESS_CHANGED), ({"employer"}, EMPLOYER_CHANGED), ({"phone"}, PHONE_CHANGED)],
)
def test_each_change_of_circumstances_breaks_eligibility(changed: set[str], reason: str) -> None:
    result = eligibility(HolderFacts(expires_on=EXPIRES, changed_since_endorsement=frozenset(changed)), POLICY)
    assert not result.eligible
    assert result.reasons == (reason,)


def test_a_rental_registration_must_still_be_valid_on_the_expiry_date() -> None:
    def facts(ends_on: date | None) -> HolderFacts:
        return HolderFacts(expires_on=EXPIRES, housing_type="rental", rental_registration_ends_on=ends_on)

    assert eligibility(facts(EXPIRES), POLICY).eligible  # valid on the day itself
    ends_day_before = eligibility(facts(EXPIRES - timedelta(days=1)), POLICY)
    assert not ends_day_before.eligible
    assert ends_day_before.reasons == (RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY,)
    # Unknown is not a known failure: "eligible" only ever means "likely".
    assert eligibility(facts(None), POLICY).eligible


def test_a_rental_date_does_not_matter_for_own_housing() -> None:
    facts = HolderFacts(expires_on=EXPIRES, housing_type="own", rental_registration_ends_on=date(2020, 1, 1))
    assert eligibility(facts, POLICY).eligible


def test_sms_is_chosen_when_a_phone_is_on_file_else_email() -> None:
    today = EXPIRES - timedelta(days=30)
    assert evaluate(HolderFacts(EXPIRES, has_phone=True, has_email=True), today, POLICY).channel == "sms"
    assert evaluate(HolderFacts(EXPIRES, has_phone=False, has_email=True), today, POLICY).channel == "email"
    assert evaluate(HolderFacts(EXPIRES, has_phone=False, has_email=False), today, POLICY).channel is None


def test_key_dates_name_the_last_day_of_grace_and_before_lapse() -> None:
    dates = key_dates(EXPIRES, POLICY)
    assert dates["grace_ends_on"] == EXPIRES + timedelta(days=60)
    assert dates["reset_ends_on"] == EXPIRES + timedelta(days=90)


def test_planned_touches_skip_the_stage_an_eligible_holder_never_enters() -> None:
    today = EXPIRES - timedelta(days=40)
    eligible_plan = [(t.stage, t.day) for t in planned_touches(ELIGIBLE, today, POLICY)]
    ineligible_plan = [(t.stage, t.day) for t in planned_touches(INELIGIBLE, today, POLICY)]
    assert eligible_plan[:3] == [("upcoming", -30), ("auto_renewal_window", -15), ("renew_in_person", -10)]
    assert ("renew_in_person", -15) not in eligible_plan
    assert ineligible_plan[:2] == [("upcoming", -30), ("renew_in_person", -15)]
    assert ("lapsed", 91) in eligible_plan


def _raw_policy() -> dict:
    return {
        "name": "t", "send_window": {"start": "09:00", "end": "20:00"},
        "stages": [
            {"name": "a", "windows": [{"days_left": [0, None]}], "touches": [-5]},
            {"name": "b", "windows": [{"days_left": [None, -1]}], "touches": [1]},
        ],
    }


def test_a_consistent_policy_loads() -> None:
    assert policy_from_mapping(_raw_policy()).stage_names == ("a", "b")


def test_a_policy_with_a_gap_between_stages_is_rejected() -> None:
    raw = _raw_policy()
    raw["stages"][1]["windows"] = [{"days_left": [None, -2]}]
    with pytest.raises(PolicyError, match="days_left=-1"):
        policy_from_mapping(raw)


def test_a_policy_with_overlapping_stages_is_rejected() -> None:
    raw = _raw_policy()
    raw["stages"][1]["windows"] = [{"days_left": [None, 0]}]
    with pytest.raises(PolicyError, match="days_left=0"):
        policy_from_mapping(raw)


def test_a_touch_outside_its_stage_is_rejected() -> None:
    raw = _raw_policy()
    raw["stages"][1]["touches"] = [-3]
    with pytest.raises(PolicyError, match="touch -3 of b"):
        policy_from_mapping(raw)


@pytest.mark.parametrize("days_left", DAYS)
@pytest.mark.parametrize("facts", [ELIGIBLE, INELIGIBLE], ids=["eligible", "not-eligible"])
def test_next_touch_on_is_the_first_later_day_with_a_new_due_touch(days_left: int, facts: HolderFacts) -> None:
    today = EXPIRES - timedelta(days=days_left)
    nxt = next_touch_on(facts, today, POLICY)
    due_today = evaluate(facts, today, POLICY).due_touch
    # Walking day by day, the due touch first changes exactly on next_touch_on.
    day, found = today, None
    while day < today + timedelta(days=400):
        day += timedelta(days=1)
        if evaluate(facts, day, POLICY).due_touch != due_today:
            found = day
            break
    assert nxt == found


# --- The working-day touch: a holiday closes the centre before the -3 touch -----------------------


@pytest.mark.parametrize(("expires_on", "extra"), [
    # 2026 National Day (10/1–10/7): the last working day is 9/30; three working days before it
    # skip the weekend and Mid-Autumn (Friday 9/25) to Thursday 9/24.
    (date(2026, 10, 5), -11),
    (date(2026, 10, 7), -13),
    (date(2026, 10, 3), None),  # 9/30 is day -3 itself: the -3 touch still comes in time
    (date(2026, 10, 4), -10),  # falls on the -10 touch: no extra touch (see below)
    (date(2026, 10, 1), None),  # last working day 9/30 is day -1: after the -3 touch
    (date(2026, 10, 8), None),  # a working day
    # 2026 Spring Festival (2/15–2/23): last working day Saturday 2/14, then 2/11.
    (date(2026, 2, 23), -12),
    (date(2026, 2, 18), -7),
    # 2025 National Day (10/1–10/8): 9/30, then 9/26 (Sunday 9/28 is worked).
    (date(2025, 10, 8), -12),
    # 2025 Spring Festival (1/28–2/4): 1/27, then 1/23 (Sunday 1/26 is worked).
    (date(2025, 2, 4), -12),
    # Ordinary weekends: a Monday expiry's last working day is Friday, day -3: no extra touch.
    (date(2026, 12, 7), None),
    (date(2026, 12, 6), None),
    # A three-day weekend never triggers it: expiring on Qingming Monday 2026-04-06, the last
    # working day is Friday 4/3, day -3.
    (date(2026, 4, 6), None),
])
def test_the_extra_touch_day_follows_the_official_calendar(expires_on: date, extra: int | None) -> None:
    assert working_day_touch_day(expires_on, POLICY) == extra


def test_the_extra_touch_joins_renew_in_person_only_when_it_is_a_new_day() -> None:
    assert stage_touches("renew_in_person", date(2026, 10, 5), POLICY) == (-15, -11, -10, -3, 0)
    assert stage_touches("renew_in_person", date(2026, 10, 4), POLICY) == (-15, -10, -3, 0)
    assert stage_touches("renew_in_person", date(2026, 12, 7), POLICY) == (-15, -10, -3, 0)
    assert stage_touches("upcoming", date(2026, 10, 5), POLICY) == (-30,)


NATIONAL_DAY = date(2026, 10, 5)


def test_a_holder_who_must_go_in_person_gets_the_extra_touch_on_its_day() -> None:
    facts = HolderFacts(expires_on=NATIONAL_DAY, changed_since_endorsement=frozenset({"address"}))
    on = date(2026, 9, 24)
    due = evaluate(facts, on, POLICY).due_touch
    assert due is not None and (due.stage, due.day, due.on) == ("renew_in_person", -11, on)
    day_before = evaluate(facts, on - timedelta(days=1), POLICY).due_touch
    assert day_before is not None and day_before.day == -15
    assert next_touch_on(facts, on - timedelta(days=1), POLICY) == on
    assert next_touch_on(facts, on, POLICY) == date(2026, 9, 25)  # the -10 touch
    plan = [(t.stage, t.day) for t in planned_touches(facts, date(2026, 9, 1), POLICY)]
    assert plan[:4] == [("upcoming", -30), ("renew_in_person", -15), ("renew_in_person", -11),
                        ("renew_in_person", -10)]


def test_an_eligible_holder_is_still_in_auto_renewal_on_that_day_and_skips_it() -> None:
    # Day -11 is auto_renewal_window for them; their first in-person touch (-10, 9/25) already
    # comes within the last three working days (9/28, 9/29, 9/30).
    facts = HolderFacts(expires_on=NATIONAL_DAY)
    due = evaluate(facts, date(2026, 9, 24), POLICY).due_touch
    assert due is not None and (due.stage, due.day) == ("auto_renewal_window", -15)
    assert ("renew_in_person", -11) not in [(t.stage, t.day) for t in planned_touches(facts, date(2026, 9, 1), POLICY)]
    assert next_touch_on(facts, date(2026, 9, 20), POLICY) == date(2026, 9, 25)


HOLIDAY_EXPIRIES = [date(2026, 10, 5), date(2026, 10, 7), date(2026, 2, 23), date(2026, 2, 18),
                    date(2025, 10, 8), date(2025, 2, 4), date(2026, 4, 6), date(2031, 10, 3)]


@pytest.mark.parametrize("expires_on", HOLIDAY_EXPIRIES, ids=str)
@pytest.mark.parametrize("changed", [frozenset(), frozenset({"address"})], ids=["eligible", "not-eligible"])
def test_next_touch_on_matches_evaluate_day_by_day_around_holidays(expires_on: date, changed: frozenset[str]) -> None:
    facts = HolderFacts(expires_on=expires_on, changed_since_endorsement=changed)
    dues = {}
    day = expires_on - timedelta(days=45)
    while day <= expires_on + timedelta(days=100):
        dues[day] = evaluate(facts, day, POLICY).due_touch
        day += timedelta(days=1)
    for today in sorted(dues)[:-1]:
        expected = next((d for d in sorted(dues) if d > today and dues[d] != dues[today]), None)
        assert next_touch_on(facts, today, POLICY) == expected, today
        # The planned touches are exactly the touches still to become due.
        planned = planned_touches(facts, today, POLICY)
        assert [t.on for t in planned] == sorted({t.on for d, t in dues.items() if t and d > today and t.on > today})


def test_a_policy_without_a_working_day_touch_keeps_its_touches() -> None:
    policy = replace(POLICY, working_day_touch=None)
    assert working_day_touch_day(NATIONAL_DAY, policy) is None
    assert stage_touches("renew_in_person", NATIONAL_DAY, policy) == (-15, -10, -3, 0)


def test_a_working_day_touch_for_an_unknown_stage_is_rejected() -> None:
    raw = _raw_policy()
    raw["working_day_touch"] = {"stage": "nope", "when_last_working_day_before": -3, "working_days_before": 3}
    with pytest.raises(PolicyError, match="unknown stage"):
        policy_from_mapping(raw)


def test_evaluation_stays_fast_for_a_whole_registry() -> None:
    # ~11k holders over a year of expiry dates: the calendar is looked up once per expiry date.
    holders = [HolderFacts(expires_on=date(2026, 1, 1) + timedelta(days=i % 365),
                           changed_since_endorsement=frozenset({"address"}) if i % 3 else frozenset())
               for i in range(11_000)]
    today = date(2026, 6, 1)
    started = time.perf_counter()
    for facts in holders:
        evaluate(facts, today, POLICY)
        next_touch_on(facts, today, POLICY)
    assert time.perf_counter() - started < 5  # generous for slow CI; about 0.3 s on a laptop
