"""Stage boundaries of RULES.md, day by day from 31 days before expiry to 91 days after."""

from __future__ import annotations

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
    planned_touches,
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
DAYS = list(range(31, -92, -1)) + [365, 120, 32, -92, -200, -1000]


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
    from schedules.stages import next_touch_on

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
