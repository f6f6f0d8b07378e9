"""The batched notice to a team's HR: what happened to their holders that needs a person.

zh-CN first (HR in Shanghai), then English. Holders are named by the team's own external_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_KINDS = {
    "opted_out": ("退订短信（仍可收到邮件提醒）", "opted out of SMS (email reminders continue)"),
    "renewal_reported": ("回复称已续签，请核实新的有效期", "replied that the permit was renewed; please verify the new expiry date"),
    "unreachable": ("提醒无法送达，请直接联系本人", "could not be reached; please contact them directly"),
    "reply": ("回复了短信", "replied to a reminder"),
}


@dataclass(frozen=True)
class HrNoticeItem:
    kind: str
    detail: str
    created_at: datetime


def _line(item: HrNoticeItem, lang: int) -> str:
    label = _KINDS.get(item.kind, (item.kind, item.kind))[lang]
    when = item.created_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return f"- {when}  {label}: {item.detail}"


def render_hr_notice(team_name: str, items: list[HrNoticeItem]) -> tuple[str, str]:
    """Subject and plain-text body of one HR notice."""
    subject = f"【居住证提醒】{team_name}：{len(items)} 项需要处理 / {len(items)} item(s) need attention"
    zh = "\n".join(_line(i, 0) for i in items)
    en = "\n".join(_line(i, 1) for i in items)
    body = (
        f"{team_name} 人事同事您好：\n\n以下员工的居住证签注提醒需要您关注：\n\n{zh}\n\n"
        "员工以工号标识。如员工已续签，请在系统中确认新的有效期，提醒即会停止。\n\n"
        f"---\n\nDear HR team of {team_name},\n\nThe following residence-permit reminders need your attention:\n\n"
        f"{en}\n\nEmployees are named by their employee ID. When an employee has renewed, confirm the new "
        "expiry date and the reminders stop.\n"
    )
    return subject, body
