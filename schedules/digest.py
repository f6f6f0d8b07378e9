"""The daily HR digest: one email per team and working day with everything that needs a person.

zh-CN first (HR in Shanghai), then the same in English. Holders are named by the team's own
external_id (and the name HR registered); never by phone or email. Each line says what to do
and by when, since the digest is the only place HR hears about overdue holders.
Pure: the worker gathers the content, this only words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from schedules.deadlines import last_working_day_on_or_before
from schedules.findings_text import finding_text
from schedules.messages import points_materials
from schedules.points import Finding
from schedules.vocabulary import CHANNEL_LABELS, STAGE_LABELS, label, reason_label

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZH, EN = 0, 1

_KINDS = {
    "opted_out": ("退订短信（仍可收到邮件提醒）", "opted out of SMS (email reminders continue)"),
    "renewal_reported": ("回复称已续签，请核实新的有效期",
                         "replied that the permit was renewed; please verify the new expiry date"),
    "unreachable": ("提醒无法送达，请直接联系本人", "could not be reached; please contact them directly"),
    "reply": ("回复了短信", "replied to a reminder"),
}

_MATERIALS = (
    ("  携带材料：《上海市居住证签注申请表》（现场领取）；居住证原件；身份证原件及复印件；合法居住证明"
    "（自有或亲属住房：房地产权证复印件并出示原件，亲属住房另需亲属关系证明；租住：租赁备案证明复印件并出示原件；"
    "单位或学校集体宿舍：单位或学校出具的住宿证明）。登记信息与实际不符的，现场不予签注。"),
    ("  Bring: the endorsement application form (available on site); the residence permit (original); the ID card "
    "(original and a copy); proof of residence (own or a relative's home: property certificate copy with the "
    "original shown, plus proof of kinship for a relative's home; rented home: rental registration certificate "
    "copy with the original shown; unit or school dormitory: a dormitory certificate). If the information on "
    "file no longer matches, the centre refuses the endorsement on the spot."),
)
_WHY = (
    "  过期期间无法参加沪牌拍卖，无法申请积分落户、公共租赁住房、居转户，也无法网上办理出入境证件。",
    ("  While expired, the permit blocks the licence-plate auction, points settlement, public rental housing, "
    "residence-to-hukou conversion and online exit-entry documents."),
)


@dataclass(frozen=True)
class HrNoticeItem:
    """An HR event (opt-out, reported renewal, unreachable holder, reply) as the digest shows it."""

    kind: str
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class DigestLine:
    external_id: str
    name: str | None
    stage: str
    expires_on: date
    days_left: int
    # The last day the current stage's remedy works (end of grace / before the reset), from the
    # policy; None when the policy leaves it open or the stage has none.
    deadline: date | None = None


@dataclass(frozen=True)
class DigestFailure:
    external_id: str
    stage: str
    touch_day: int
    channel: str
    reason: str | None


@dataclass(frozen=True)
class PointsDigestLine:
    """A holder whose points (积分) renewal is at risk: every finding, for HR to act on."""

    external_id: str
    name: str | None
    points_valid_until: date
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class DigestContent:
    team_name: str
    day: date
    entering_in_person: list[DigestLine]
    overdue: list[DigestLine]
    newly_lapsed: list[DigestLine]
    failed: list[DigestFailure]
    events: list[HrNoticeItem]
    points: list[PointsDigestLine] = field(default_factory=list)  # points renewal risks
    # Points renewals whose touch day came with no risk found: HR still prepares the materials.
    points_coming_up: list[PointsDigestLine] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return (len(self.entering_in_person) + len(self.overdue) + len(self.newly_lapsed)
                + len(self.failed) + len(self.events) + len(self.points) + len(self.points_coming_up))

    @property
    def is_empty(self) -> bool:
        return self.item_count == 0


def _days(days_left: int, lang: int) -> str:
    if days_left > 0:
        return (f"还剩 {days_left} 天", f"{days_left} day(s) left")[lang]
    if days_left == 0:
        return ("今天到期", "expires today")[lang]
    return (f"已过期 {-days_left} 天", f"{-days_left} day(s) overdue")[lang]


def _who(line: DigestLine) -> str:
    return f"{line.external_id} {line.name}" if line.name else line.external_id


def _workday(day: date, lang: int) -> str:
    """" (last working day …)" when the centre closes before `day` (a weekend or holiday)."""
    last = last_working_day_on_or_before(day)
    if last == day:
        return ""
    return (f"（最后工作日 {last}）", f" (last working day {last})")[lang]


def _by(deadline: date, today: date, lang: int) -> str | None:
    """The deadline as the digest names it, with its last working day; None once that day has
    passed (a deadline already past is never advised)."""
    last = last_working_day_on_or_before(deadline)
    if last < today:
        return None
    return deadline.isoformat() + _workday(deadline, lang)


def _action(line: DigestLine, lang: int, today: date) -> str:
    by = _by(line.deadline, today, lang) if line.deadline else None
    if line.stage == "renew_in_person":
        when = _by(line.expires_on, today, lang)
        if when is None:  # no working day left before expiry: the grace period is what still helps
            return ("到期前已无工作日：请在节假日后尽快本人到社区事务受理服务中心补办签注"
                    "（逾期60天内累计年限继续计算）。",
                    "No working day is left before expiry: renew in person as soon as the centre reopens (within "
                    "60 days late the accumulated years keep counting).")[lang]
        return (f"请于 {when} 前本人到社区事务受理服务中心办理签注。",
                f"Must renew in person at the community affairs service centre by {when}.")[lang]
    if line.stage == "expired_grace":
        if by is None:
            return ("宽限期内已无工作日：现在补办签注，居住证可恢复，但累计年限将清零。",
                    "No working day is left in the grace period: endorsing now restores the permit, but the "
                    "accumulated years restart from zero.")[lang]
        return (f"请在 {by} 前办理签注：居住证恢复，累计年限继续计算。",
                (f"Endorse by {by}: the permit is restored and the accumulated years keep counting."))[lang]
    if line.stage == "accumulation_reset":
        if by is None:
            return ("已无工作日可补办签注：居住证即将失效，需重新申办。",
                    "No working day is left to endorse: the permit lapses and must be applied for anew.")[lang]
        return (f"累计年限已清零；仍可在 {by} 前办理签注，否则需重新申办居住证。",
                (f"The accumulated years are already lost; endorse by {by}, or a new permit must be "
                 "applied for."))[lang]
    if line.stage == "lapsed":
        return ("已无法签注，需重新申领居住证；据报道须等待至少半年才能再次申请。",
                ("Can no longer be endorsed: a new permit must be applied for, reportedly after a wait of "
                 "at least half a year."))[lang]
    return ""


def _holder_line(line: DigestLine, lang: int, today: date) -> str:
    expiry = (f"有效期至 {line.expires_on}", f"expires {line.expires_on}")[lang]
    sep = ("：", ": ")[lang]
    comma = ("，", ", ")[lang]
    action = _action(line, lang, today)
    return f"- {_who(line)}{sep}{expiry}{comma}{_days(line.days_left, lang)}{('。', '. ')[lang]}{action}"


def _touch(day: int, lang: int) -> str:
    if day < 0:
        return (f"到期前{-day}天", f"{-day} days before expiry")[lang]
    if day == 0:
        return ("到期当天", "on the expiry date")[lang]
    return (f"到期后{day}天", f"{day} days after expiry")[lang]


def _failure_line(f: DigestFailure, lang: int) -> str:
    stage = label(STAGE_LABELS, f.stage, lang)
    channel = label(CHANNEL_LABELS, f.channel, lang)
    what = (f"{stage}提醒（{_touch(f.touch_day, lang)}，{channel}）发送失败",
            f"{stage} reminder ({_touch(f.touch_day, lang)}, {channel}) failed")[lang]
    reason = f" — {reason_label(f.reason, lang)}" if f.reason else ""
    return f"- {f.external_id}: {what}{reason}"


def _event_line(item: HrNoticeItem, lang: int) -> str:
    label = _KINDS.get(item.kind, (item.kind, item.kind))[lang]
    when = item.created_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return f"- {when}  {label}: {item.detail}"


def _points_line(line: PointsDigestLine, lang: int, today: date) -> str:
    who = f"{line.external_id} {line.name}" if line.name else line.external_id
    head = (f"- {who}：积分有效期至 {line.points_valid_until}",
            f"- {who}: points valid until {line.points_valid_until}")[lang]
    locale = ("zh-CN", "en")[lang]
    return "\n".join([head, *(f"  · {finding_text(f.code, locale, f.detail, today)}" for f in line.findings)])


def _points_materials(lang: int) -> str:
    *items, renamed = points_materials(("zh-CN", "en")[lang])
    head = ("  单位需准备：", "  HR prepares: ")[lang]
    return head + ("；" if lang == ZH else "; ").join(items) + ("。" if lang == ZH else ". ") + renamed


def _sections(content: DigestContent, lang: int) -> list[str]:
    """Only the sections with something in them, each a heading and its lines."""
    out: list[str] = []

    def add(heading: tuple[str, str], lines: list[str], footer: tuple[str, ...] = ()) -> None:
        if lines:
            out.append("\n".join([f"■ {heading[lang]}", *lines, *footer]))

    add((f"需本人前往办理签注（{len(content.entering_in_person)} 人）",
         f"Now need to renew in person ({len(content.entering_in_person)})"),
        [_holder_line(line, lang, content.day) for line in content.entering_in_person], (_MATERIALS[lang],))
    add((f"已过期，仍可补办（{len(content.overdue)} 人）", f"Overdue but still fixable ({len(content.overdue)})"),
        [_holder_line(line, lang, content.day) for line in content.overdue], (_WHY[lang],))
    add((f"新近失效：未在期限内签注（{len(content.newly_lapsed)} 人）",
         f"Newly lapsed: not endorsed in time ({len(content.newly_lapsed)})"),
        [_holder_line(line, lang, content.day) for line in content.newly_lapsed])
    # What HR prepares for the renewal, once, under the last points section there is.
    prepare = (_points_materials(lang),)
    add((f"积分续签风险（{len(content.points)} 人）", f"Points renewal at risk ({len(content.points)})"),
        [_points_line(line, lang, content.day) for line in content.points],
        () if content.points_coming_up else prepare)
    add((f"积分续签临近，未发现风险（{len(content.points_coming_up)} 人）",
         f"Points renewals coming up, no risk found ({len(content.points_coming_up)})"),
        [_points_line(line, lang, content.day) for line in content.points_coming_up], prepare)
    add((f"提醒发送失败（{len(content.failed)} 条）", f"Reminders that could not be delivered ({len(content.failed)})"),
        [_failure_line(f, lang) for f in content.failed])
    add((f"员工回复及其他事项（{len(content.events)} 条）", f"Replies and other events ({len(content.events)})"),
        [_event_line(e, lang) for e in content.events])
    return out


def render_digest(content: DigestContent) -> tuple[str, str]:
    """Subject and plain-text body of one team's digest: zh-CN, then English."""
    n, day, team = content.item_count, content.day.isoformat(), content.team_name
    subject = f"【居住证提醒】{team} {day}：{n} 项需要处理 / {n} item(s) need attention"
    zh = "\n\n".join(_sections(content, ZH))
    en = "\n\n".join(_sections(content, EN))
    body = (
        f"{team} 人事同事您好：\n\n以下是 {day} 需要您关注的居住证签注事项（员工以工号标识）：\n\n{zh}\n\n"
        "如员工已续签，请在系统中确认新的有效期，提醒即会停止。本汇总仅在工作日、有事项时发送，每天最多一封。\n\n"
        f"---\n\nDear HR team of {team},\n\nThese residence-permit matters need your attention on {day} "
        f"(employees are named by their employee ID):\n\n{en}\n\n"
        "When an employee has renewed, confirm the new expiry date and the reminders stop. This digest is sent "
        "on working days when something needs attention, at most once a day.\n"
    )
    return subject, body
