"""Reminder texts: every stage renders, names its key date, and zh SMS stay within two segments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from itertools import combinations, product

import pytest

from schedules.messages import (
    DEFAULT_LOCALE,
    POINTS_RENEWAL,
    SUPPORTED_LOCALES,
    MessageContext,
    RenderedMessage,
    materials,
    normalize_locale,
    render_message,
    sms_segments,
)
from schedules.policy import default_policy
from schedules.stages import (
    ACCUMULATION_RESET,
    ADDRESS_CHANGED,
    AUTO_RENEWAL_WINDOW,
    EMPLOYER_CHANGED,
    EXPIRED_GRACE,
    LAPSED,
    PHONE_CHANGED,
    RENEW_IN_PERSON,
    RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY,
    STAGES,
    UPCOMING,
    VALID,
    key_dates,
)

EXPIRES = date(2026, 12, 7)
GRACE_ENDS = EXPIRES + timedelta(days=60)  # 2027-02-05
RESET_ENDS = EXPIRES + timedelta(days=90)  # 2027-03-07
HOUSING = ("own", "relative", "rental", "dormitory", None)
REASONS = (ADDRESS_CHANGED, EMPLOYER_CHANGED, PHONE_CHANGED, RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY)
REASON_COMBOS = [combo for n in range(len(REASONS) + 1) for combo in combinations(REASONS, n)]
# A representative touch day per stage (valid has no touch; any day past 30 will do).
TOUCH_DAY = {
    VALID: -45,
    UPCOMING: -30,
    AUTO_RENEWAL_WINDOW: -15,
    RENEW_IN_PERSON: -10,
    EXPIRED_GRACE: 30,
    ACCUMULATION_RESET: 61,
    LAPSED: 91,
}
# 2027 has no official arrangement yet: 5 February 2027 (除夕) is a statutory day off and 7 March a
# Sunday, so the last working days of grace and before the lapse are 4 and 5 March 2027.
KEY_DATE = {
    "zh-CN": {"expires_on": "2026年12月7日", "grace_ends_on": "2027年2月5日", "reset_ends_on": "2027年3月7日",
              "last_day_in_grace": "2027年2月4日", "last_day_before_lapse": "2027年3月5日"},
    "en": {"expires_on": "7 December 2026", "grace_ends_on": "5 February 2027", "reset_ends_on": "7 March 2027",
           "last_day_in_grace": "4 February 2027", "last_day_before_lapse": "5 March 2027"},
}
# The date each stage's SMS and subject must name: for in-person and overdue stages the last
# working day that still helps (7 December 2026 is a Monday, so it is the expiry date itself).
STAGE_KEY_DATE = {
    VALID: "expires_on",
    UPCOMING: "expires_on",
    AUTO_RENEWAL_WINDOW: "expires_on",
    RENEW_IN_PERSON: "expires_on",
    EXPIRED_GRACE: "last_day_in_grace",
    ACCUMULATION_RESET: "last_day_before_lapse",
    LAPSED: "expires_on",
}
# The calendar date itself, which the email still names beside the working day.
STAGE_CALENDAR_DATE = {EXPIRED_GRACE: "grace_ends_on", ACCUMULATION_RESET: "reset_ends_on"}
OVERDUE_STAGES = (EXPIRED_GRACE, ACCUMULATION_RESET, LAPSED)


def make_ctx(
    stage: str,
    *,
    day: int | None = None,
    expires_on: date = EXPIRES,
    name: str | None = "张三",
    housing_type: str | None = "rental",
    reasons: tuple[str, ...] = (),
) -> MessageContext:
    touch = TOUCH_DAY[stage] if day is None else day
    dates = key_dates(expires_on, default_policy())
    return MessageContext(
        stage=stage,
        touch_day=touch,
        today=expires_on + timedelta(days=touch),
        expires_on=expires_on,
        grace_ends_on=dates["grace_ends_on"],
        reset_ends_on=dates["reset_ends_on"],
        name=name,
        housing_type=housing_type,
        eligibility_reasons=reasons,
    )


def touch_days(stage: str) -> tuple[int, ...]:
    return default_policy().stage(stage).touches or (TOUCH_DAY[stage],)


@pytest.mark.parametrize("channel", ["sms", "email"])
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_with_its_key_date(stage: str, locale: str, channel: str) -> None:
    msg = render_message(channel, locale, make_ctx(stage))
    key_date = KEY_DATE[locale][STAGE_KEY_DATE[stage]]
    assert msg.body.strip()
    assert key_date in msg.body
    assert "{" not in msg.body and "}" not in msg.body  # no placeholder left unfilled
    if channel == "sms":
        assert msg.subject is None and msg.segments == sms_segments(msg.body) >= 1
    else:
        assert msg.subject and key_date in msg.subject and msg.segments == 0
        if stage in STAGE_CALENDAR_DATE:
            assert KEY_DATE[locale][STAGE_CALENDAR_DATE[stage]] in msg.body


def test_dates_are_written_the_local_way() -> None:
    assert "2026年12月7日" in render_message("sms", "zh-CN", make_ctx(UPCOMING)).body
    assert "7 December 2026" in render_message("sms", "en", make_ctx(UPCOMING)).body


def test_days_left_and_days_overdue_come_from_today() -> None:
    assert "还剩10天" in render_message("sms", "zh-CN", make_ctx(RENEW_IN_PERSON, day=-10)).body
    assert "3 days left" in render_message("sms", "en", make_ctx(RENEW_IN_PERSON, day=-3)).body
    assert "1 day left" in render_message("email", "en", make_ctx(RENEW_IN_PERSON, day=-1)).body
    assert "已逾期30天" in render_message("sms", "zh-CN", make_ctx(EXPIRED_GRACE, day=30)).body
    assert "1 day ago" in render_message("sms", "en", make_ctx(EXPIRED_GRACE, day=1)).body


def test_expiry_day_says_today_not_zero_days() -> None:
    assert "即今天" in render_message("sms", "zh-CN", make_ctx(RENEW_IN_PERSON, day=0)).body
    assert "0 days" not in render_message("sms", "en", make_ctx(RENEW_IN_PERSON, day=0)).body


LONG_DATE = date(2027, 12, 28)  # 11 characters in Chinese: the longest a date gets
WITH_REASONS = (UPCOMING, RENEW_IN_PERSON)  # stages with a when_reasons wording
ACCUMULATED = (None, (0, 0), (4, 2), (99, 11))  # (99, 11): the longest figure, 7 characters


def worst_case_contexts(stage: str, housing: str | None, name: str) -> Iterator[MessageContext]:
    """Every wording of the stage, with each variable part at its longest.

    Reasons only change the stages that have a when_reasons wording, the accumulated figure only
    the overdue ones, and a passed last working day only the stages with a when_closed wording
    (renew_in_person, expired_grace, accumulation_reset), so each is varied only where it matters.
    """
    reason_combos = REASON_COMBOS if stage in WITH_REASONS else [()]
    figures = ACCUMULATED if stage in OVERDUE_STAGES else (None,)
    for expires_on in (date(2026, 12, 27), date(2026, 10, 28), date(2026, 9, 28)):
        for day in touch_days(stage):
            today = expires_on + timedelta(days=day)
            # A long last day still ahead, or one just passed (the centre closed before the day).
            closing = (LONG_DATE, today - timedelta(days=1))
            in_person_days = closing if stage == RENEW_IN_PERSON else (None,)
            grace_days = closing if stage == EXPIRED_GRACE else (LONG_DATE,)
            lapse_days = closing if stage == ACCUMULATION_RESET else (LONG_DATE,)
            for reasons in reason_combos:
                for accumulated in figures:
                    for in_person, in_grace, before_lapse in product(in_person_days, grace_days, lapse_days):
                        base = make_ctx(stage, day=day, expires_on=expires_on, name=name, housing_type=housing,
                                        reasons=reasons)
                        yield replace(base, last_day_in_person=in_person, last_day_in_grace=in_grace,
                                      last_day_before_lapse=before_lapse, accumulated=accumulated)


@pytest.mark.parametrize("housing", HOUSING)
@pytest.mark.parametrize("stage", STAGES)
def test_every_zh_sms_fits_in_two_segments(stage: str, housing: str | None) -> None:
    # Worst case: a 4-character name and each date at its longest (11 characters).
    for ctx in worst_case_contexts(stage, housing, "欧阳娜娜"):
        body = render_message("sms", "zh-CN", ctx).body
        assert len(body) <= 134 and sms_segments(body) <= 2, (len(body), body)


@pytest.mark.parametrize("housing", HOUSING)
@pytest.mark.parametrize("stage", STAGES)
def test_every_en_sms_is_gsm7_and_at_most_four_segments(stage: str, housing: str | None) -> None:
    for ctx in worst_case_contexts(stage, housing, "Alex Chen"):
        body = render_message("sms", "en", ctx).body
        assert body.isascii(), body  # stays in the cheap GSM-7 encoding
        assert sms_segments(body) <= 4, body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("stage", STAGES)
def test_sms_has_no_urls_or_site_names(stage: str, locale: str) -> None:
    body = render_message("sms", locale, make_ctx(stage, reasons=REASONS)).body.lower()
    assert "http" not in body and "www." not in body and "962222" not in body


@pytest.mark.parametrize("stage", STAGES)
def test_zh_sms_is_a_signed_notification_with_opt_out(stage: str) -> None:
    body = render_message("sms", "zh-CN", make_ctx(stage)).body
    assert body.startswith("【居住证提醒】")
    assert body.endswith("回T退订")


def test_renew_in_person_sms_lists_the_housing_specific_proof() -> None:
    def sms(housing: str | None) -> str:
        return render_message("sms", "zh-CN", make_ctx(RENEW_IN_PERSON, housing_type=housing)).body

    assert "社区事务受理服务中心" in sms("own")
    assert "租赁备案" in sms("rental")
    assert "集体宿舍证明" in sms("dormitory")
    assert "亲属关系证明" in sms("relative")
    assert "房产证" in sms("own") and "亲属关系证明" not in sms("own")
    assert all("身份证原件及复印件" in sms(h) for h in HOUSING)


def test_materials_differ_per_housing_type() -> None:
    zh = {h: "\n".join(materials(h, "zh-CN")) for h in HOUSING}
    assert "租赁备案" in zh["rental"] and "房地产权证" not in zh["rental"]
    assert "集体宿舍证明" in zh["dormitory"] and "房地产权证" not in zh["dormitory"]
    assert "亲属关系证明" in zh["relative"] and "房地产权证" in zh["relative"]
    assert "房地产权证" in zh["own"] and "亲属关系证明" not in zh["own"]
    assert len(set(zh.values())) == len(HOUSING)
    for text in zh.values():
        assert "《上海市居住证签注申请表》" in text and "居住证原件" in text and "身份证原件及复印件" in text


def test_unknown_housing_type_gets_the_generic_list_naming_every_proof() -> None:
    generic = "\n".join(materials("houseboat", "zh-CN"))
    assert generic == "\n".join(materials(None, "zh-CN"))
    for proof in ("房地产权证", "亲属关系证明", "租赁备案", "集体宿舍证明"):
        assert proof in generic


def test_materials_in_english_and_housing_type_is_case_insensitive() -> None:
    assert any("Rental registration" in item for item in materials("RENTAL", "en"))
    assert any("kinship" in item for item in materials("relative", "en-GB"))


def test_renew_in_person_email_lists_materials_as_bullets() -> None:
    body = render_message("email", "zh-CN", make_ctx(RENEW_IN_PERSON, housing_type="dormitory")).body
    for item in materials("dormitory", "zh-CN"):
        assert f"- {item}" in body


@pytest.mark.parametrize("stage", OVERDUE_STAGES)
def test_overdue_emails_list_materials_costs_and_where_to_check(stage: str) -> None:
    body = render_message("email", "zh-CN", make_ctx(stage, housing_type="rental")).body
    for cost in ("沪牌拍卖", "积分落户", "公共租赁住房", "出入境证件", "居转户"):
        assert cost in body
    for place in ("962222.net", "社区事务受理服务中心", "派出所", "人才服务中心"):
        assert place in body
    assert "租赁备案" in body


@pytest.mark.parametrize("stage", OVERDUE_STAGES)
def test_overdue_sms_says_what_happens_to_accumulated_years(stage: str) -> None:
    assert "累计年限" in render_message("sms", "zh-CN", make_ctx(stage)).body
    assert "accumulated years" in render_message("sms", "en", make_ctx(stage)).body


def test_lapsed_says_apply_anew_and_wait_half_a_year() -> None:
    zh = render_message("sms", "zh-CN", make_ctx(LAPSED)).body
    en = render_message("email", "en", make_ctx(LAPSED)).body
    assert "重新申办" in zh and "半年" in zh
    assert "apply for a new permit" in en and "half a year" in en


def test_auto_renewal_window_explains_the_15_and_10_day_rule() -> None:
    body = render_message("sms", "zh-CN", make_ctx(AUTO_RENEWAL_WINDOW)).body
    assert "15天" in body and "10天" in body and "社区事务受理服务中心" in body


def test_valid_says_when_the_endorsement_window_opens() -> None:
    assert "到期前30天" in render_message("sms", "zh-CN", make_ctx(VALID)).body
    assert "30 days before" in render_message("email", "en", make_ctx(VALID)).body


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_eligibility_reason_appears_in_renew_in_person(channel: str) -> None:
    ctx = make_ctx(RENEW_IN_PERSON, day=-15, reasons=(ADDRESS_CHANGED,))
    assert "地址" in render_message(channel, "zh-CN", ctx).body
    assert "address" in render_message(channel, "en", ctx).body
    plain = render_message(channel, "zh-CN", make_ctx(RENEW_IN_PERSON, day=-15)).body
    assert "地址变更" not in plain and "居住地址已变更" not in plain


def test_every_reason_code_has_its_own_words() -> None:
    body = render_message("email", "zh-CN", make_ctx(RENEW_IN_PERSON, reasons=REASONS)).body
    for words in ("居住地址已变更", "就业单位已变更", "联系电话已变更", "租赁备案"):
        assert words in body


def test_unknown_reason_code_still_says_why_in_general_words() -> None:
    body = render_message("sms", "zh-CN", make_ctx(RENEW_IN_PERSON, reasons=("something_new",))).body
    assert "信息变更" in body and "something_new" not in body


def test_upcoming_for_an_ineligible_holder_says_go_in_person() -> None:
    body = render_message("sms", "zh-CN", make_ctx(UPCOMING, reasons=(EMPLOYER_CHANGED,))).body
    assert "单位变更" in body and "本人" in body and "约15天自动签注" not in body


def test_email_greets_by_name_or_neutrally_and_closes_for_hr() -> None:
    named = render_message("email", "zh-CN", make_ctx(UPCOMING, name="李四")).body
    anonymous = render_message("email", "zh-CN", make_ctx(UPCOMING, name=None)).body
    assert named.startswith("李四您好") and anonymous.startswith("您好")
    assert "人事部门" in named
    assert render_message("email", "en", make_ctx(UPCOMING, name="  ")).body.startswith("Hello,")
    assert "on behalf of your employer's HR" in render_message("email", "en", make_ctx(LAPSED)).body


def test_email_body_has_no_runs_of_blank_lines() -> None:
    for stage in STAGES:
        for locale in SUPPORTED_LOCALES:
            assert "\n\n\n" not in render_message("email", locale, make_ctx(stage)).body


@pytest.mark.parametrize("locale", [None, "", "fr", "ja-JP", "xx_YY"])
def test_unknown_locale_falls_back_to_zh_cn(locale: str | None) -> None:
    assert normalize_locale(locale) == DEFAULT_LOCALE == "zh-CN"
    assert render_message("sms", locale, make_ctx(UPCOMING)) == render_message("sms", "zh-CN", make_ctx(UPCOMING))


@pytest.mark.parametrize(
    ("given", "expected"),
    [("zh", "zh-CN"), ("zh-cn", "zh-CN"), ("zh_CN", "zh-CN"), ("ZH-Hans", "zh-CN"), ("en", "en"), ("en-US", "en"), ("EN_gb", "en"), ("en_US.UTF-8", "en")],
)
def test_locale_tags_are_matched_sensibly(given: str, expected: str) -> None:
    assert normalize_locale(given) == expected


def test_unknown_stage_raises_value_error() -> None:
    ctx = MessageContext("nonsense", 0, EXPIRES, EXPIRES, GRACE_ENDS, RESET_ENDS)
    with pytest.raises(ValueError):
        render_message("sms", "zh-CN", ctx)


@pytest.mark.parametrize("channel", ["fax", "SMS", ""])
def test_unknown_channel_raises_value_error(channel: str) -> None:
    with pytest.raises(ValueError):
        render_message(channel, "zh-CN", make_ctx(UPCOMING))


def test_rendered_message_is_immutable() -> None:
    msg = render_message("sms", "en", make_ctx(UPCOMING))
    assert isinstance(msg, RenderedMessage)
    with pytest.raises(AttributeError):
        msg.body = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),  # GSM-7 single
        ("a" * 161, 2),
        ("a" * 306, 2),  # 2 × 153
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count 2 septets
        ("€" * 81, 2),
        ("a" * 159 + "{", 2),
        ("a" * 158 + "[", 1),
        ("a" * 152 + "€" + "a" * 152, 3),  # an escape pair never straddles two parts
        ("字" * 70, 1),  # UCS-2 single
        ("字" * 71, 2),
        ("字" * 134, 2),  # 2 × 67
        ("字" * 135, 3),
        ("a" * 69 + "字", 1),  # one non-GSM character makes the whole text UCS-2
        ("a" * 70 + "字", 2),
        ("😀" * 35, 1),  # astral characters are 2 UTF-16 code units
        ("😀" * 36, 2),
        ("£¥èÄÖÑÜ§¿äöñüà" * 10, 1),  # 140 GSM basic (non-ASCII) characters, still GSM-7
    ],
)
def test_sms_segments_boundaries(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


# --- Working days, accumulated years and points (the issue "Beyond the expiry date") ---------------

NATIONAL_DAY_EXPIRY = date(2026, 10, 5)  # a Monday inside the 2026 National Day holiday (10/1–10/7)


def national_day_ctx(day: int, **changes: object) -> MessageContext:
    return replace(make_ctx(RENEW_IN_PERSON, day=day, expires_on=NATIONAL_DAY_EXPIRY), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("day", [-15, -11, -10])
def test_in_person_messages_name_the_last_working_day_before_a_holiday(day: int) -> None:
    # 30 September is the last working day before 5 October (1–7 October are off).
    ctx = national_day_ctx(day)
    assert "请最迟于2026年9月30日" in render_message("sms", "zh-CN", ctx).body
    assert "by 30 September 2026 at the latest" in render_message("sms", "en", ctx).body
    email = render_message("email", "zh-CN", ctx)
    assert email.subject and "2026年9月30日" in email.subject and "2026年10月5日为非工作日" in email.body
    assert "(5 October 2026 is not a working day" in render_message("email", "en", ctx).body


def test_an_expiry_on_a_working_day_adds_no_holiday_note() -> None:
    email = render_message("email", "zh-CN", make_ctx(RENEW_IN_PERSON, day=-10))
    assert "请最迟于2026年12月7日到居住地" in email.body and "不办公" not in email.body


@pytest.mark.parametrize("day", [-3, 0])
def test_after_the_last_working_day_the_message_names_the_end_of_grace(day: int) -> None:
    # Touch days stay; what they say changes: grace ends on 4 December 2026, a Friday.
    ctx = national_day_ctx(day, eligibility_reasons=(ADDRESS_CHANGED,))
    zh = render_message("sms", "zh-CN", ctx).body
    assert "到期前已无工作日" in zh and "请最迟于2026年12月4日" in zh and "2026年9月30日" not in zh
    assert "累计年限继续计算" in zh
    en = render_message("sms", "en", ctx).body
    assert "no working day left" in en and "by 4 December 2026 at the latest" in en
    email = render_message("email", "zh-CN", ctx)
    assert email.subject and "2026年12月4日" in email.subject and "2026年9月30日已过" in email.body


def test_given_last_days_are_used_as_they_are() -> None:
    ctx = replace(make_ctx(EXPIRED_GRACE), last_day_in_grace=date(2027, 2, 3))
    assert "请最迟于2027年2月3日" in render_message("sms", "zh-CN", ctx).body


def test_a_year_without_the_official_arrangement_says_so_in_the_email() -> None:
    # Grace and reset windows of a December 2026 expiry run into 2027 (no 调休 data yet).
    assert "按周一至周五及法定节假日推算" in render_message("email", "zh-CN", make_ctx(EXPIRED_GRACE)).body
    assert "Monday to Friday" in render_message("email", "en", make_ctx(ACCUMULATION_RESET)).body
    official = make_ctx(EXPIRED_GRACE, expires_on=date(2026, 3, 2))  # windows end in May 2026
    assert "推算" not in render_message("email", "zh-CN", official).body


def test_overdue_sms_names_the_accumulated_figure_and_the_last_safe_day() -> None:
    ctx = replace(make_ctx(EXPIRED_GRACE, day=30), accumulated=(4, 2))
    zh = render_message("sms", "zh-CN", ctx).body
    assert "逾期超过60天，您已累计的4年2个月将清零" in zh and "请最迟于2027年2月4日" in zh
    en = render_message("sms", "en", ctx).body
    assert "more than 60 days late, you lose the 4 years 2 months you have accumulated" in en
    assert "您已累计的4年2个月继续计算" in render_message("email", "zh-CN", ctx).body


@pytest.mark.parametrize(("figure", "zh", "en"), [
    ((4, 2), "4年2个月", "4 years 2 months"), ((1, 0), "1年", "1 year"), ((0, 1), "1个月", "1 month"),
    ((0, 11), "11个月", "11 months"), ((10, 1), "10年1个月", "10 years 1 month"),
])
def test_accumulated_figures_read_naturally(figure: tuple[int, int], zh: str, en: str) -> None:
    ctx = replace(make_ctx(ACCUMULATION_RESET), accumulated=figure)
    assert f"您已累计的{zh}已清零" in render_message("sms", "zh-CN", ctx).body
    assert f"you have lost the {en} you had accumulated" in render_message("sms", "en", ctx).body


@pytest.mark.parametrize("figure", [None, (0, 0)])
def test_without_a_figure_overdue_sms_use_the_general_words(figure: tuple[int, int] | None) -> None:
    for stage in OVERDUE_STAGES:
        body = render_message("sms", "zh-CN", replace(make_ctx(stage), accumulated=figure)).body
        assert "累计年限" in body and "您已累计的" not in body


def test_lapsed_messages_name_the_lost_figure() -> None:
    ctx = replace(make_ctx(LAPSED), accumulated=(3, 7))
    assert "您已累计的3年7个月已清零" in render_message("sms", "zh-CN", ctx).body
    assert "3 years 7 months" in render_message("email", "en", ctx).body


# Points touches: the holder hears only about findings they can act on, but every code renders.
POINTS_UNTIL = date(2026, 12, 28)
FINDINGS = ("labor_contract_under_one_year", "labor_contract_ending", "social_insurance_gap",
            "social_insurance_low_base", "employer_renamed", "something_new")
FINDING_COMBOS = [combo for n in range(1, len(FINDINGS) + 1) for combo in combinations(FINDINGS, n)]


def points_ctx(findings: tuple[str, ...], day: int = -60, name: str | None = "张三") -> MessageContext:
    base = make_ctx(VALID, name=name)
    return replace(base, stage=POINTS_RENEWAL, touch_day=day, today=POINTS_UNTIL + timedelta(days=day),
                   points_valid_until=POINTS_UNTIL, findings=findings)


@pytest.mark.parametrize("channel", ["sms", "email"])
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_points_renewal_names_the_points_date_and_the_findings(locale: str, channel: str) -> None:
    msg = render_message(channel, locale, points_ctx(("labor_contract_ending",)))
    assert ("2026年12月28日" if locale == "zh-CN" else "28 December 2026") in msg.body
    assert ("劳动合同" if locale == "zh-CN" else "labour contract") in msg.body
    assert "{" not in msg.body and "}" not in msg.body
    if channel == "email":
        assert msg.subject and "\n\n\n" not in msg.body


def test_points_sms_fit_their_budgets_for_every_combination_of_findings() -> None:
    for findings in FINDING_COMBOS:
        for day in (-60, -30):
            zh = render_message("sms", "zh-CN", points_ctx(findings, day, "欧阳娜娜")).body
            assert zh.startswith("【居住证提醒】") and zh.endswith("回T退订")
            assert len(zh) <= 134 and sms_segments(zh) <= 2, (len(zh), zh)
            en = render_message("sms", "en", points_ctx(findings, day, "Alex Chen")).body
            assert en.isascii() and sms_segments(en) <= 4, en


def test_points_email_lists_each_finding_once_as_a_bullet() -> None:
    body = render_message("email", "zh-CN", points_ctx(("labor_contract_ending", "labor_contract_ending"))).body
    assert body.count("- 您的劳动合同") == 1
    assert "还剩60天" in body


def test_an_unknown_finding_code_gets_general_words() -> None:
    assert "部分材料有待核实" in render_message("sms", "zh-CN", points_ctx(("something_new",))).body


def test_a_points_message_needs_the_points_date() -> None:
    with pytest.raises(ValueError, match="points_valid_until"):
        render_message("sms", "zh-CN", replace(points_ctx(("employer_renamed",)), points_valid_until=None))


def test_many_reasons_are_shortened_in_a_chinese_sms() -> None:
    body = render_message("sms", "zh-CN", make_ctx(RENEW_IN_PERSON, reasons=REASONS)).body
    assert "因地址变更、单位变更等无法自动签注" in body


def test_the_calendar_note_concerns_only_the_days_a_message_names() -> None:
    # A December expiry's grace runs into 2027, but the in-person reminder names only 2026 days.
    assert "推算" not in render_message("email", "zh-CN", make_ctx(RENEW_IN_PERSON, day=-10)).body
    assert "推算" in render_message("email", "zh-CN", make_ctx(RENEW_IN_PERSON, expires_on=date(2027, 1, 15))).body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize(("stage", "passed_field"), [(EXPIRED_GRACE, "last_day_in_grace"),
                                                     (ACCUMULATION_RESET, "last_day_before_lapse")])
def test_a_last_working_day_already_past_is_never_advised(locale: str, stage: str, passed_field: str) -> None:
    from schedules.texts import format_date, templates

    ctx = make_ctx(stage)
    passed = ctx.today - timedelta(days=1)
    ctx = replace(ctx, **{passed_field: passed})
    t = templates(locale)
    for channel in ("sms", "email"):
        message = render_message(channel, locale, ctx)
        text = (message.subject or "") + message.body
        assert format_date(passed, t) in text  # named, as passed
        # ...and never as the day to act by.
        assert f"最迟于{format_date(passed, t)}" not in text and f"by {format_date(passed, t)}" not in text
    sms = render_message("sms", locale, ctx).body
    if stage == EXPIRED_GRACE:  # what still helps: the last day before the lapse, years lost
        assert KEY_DATE[locale]["last_day_before_lapse"] in sms
    else:
        assert ("重新申办" if locale == "zh-CN" else "apply for a new permit") in sms


@pytest.mark.parametrize("day", [61, 68, 80])
def test_61_to_90_days_late_every_wording_says_the_years_are_already_lost(day: int) -> None:
    ctx = replace(make_ctx(ACCUMULATION_RESET, day=day), accumulated=(4, 2))
    zh, en = (render_message("sms", loc, ctx).body for loc in ("zh-CN", "en"))
    assert "已清零" in zh and "将清零" not in zh
    assert "lost" in en and "will reset" not in en
