"""Points (积分) renewal risks: each rule on both sides of its threshold, touches and their words."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from schedules.accumulation import add_months
from schedules.digest import DigestContent, DigestLine, PointsDigestLine, render_digest
from schedules.findings_text import finding_text
from schedules.points import (
    FINDING_CODES,
    Finding,
    InsuranceMonth,
    PointsFacts,
    next_points_touch_on,
    points_findings,
    points_touch_due,
)
from schedules.points_policy import (
    PolicyError,
    default_points_policy,
    load_points_policy,
    points_policy_from_mapping,
)
from schedules.texts import SUPPORTED_LOCALES

POLICY = default_points_policy()
UNTIL = date(2026, 8, 15)  # points_valid_until; the window is 2025-08 … 2026-07
AFTER_WINDOW = date(2026, 8, 1)  # every month of the window is over


def facts(**changes: Any) -> PointsFacts:
    base: dict[str, Any] = {"basis": None, "points_valid_until": UNTIL, "labor_contract_ends_on": None}
    return PointsFacts(**{**base, **changes})


def codes(found: list[Finding]) -> list[str]:
    return [f.code for f in found]


def months(*spec: tuple[int, bool, float | None], start: date = date(2025, 8, 1)) -> tuple[InsuranceMonth, ...]:
    """Consecutive months from `start`, each (count, paid, base multiple)."""
    out: list[InsuranceMonth] = []
    for n, paid, multiple in spec:
        for _ in range(n):
            out.append(InsuranceMonth(add_months(start, len(out)), paid, multiple))
    return tuple(out)


def test_the_packaged_policy_has_the_issue_numbers_and_source_notes() -> None:
    assert POLICY.touches == (-60, -30)
    assert (POLICY.contract.min_term_months, POLICY.contract.must_exceed_months) == (12, 2)
    assert POLICY.bases["education"].months == 6 and POLICY.bases["education"].min_base_multiple is None
    assert POLICY.bases["title"].min_base_multiple == 1.0
    assert POLICY.bases["social_insurance_multiple"].continuous and POLICY.bases["social_insurance_multiple"].months == 12
    assert POLICY.holder_can_act == {"labor_contract_under_one_year", "labor_contract_ending"}
    assert all(POLICY.sources[code] for code in FINDING_CODES)
    assert load_points_policy() is POLICY


# --- Labour contract: more than 2 months left on the renewal day ---------------------------------

@pytest.mark.parametrize(("until", "ends_on", "bites_on"), [
    (UNTIL, date(2026, 10, 16), None),  # 2 months and a day left on 8/15
    (UNTIL, date(2026, 10, 15), date(2026, 8, 15)),  # exactly 2 months: not more than 2
    (UNTIL, date(2026, 9, 30), date(2026, 7, 30)),  # bites before the points expire: renew earlier
    (UNTIL, date(2026, 8, 1), date(2026, 6, 1)),
    (UNTIL, date(2025, 12, 31), date(2025, 10, 31)),  # already ended
    (date(2026, 8, 31), date(2026, 11, 1), None),
    (date(2026, 8, 31), date(2026, 10, 31), date(2026, 8, 31)),
    # Month ends: renewing on 12/28–12/31 all leave exactly "2 months" to 2/28.
    (date(2026, 12, 31), date(2027, 3, 1), None),
    (date(2026, 12, 31), date(2027, 2, 28), date(2026, 12, 28)),
    (date(2027, 12, 31), date(2028, 2, 29), date(2027, 12, 29)),  # leap year
])
def test_a_contract_must_have_more_than_two_months_left(until: date, ends_on: date, bites_on: date | None) -> None:
    found = points_findings(facts(points_valid_until=until, labor_contract_ends_on=ends_on), AFTER_WINDOW, POLICY)
    if bites_on is None:
        assert found == []
    else:
        [finding] = found
        assert (finding.code, finding.bites_on, finding.holder_can_act) == ("labor_contract_ending", bites_on, True)
        assert finding.detail["renew_before"] == bites_on.isoformat()
        assert finding.detail["labor_contract_ends_on"] == ends_on.isoformat()


@pytest.mark.parametrize(("starts_on", "ends_on", "short"), [
    (date(2025, 9, 1), date(2026, 8, 31), False),  # one year exactly
    (date(2025, 9, 1), date(2026, 8, 30), True),
    (date(2024, 2, 29), date(2025, 2, 27), False),  # leap start: a year runs to 2/27
    (date(2024, 2, 29), date(2025, 2, 26), True),
    (date(2026, 3, 1), date(2027, 2, 28), False),
    (date(2026, 3, 1), date(2027, 2, 27), True),
    (None, date(2026, 12, 31), False),  # start unknown: not judged
])
def test_a_contract_term_must_be_one_year_or_more(starts_on: date | None, ends_on: date, short: bool) -> None:
    found = points_findings(
        facts(labor_contract_starts_on=starts_on, labor_contract_ends_on=ends_on), AFTER_WINDOW, POLICY
    )
    term = [f for f in found if f.code == "labor_contract_under_one_year"]
    assert bool(term) is short
    if short:
        assert term[0].bites_on == UNTIL and term[0].holder_can_act


def test_no_contract_date_is_no_finding() -> None:
    assert points_findings(facts(labor_contract_ends_on=None), AFTER_WINDOW, POLICY) == []


# --- Social insurance in the 12 months before the renewal month ----------------------------------

@pytest.mark.parametrize(("basis", "spec", "expected"), [
    # education: 6 normal months, at any base
    ("education", [(6, True, 0.6), (6, False, None)], []),
    ("education", [(5, True, 0.6), (7, False, None)], ["social_insurance_gap"]),
    ("education", [(6, True, None)], []),  # the other 6 months missing: still 6
    ("education", [(5, True, None)], ["social_insurance_gap"]),  # 7 missing ended months are gaps
    ("education", [(3, False, None), (6, True, 0.6), (3, False, None)], []),  # any 6, not continuous
    # title: 6 months at 1x or more
    ("title", [(6, True, 1.0), (6, True, 0.99)], []),
    ("title", [(5, True, 1.0), (7, True, 0.99)], ["social_insurance_low_base"]),
    ("title", [(5, True, 1.0), (6, True, 0.99), (1, False, None)], ["social_insurance_gap", "social_insurance_low_base"]),
    ("title", [(6, True, 0.9999999999), (6, False, None)], []),  # float noise is 1x
    ("title", [(6, True, None), (6, False, None)], []),  # base unknown: not a known short month
    # social_insurance_multiple: 12 continuous months at the multiple (default 2x)
    ("social_insurance_multiple", [(12, True, 2.0)], []),
    ("social_insurance_multiple", [(11, True, 2.0), (1, True, 1.99)], ["social_insurance_low_base"]),
    ("social_insurance_multiple", [(5, True, 2.0), (1, False, None), (6, True, 2.0)], ["social_insurance_gap"]),
    ("social_insurance_multiple", [(11, True, 3.0)], ["social_insurance_gap"]),  # July 2026 missing
])
def test_social_insurance_against_the_basis(basis: str, spec: list[tuple[int, bool, float | None]],
                                            expected: list[str]) -> None:
    found = points_findings(facts(basis=basis, months=months(*spec)), AFTER_WINDOW, POLICY)
    assert codes(found) == expected
    for finding in found:
        assert finding.bites_on == UNTIL and not finding.holder_can_act
        assert finding.detail["window_from"] == "2025-08" and finding.detail["window_to"] == "2026-07"


def test_the_granted_multiple_is_the_reference_when_known() -> None:
    data = months((12, True, 2.5))
    assert points_findings(facts(basis="social_insurance_multiple", months=data), AFTER_WINDOW, POLICY) == []
    found = points_findings(
        facts(basis="social_insurance_multiple", months=data, reference_multiple=3.0), AFTER_WINDOW, POLICY
    )
    assert codes(found) == ["social_insurance_low_base"]
    assert found[0].detail["min_base_multiple"] == 3.0 and len(found[0].detail["low_base_months"]) == 12


@pytest.mark.parametrize(("today", "paid_months", "expected"), [
    # On 2026-06-10 months to 2026-05 are judged; June and July are assumed paid.
    (date(2026, 6, 10), 4, []),  # 4 paid + 2 to come = 6
    (date(2026, 6, 10), 3, ["social_insurance_gap"]),  # 3 + 2 < 6: already broken
    (date(2026, 6, 30), 3, ["social_insurance_gap"]),
    (date(2026, 7, 1), 4, ["social_insurance_gap"]),  # June is over now and was not paid
    (date(2026, 7, 1), 5, []),
])
def test_only_months_already_over_are_judged(today: date, paid_months: int, expected: list[str]) -> None:
    # Paid months at the end of the judged part (so the gaps are the earlier months).
    data = months((10 - paid_months, False, None), (paid_months, True, 0.6))
    assert codes(points_findings(facts(basis="education", months=data), today, POLICY)) == expected


def test_months_outside_the_window_do_not_count() -> None:
    inside = months((12, True, 2.0))
    before = InsuranceMonth(date(2025, 7, 1), False, None)  # just before the window
    renewal_month = InsuranceMonth(date(2026, 8, 1), False, None)  # the renewal month itself
    data = (before, *inside, renewal_month)
    assert points_findings(facts(basis="social_insurance_multiple", months=data), date(2026, 9, 1), POLICY) == []


def test_a_month_is_read_as_its_first_day_and_later_entries_win() -> None:
    data = (*months((11, True, 2.0)), InsuranceMonth(date(2026, 7, 20), False, None),
            InsuranceMonth(date(2026, 7, 31), True, 2.0))
    assert points_findings(facts(basis="social_insurance_multiple", months=data), AFTER_WINDOW, POLICY) == []


@pytest.mark.parametrize("basis", [None, "unknown"])
def test_no_known_basis_means_no_social_insurance_check(basis: str | None) -> None:
    data = months((12, False, None))
    assert points_findings(facts(basis=basis, months=data), AFTER_WINDOW, POLICY) == []


def test_no_months_imported_is_not_a_gap() -> None:
    assert points_findings(facts(basis="education", months=()), AFTER_WINDOW, POLICY) == []


# --- Employer renamed, ordering, no points --------------------------------------------------------

def test_a_renamed_employer_is_for_hr() -> None:
    [finding] = points_findings(facts(employer_changed=True), AFTER_WINDOW, POLICY)
    assert (finding.code, finding.bites_on, finding.holder_can_act) == ("employer_renamed", UNTIL, False)


def test_findings_come_earliest_bite_first() -> None:
    found = points_findings(facts(employer_changed=True, labor_contract_ends_on=date(2026, 9, 30),
                                  basis="education", months=months((2, True, 1.0))), AFTER_WINDOW, POLICY)
    assert codes(found) == ["labor_contract_ending", "social_insurance_gap", "employer_renamed"]
    assert [f.bites_on for f in found] == [date(2026, 7, 30), UNTIL, UNTIL]


def test_without_points_there_is_nothing_to_find() -> None:
    everything = facts(points_valid_until=None, employer_changed=True, labor_contract_ends_on=date(2026, 1, 1))
    assert points_findings(everything, AFTER_WINDOW, POLICY) == []
    assert points_touch_due(everything, AFTER_WINDOW, POLICY) is None
    assert next_points_touch_on(everything, AFTER_WINDOW, POLICY) is None


# --- Touches: 60 and 30 days before the points expire --------------------------------------------

ENDING = facts(labor_contract_ends_on=date(2026, 9, 1), employer_changed=True)


@pytest.mark.parametrize(("days_before", "touch"), [
    (61, None), (60, -60), (45, -60), (31, -60), (30, -30), (1, -30), (0, -30), (-1, None),
])
def test_the_latest_points_touch_on_or_before_today(days_before: int, touch: int | None) -> None:
    today = UNTIL - timedelta(days=days_before)
    due = points_touch_due(ENDING, today, POLICY)
    assert (due.day if due else None) == touch
    if due is not None:
        assert due.on == UNTIL + timedelta(days=due.day) and due.points_valid_until == UNTIL
        assert [f.code for f in due.holder_findings] == ["labor_contract_ending"]
        assert {f.code for f in due.findings} == {"labor_contract_ending", "employer_renamed"}


def test_no_touch_without_findings() -> None:
    assert points_touch_due(facts(), UNTIL - timedelta(days=60), POLICY) is None


@pytest.mark.parametrize("days_before", range(75, -3, -1))
def test_next_points_touch_on_is_the_first_later_day_with_a_new_due_touch(days_before: int) -> None:
    today = UNTIL - timedelta(days=days_before)
    due_today = points_touch_due(ENDING, today, POLICY)
    day, found = today, None
    while day < today + timedelta(days=120):
        day += timedelta(days=1)
        due = points_touch_due(ENDING, day, POLICY)
        if due is not None and due != due_today:
            found = day
            break
    assert next_points_touch_on(ENDING, today, POLICY) == found


# --- Policy validation and HR words ----------------------------------------------------------------

def _raw() -> dict[str, Any]:
    path = Path(__file__).parent.parent / "schedules" / "policies" / "shanghai_points.yaml"
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return raw


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(touches=[-60, 5]), "negative"),
    (lambda r: r["findings"].pop("employer_renamed"), "findings must list"),
    (lambda r: r["social_insurance"]["bases"].pop("title"), "bases must be"),
    (lambda r: r["social_insurance"]["bases"]["education"].update(months=13), "more months than the window"),
    (lambda r: r.pop("labor_contract"), "missing or has a malformed field"),
])
def test_a_broken_points_policy_is_rejected(change: Any, message: str) -> None:
    raw = _raw()
    change(raw)
    with pytest.raises(PolicyError, match=message):
        points_policy_from_mapping(raw)


def test_a_points_policy_loads_from_a_file(tmp_path: Path) -> None:
    raw = _raw()
    raw["touches"] = [-90, -45]
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_points_policy(path).touches == (-90, -45)


def all_findings() -> list[Finding]:
    return points_findings(
        facts(basis="title", months=months((3, True, 1.0), (2, True, 0.8), (7, False, None)),
              labor_contract_starts_on=date(2026, 1, 1), labor_contract_ends_on=date(2026, 9, 30),
              employer_changed=True),
        AFTER_WINDOW, POLICY,
    )


def test_the_sample_covers_every_finding_code() -> None:
    assert sorted(codes(all_findings())) == sorted(FINDING_CODES)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_finding_has_an_hr_phrase_with_its_dates(locale: str) -> None:
    for finding in all_findings():
        text = finding_text(finding.code, locale, finding.detail)
        assert "{" not in text and "?" not in text, text
        assert "2026-08-15" in text, text  # the points expiry
    gap = next(f for f in all_findings() if f.code == "social_insurance_gap")
    zh = finding_text(gap.code, "zh-CN", gap.detail)
    assert "职称积分" in zh and "至少6个月按不低于1倍基数正常缴纳社保" in zh and "2026-01、2026-02" in zh
    en = finding_text(gap.code, "en", gap.detail)
    assert "Title-based points" in en and "at 1x the base or more" in en


def test_an_unknown_code_or_missing_detail_still_reads() -> None:
    assert "something_new" in finding_text("something_new", "zh-CN", {"renewal_on": "2026-08-15"})
    assert "2026-08-15" in finding_text("employer_renamed", "en", {"renewal_on": "2026-08-15"})
    assert "?" in finding_text("labor_contract_ending", "en", {})  # never raises


def test_low_base_months_are_listed_for_hr() -> None:
    low = next(f for f in all_findings() if f.code == "social_insurance_low_base")
    assert low.detail["low_base_months"] == ["2025-11", "2025-12"]
    assert "2025-11, 2025-12" in finding_text(low.code, "en", low.detail)


def test_the_hr_digest_lists_points_risks_with_their_findings() -> None:
    line = PointsDigestLine("E9", "王五", UNTIL, tuple(all_findings()))
    in_person = DigestLine("E1", None, "renew_in_person", date(2026, 10, 5), 10)
    content = DigestContent("Acme", date(2026, 9, 25), [in_person], [], [], [], [], points=[line])
    subject, body = render_digest(content)
    assert "2 项需要处理" in subject
    zh, en = body.split("\n---\n")
    assert "积分续签风险（1 人）" in zh and "E9 王五：积分有效期至 2026-08-15" in zh
    assert "Points renewal at risk (1)" in en and "Employer renamed" in en
    assert zh.count("  · ") == len(FINDING_CODES)
    # The in-person line names the last working day before the National Day holiday.
    assert "2026-10-05（最后工作日 2026-09-30）" in zh and "2026-10-05 (last working day 2026-09-30)" in en


def test_the_digest_tells_hr_what_to_prepare_for_a_renewal_at_risk_or_not() -> None:
    risky = PointsDigestLine("E9", "王五", UNTIL, tuple(all_findings()))
    calm = PointsDigestLine("E7", "赵六", UNTIL, ())
    both = DigestContent("Acme", date(2026, 6, 16), [], [], [], [], [], points=[risky], points_coming_up=[calm])
    subject, body = render_digest(both)
    zh, en = body.split("\n---\n")
    assert "2 项需要处理" in subject
    assert "积分续签临近，未发现风险（1 人）" in zh and "E7 赵六：积分有效期至 2026-08-15" in zh
    assert "Points renewals coming up, no risk found (1)" in en
    # The materials once, under the last points section: the letter of introduction, the seal, the contract.
    assert zh.count("单位需准备：") == 1 and en.count("HR prepares: ") == 1
    assert zh.index("单位需准备：") > zh.index("积分续签临近，未发现风险")
    for words in (("申报单位介绍信", "单位人事专员身份证", "加盖单位公章", "超过2个月的劳动合同", "人才服务中心"),):
        assert all(w in zh for w in words), zh
    assert "letter of introduction" in en and "company seal" in en
    only_risky = DigestContent("Acme", date(2026, 6, 16), [], [], [], [], [], points=[risky])
    zh_only = render_digest(only_risky)[1].split("\n---\n")[0]
    assert zh_only.count("单位需准备：") == 1 and "未发现风险" not in zh_only
    nothing = DigestContent("Acme", date(2026, 6, 16), [], [], [], [], [])
    assert nothing.is_empty and "单位需准备" not in render_digest(nothing)[1]


@pytest.mark.parametrize(("today", "near"), [
    (UNTIL - timedelta(days=61), False), (UNTIL - timedelta(days=60), True), (UNTIL, True),
    (UNTIL + timedelta(days=1), False),
])
def test_a_points_renewal_is_near_from_the_first_touch_day_to_the_last_valid_day(today: date, near: bool) -> None:
    from schedules.points import points_touch_day

    assert (points_touch_day(UNTIL, today) is not None) is near
    assert points_touch_day(None, today) is None
