"""`holders explain`: where a holder stands, what to do by when, and what happens if not.

One function builds the facts (used as JSON by the API); another puts them in words for the CLI.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from schedules.accumulation import on_late_endorsement
from schedules.deadlines import calendar_note, deadlines
from schedules.findings_text import finding_text
from schedules.messages import materials, points_materials
from schedules.points import points_touch_day
from schedules.policy import Policy
from schedules.stages import evaluate, planned_touches
from schedules.vocabulary import REASON_LABELS, STAGE_LABELS, label
from schedules.workdays import calendar_source
from worker.planning.evaluation import accumulated_of, facts_of
from worker.planning.points import findings_of
from worker.store.models import Holder


def explain(session: Session, holder: Holder, today: date, policy: Policy) -> dict[str, Any]:
    facts = facts_of(holder)
    ev = evaluate(facts, today, policy)
    d = deadlines(holder.expires_on, policy)
    held = accumulated_of(holder, today)
    overdue = max(0, -ev.days_left)
    near = points_touch_day(holder.points_valid_until, today) is not None
    if_late = {n: on_late_endorsement(n, policy) for n in (1, 61, 91)}
    return {
        "external_id": holder.external_id,
        "today": today.isoformat(),
        "expires_on": holder.expires_on.isoformat(),
        "days_left": ev.days_left,
        "stage": ev.stage,
        # Not applicable once expired: the city's auto-renewal no longer happens.
        "auto_renewal": ev.auto_renewal,
        "eligible_for_auto_renewal": None if ev.auto_renewal == "not_applicable" else ev.eligibility.eligible,
        "eligibility_reasons": list(ev.eligibility.reasons),
        "deadlines": {
            "last_day_in_person": d.last_day_in_person.isoformat(),
            "last_day_in_grace": d.last_day_in_grace.isoformat(),
            "last_day_before_lapse": d.last_day_before_lapse.isoformat(),
            "calendar_official": d.calendar_official,
            "calendar_note": calendar_note(d),
            # Which calendar each year of these deadlines uses (package, operator's file, fallback).
            "calendars": {str(y): calendar_source(y) for y in sorted({holder.expires_on.year,
                                                                       d.last_day_in_grace.year,
                                                                       d.last_day_before_lapse.year})},
        },
        "accumulated": None if held is None else {
            "years": held.years, "months": held.months,
            "since": (holder.accumulation_started_on or holder.created_at.date()).isoformat(),
            "if_endorsed_today": on_late_endorsement(overdue, policy) if overdue else "keeps_counting",
            "rules": if_late,
        },
        "points": {
            # From the first points touch day until points_valid_until: the employer's HR prepares
            # the renewal's materials (RULES.md, "Points renewal materials").
            "renewal_near": near,
            "employer_materials": points_materials("zh-CN") if near else [],
            "basis": holder.points_basis,
            "valid_until": _iso(holder.points_valid_until),
            "labor_contract_ends_on": _iso(holder.labor_contract_ends_on),
            "labor_contract_starts_on": _iso(holder.labor_contract_starts_on),
            "findings": [{"code": f.code, "bites_on": f.bites_on.isoformat(), "holder_can_act": f.holder_can_act,
                          "text": finding_text(f.code, holder.locale, f.detail, today),
                          "text_en": finding_text(f.code, "en", f.detail, today), "detail": f.detail}
                         for f in findings_of(session, holder, today)],
        },
        "planned_touches": [{"stage": t.stage, "touch_day": t.day, "on": t.on.isoformat()}
                            for t in planned_touches(facts, today, policy)],
        "channel": ev.channel,
        "materials": materials(holder.housing_type, "zh-CN"),
    }


def explain_text(data: dict[str, Any]) -> str:
    """The explanation in words (Chinese with the English terms), for a person to read. Only days
    still ahead are advised; a day already past is named as passed, with what follows."""
    d, lines = data["deadlines"], []
    today = date.fromisoformat(data["today"])
    days = data["days_left"]
    when = f"还剩 {days} 天" if days >= 0 else f"已逾期 {-days} 天"
    lines.append(f"{data['external_id']}：居住证有效期至 {data['expires_on']}（{when}）")
    lines.append(f"阶段 stage：{label(STAGE_LABELS, data['stage'])}（{data['stage']}）")
    if data["auto_renewal"] == "not_applicable":
        lines.append("自动签注：不适用（居住证已过期，须本人到社区事务受理服务中心办理）")
    elif data["eligible_for_auto_renewal"]:
        lines.append("自动签注：可能（信息未变更；系统约在到期前15天自动签注，届时以官方短信为准）")
    else:
        reasons = "、".join(label(REASON_LABELS, r) for r in data["eligibility_reasons"])
        lines.append(f"自动签注：不符合（{reasons}）——须本人到社区事务受理服务中心办理")
    if data["stage"] != "valid" and data["materials"]:
        lines.append("请携带 bring：" + "；".join(data["materials"]))
    lines.append(_deadlines_line(d, today))
    if d["calendar_note"]:
        lines.append(f"注意 calendar: {d['calendar_note']}")
    lines.append("工作日历 calendar: " + "；".join(f"{y}: {src}" for y, src in d["calendars"].items()))
    acc = data["accumulated"]
    if acc:
        lines.append(f"累计持有年限：{acc['years']}年{acc['months']}个月（自 {acc['since']}）。{_years_line(acc)}")
    for f in data["points"]["findings"]:
        who = "本人可处理" if f["holder_can_act"] else "需HR处理"
        bites = date.fromisoformat(f["bites_on"])
        since = f"{f['bites_on']} 起已生效" if bites <= today else f"{f['bites_on']} 起生效"
        lines.append(f"积分风险 {f['code']}（{since}，{who}）：{f['text']}")
    if not data["points"]["findings"] and data["points"]["valid_until"]:
        lines.append(f"积分有效期至 {data['points']['valid_until']}：未发现续期风险")
    if data["points"]["renewal_near"]:
        lines.append(f"积分续签临近（{data['points']['valid_until']} 前），单位需准备 employer prepares："
                     + "；".join(data["points"]["employer_materials"]))
    touches = data["planned_touches"]
    if touches:
        lines.append("接下来的提醒 planned reminders：" + "；".join(f"{t['on']} {t['stage']} {t['touch_day']:+d}"
                                                        for t in touches[:6]))
    else:
        lines.append("本周期内不再发送提醒")
    lines.append("若不办理：过期期间无法参加沪牌拍卖、申请积分落户和公租房、网上办理出入境证件或居转户；"
                 "逾期超过60天累计年限清零，超过90天须重新申办。")
    return "\n".join(lines)


def _deadlines_line(d: dict[str, Any], today: date) -> str:
    """The last working days that still help, in order; the passed ones said to have passed."""
    steps = ((d["last_day_in_person"], "到期前", "到期前的最后工作日"),
             (d["last_day_in_grace"], "宽限期内（逾期60天内，累计年限继续计算）", "宽限期的最后工作日"),
             (d["last_day_before_lapse"], "失效前（逾期90天内，累计年限清零但无须重新申办）", "失效前的最后工作日"))
    ahead = [f"{what} {day}" for day, what, _ in steps if date.fromisoformat(day) >= today]
    passed = [f"{name} {day}" for day, _, name in steps if date.fromisoformat(day) < today]
    line = "最后可办理的工作日：" + ("；".join(ahead) if ahead else "已全部过去：居住证已失效，须重新申办")
    if passed:
        line += "（已过：" + "、".join(passed) + "）"
    return line


def _years_line(acc: dict[str, Any]) -> str:
    """What happens to the accumulated years if endorsed today (RULES.md), truthfully by stage."""
    outcome = acc["if_endorsed_today"]
    if outcome == "reset":
        return "已逾期超过60天：累计年限已清零，现在补签居住证可恢复，年限从零重新计算；超过90天须重新申办。"
    if outcome == "reset_and_reapply":
        return "已逾期超过90天：累计年限已清零，须重新申办并至少等待半年。"
    return "逾期60天内补签，累计年限继续计算；逾期超过60天将清零，超过90天须重新申办并至少等待半年。"


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
