"""One truthful wording: 61-90 days late every surface says the accumulated years are already lost
and names the last day before the lapse; auto-renewal is "not applicable" once the permit has
expired; and no surface advises a day already past."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from schedules.digest import DigestContent, DigestLine, render_digest
from schedules.findings_text import finding_text
from schedules.stages import ACCUMULATION_RESET, EXPIRED_GRACE
from schedules.vocabulary import STAGE_LABELS
from worker.planning.explain import explain, explain_text
from worker.registry import records as registry
from worker.store.db import unit_of_work

from .support import add_holder
from .test_api import TODAY, Api, api, holder  # noqa: F401  (api: a fixture)
from .test_web import Web, confirm, roster, upload, web  # noqa: F401  (web: a fixture)


def test_the_vocabulary_says_the_years_are_lost_not_that_they_will_be() -> None:
    assert "已清零" in STAGE_LABELS[ACCUMULATION_RESET][0] and "lost" in STAGE_LABELS[ACCUMULATION_RESET][1]
    assert all("将清零" not in zh and "will" not in en for zh, en in STAGE_LABELS.values())


@pytest.mark.parametrize("overdue", [61, 68, 90])
def test_explain_says_the_years_are_already_lost_61_to_90_days_late(factory, team, policy, overdue: int) -> None:
    add_holder(factory, team, "E1", TODAY - timedelta(days=overdue), accumulation_started_on=TODAY - timedelta(days=900))
    with unit_of_work(factory) as session:
        h = registry.get_holder(session, session.merge(team), "E1")
        data = explain(session, h, TODAY, policy)
    text = explain_text(data)
    assert data["stage"] == ACCUMULATION_RESET
    assert "累计年限已清零" in text and "补签将清零" not in text and "将清零" not in text.split("若不办理")[0]
    assert data["auto_renewal"] == "not_applicable" and data["eligible_for_auto_renewal"] is None
    assert "自动签注：不适用" in text and "符合条件" not in text


def test_explain_in_grace_says_the_years_keep_counting_until_day_60(factory, team, policy) -> None:
    add_holder(factory, team, "E1", TODAY - timedelta(days=20), accumulation_started_on=TODAY - timedelta(days=900))
    with unit_of_work(factory) as session:
        text = explain_text(explain(session, registry.get_holder(session, session.merge(team), "E1"), TODAY, policy))
    assert "逾期60天内补签，累计年限继续计算" in text and "已清零" not in text.split("若不办理")[0]


def test_explain_never_advises_a_day_already_past(factory, team, policy) -> None:
    add_holder(factory, team, "E1", TODAY - timedelta(days=70))
    with unit_of_work(factory) as session:
        text = explain_text(explain(session, registry.get_holder(session, session.merge(team), "E1"), TODAY, policy))
    deadlines = next(line for line in text.splitlines() if line.startswith("最后可办理的工作日"))
    ahead, _, passed = deadlines.partition("（已过：")
    assert "到期前" not in ahead and "宽限期内" not in ahead  # both are behind: only named as passed
    assert "到期前的最后工作日" in passed and "宽限期的最后工作日" in passed
    assert "失效前" in ahead


def test_a_points_renewal_day_already_past_is_said_to_have_passed() -> None:
    today = date(2026, 12, 2)
    detail = {"labor_contract_ends_on": "2026-12-31", "renewal_on": "2026-12-20", "required_months": 2,
              "renew_before": "2026-10-31"}
    for locale, passed in (("zh-CN", "已过"), ("en", "has passed")):
        text = finding_text("labor_contract_ending", locale, detail, today)
        assert passed in text and "请在 2026-10-31 前" not in text and "before 2026-10-31" not in text
        ahead = finding_text("labor_contract_ending", locale, detail, date(2026, 10, 1))
        assert "2026-10-31" in ahead and passed not in ahead


def test_the_api_says_auto_renewal_is_not_applicable_once_expired(api: Api) -> None:
    for external_id, days in (("LATE", -3), ("TODAY", 0)):
        assert api.client.post("/v1/holders", json=holder(external_id, days=days), headers=api.a).status_code == 201
    late = api.client.get("/v1/holders/LATE", headers=api.a).json()
    assert late["auto_renewal"] == "not_applicable" and late["eligible_for_auto_renewal"] is None
    today = api.client.get("/v1/holders/TODAY", headers=api.a).json()  # the last valid day: still applies
    assert today["auto_renewal"] == "eligible" and today["eligible_for_auto_renewal"] is True


def test_the_holder_page_says_not_applicable_and_the_truthful_stage(web: Web) -> None:
    client, csrf = web.signed_in()
    confirm(client, csrf, upload(client, csrf, roster(("E1", "张三", "13800138000", str(TODAY - timedelta(days=68))))))
    page = client.get("/web/holder?id=E1").text
    assert "已过期（累计年限已清零）" in page and "将清零" not in page
    auto = page[page.index('id="auto-renewal"'):][:300]
    assert "不适用" in auto and "符合条件" not in auto
    client.cookies.set("pw_lang", "en", path="/web")
    page = client.get("/web/holder?id=E1").text
    assert "overdue (accumulated years lost)" in page and "not applicable" in page


def test_the_digest_never_advises_a_grace_day_already_past() -> None:
    # Grace ended on Thursday 11 February; the digest goes out two days later.
    line = DigestLine("E1", "张三", EXPIRED_GRACE, date(2026, 12, 13), -59, deadline=date(2027, 2, 11))
    content = DigestContent("Acme", date(2027, 2, 13), [], [line], [], [], [])
    _, body = render_digest(content)
    assert "请在 2027-02-11" not in body and "宽限期内已无工作日" in body and "No working day is left" in body


# -- status reasons: one table writes them and reads them back ------------------------------------
def test_every_reason_written_is_read_back_as_its_code_and_shown_in_chinese() -> None:
    from schedules.vocabulary import STATUS_REASONS, reason_code, reason_label, reason_text

    detail = {"stage": "renew_in_person", "day": -10, "channel": "sms", "error": "HTTP 500", "status": "failed",
              "code": "30006", "attempts": 6}
    for code, template, zh in STATUS_REASONS:
        fields = {k: v for k, v in detail.items() if "{" + k in template}
        text = reason_text(code, **fields)
        assert reason_code(text) is not None and reason_code(text)[0] == code, text  # type: ignore[index]
        assert reason_label(text, "zh-CN").startswith(zh)
        assert reason_label(text, "en") == text


def test_the_opt_out_reason_is_chinese_on_the_chinese_pages() -> None:
    from worker.http.web.i18n import status_reason

    assert status_reason("zh-CN", "holder opted out of SMS") == "已退订短信"
    assert status_reason("zh-CN", "carrier reported failed (30006)") == "运营商回执：无法送达（failed 30006）"
    assert status_reason("zh-CN", "something a provider said") == "something a provider said"


def test_no_reason_is_written_outside_the_table() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "worker"
    literal = re.compile(r'(status_reason\s*=|release_note\(.*reason=|start_new_cycle\([^)]*,|cancel_pending\([^)]*,)\s*f?"')
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if literal.search(line) and "log." not in line]  # log fields are not reasons
    assert offenders == []
