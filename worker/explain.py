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
from schedules.messages import materials
from schedules.policy import Policy
from schedules.stages import evaluate, planned_touches
from worker.evaluation import accumulated_of, facts_of
from worker.models import Holder
from worker.points import findings_of

_REASONS_ZH = {"address_changed": "居住地址已变更", "employer_changed": "用人单位已变更",
               "phone_changed": "联系电话已变更",
               "rental_registration_ends_before_expiry": "租赁备案在居住证到期前到期"}
_STAGE_ZH = {"valid": "有效", "upcoming": "即将到期", "auto_renewal_window": "自动签注期",
             "renew_in_person": "需本人办理", "expired_grace": "已过期（宽限期内）",
             "accumulation_reset": "已过期（累计年限将清零）", "lapsed": "已失效"}


def explain(session: Session, holder: Holder, today: date, policy: Policy) -> dict[str, Any]:
    facts = facts_of(holder)
    ev = evaluate(facts, today, policy)
    d = deadlines(holder.expires_on, policy)
    held = accumulated_of(holder, today)
    overdue = max(0, -ev.days_left)
    if_late = {n: on_late_endorsement(n, policy) for n in (1, 61, 91)}
    return {
        "external_id": holder.external_id,
        "today": today.isoformat(),
        "expires_on": holder.expires_on.isoformat(),
        "days_left": ev.days_left,
        "stage": ev.stage,
        "eligible_for_auto_renewal": ev.eligibility.eligible,
        "eligibility_reasons": list(ev.eligibility.reasons),
        "deadlines": {
            "last_day_in_person": d.last_day_in_person.isoformat(),
            "last_day_in_grace": d.last_day_in_grace.isoformat(),
            "last_day_before_lapse": d.last_day_before_lapse.isoformat(),
            "calendar_official": d.calendar_official,
            "calendar_note": calendar_note(d),
        },
        "accumulated": None if held is None else {
            "years": held.years, "months": held.months,
            "since": (holder.accumulation_started_on or holder.created_at.date()).isoformat(),
            "if_endorsed_today": on_late_endorsement(overdue, policy) if overdue else "keeps_counting",
            "rules": if_late,
        },
        "points": {
            "basis": holder.points_basis,
            "valid_until": _iso(holder.points_valid_until),
            "labor_contract_ends_on": _iso(holder.labor_contract_ends_on),
            "labor_contract_starts_on": _iso(holder.labor_contract_starts_on),
            "findings": [{"code": f.code, "bites_on": f.bites_on.isoformat(), "holder_can_act": f.holder_can_act,
                          "text": finding_text(f.code, holder.locale, f.detail),
                          "text_en": finding_text(f.code, "en", f.detail), "detail": f.detail}
                         for f in findings_of(session, holder, today)],
        },
        "planned_touches": [{"stage": t.stage, "touch_day": t.day, "on": t.on.isoformat()}
                            for t in planned_touches(facts, today, policy)],
        "channel": ev.channel,
        "materials": materials(holder.housing_type, "zh-CN"),
    }


def explain_text(data: dict[str, Any]) -> str:
    """The explanation in words (Chinese with the English terms), for a person to read."""
    d, lines = data["deadlines"], []
    days = data["days_left"]
    when = f"还剩 {days} 天" if days >= 0 else f"已逾期 {-days} 天"
    lines.append(f"{data['external_id']}：居住证有效期至 {data['expires_on']}（{when}）")
    lines.append(f"阶段 stage：{_STAGE_ZH.get(data['stage'], data['stage'])}（{data['stage']}）")
    if data["eligible_for_auto_renewal"]:
        lines.append("自动签注：可能（信息未变更；系统约在到期前15天自动签注，届时以官方短信为准）")
    else:
        reasons = "、".join(_REASONS_ZH.get(r, r) for r in data["eligibility_reasons"])
        lines.append(f"自动签注：不符合（{reasons}）——须本人到社区事务受理服务中心办理")
    if data["stage"] != "valid" and data["materials"]:
        lines.append("请携带 bring：" + "；".join(data["materials"]))
    lines.append(f"最后可办理的工作日：到期前 {d['last_day_in_person']}；宽限期内 {d['last_day_in_grace']}"
                 f"（逾期60天内，累计年限继续计算）；清零前 {d['last_day_before_lapse']}（逾期90天内）")
    if d["calendar_note"]:
        lines.append(f"注意 calendar: {d['calendar_note']}")
    acc = data["accumulated"]
    if acc:
        lines.append(f"累计持有年限：{acc['years']}年{acc['months']}个月（自 {acc['since']}）。"
                     f"逾期超过60天补签将清零；超过90天须重新申办并至少等待半年。")
    for f in data["points"]["findings"]:
        who = "本人可处理" if f["holder_can_act"] else "需HR处理"
        lines.append(f"积分风险 {f['code']}（{f['bites_on']} 起生效，{who}）：{f['text']}")
    if not data["points"]["findings"] and data["points"]["valid_until"]:
        lines.append(f"积分有效期至 {data['points']['valid_until']}：未发现续期风险")
    touches = data["planned_touches"]
    if touches:
        lines.append("接下来的提醒 planned reminders：" + "；".join(f"{t['on']} {t['stage']} {t['touch_day']:+d}"
                                                        for t in touches[:6]))
    else:
        lines.append("本周期内不再发送提醒")
    lines.append("若不办理：过期期间无法参加沪牌拍卖、申请积分落户和公租房、网上办理出入境证件或居转户；"
                 "逾期超过60天累计年限清零，超过90天须重新申办。")
    return "\n".join(lines)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
