"""The holder page's answer to "what must happen, by when": the same facts as `holders explain`
(worker/planning/explain.py, the one place they are worked out), in the page's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from schedules.messages import materials, points_materials
from schedules.stages import ACCUMULATION_RESET, EXPIRED_GRACE, LAPSED, VALID, key_dates
from schedules.texts import templates
from worker.ops.runtime import Runtime
from worker.planning.explain import explain
from worker.store.models import Holder

# Which date matters in each stage, and the last working day that still helps before it.
_DEADLINE = {EXPIRED_GRACE: ("grace_ends_on", "last_day_in_grace"),
             ACCUMULATION_RESET: ("reset_ends_on", "last_day_before_lapse")}


@dataclass(frozen=True)
class Todo:
    stage: str
    deadline: date | None  # None: nothing to do yet (valid) or too late (lapsed)
    deadline_kind: str  # expires_on | grace_ends_on | reset_ends_on
    last_working_day: date | None
    days_left: int | None
    calendar_note: str | None
    materials: list[str]
    findings: list[dict[str, Any]]  # points risks: text in the page's language, the day each bites
    points_materials: list[str]  # what HR prepares for a points renewal that is near; else empty
    planned: list[dict[str, Any]]  # reminders still ahead: day, stage, touch, channel
    channel: str | None


def todo_of(session: Session, holder: Holder, today: date, runtime: Runtime, lang: str) -> Todo:
    data = explain(session, holder, today, runtime.policy)
    stage = data["stage"]
    deadline: date | None = None
    kind, last = _DEADLINE.get(stage, ("expires_on", "last_day_in_person"))
    last_day: date | None = None
    if stage not in (VALID, LAPSED):
        dates = {"expires_on": holder.expires_on, **key_dates(holder.expires_on, runtime.policy)}
        deadline = dates.get(kind, holder.expires_on)
        last_day = date.fromisoformat(data["deadlines"][last])
    findings = [{"text": f["text_en"] if lang == "en" else f["text"], "bites_on": f["bites_on"],
                 "holder_can_act": f["holder_can_act"]} for f in data["points"]["findings"]]
    return Todo(
        stage=stage, deadline=deadline, deadline_kind=kind, last_working_day=last_day,
        days_left=(last_day - today).days if last_day is not None else None,
        calendar_note=None if data["deadlines"]["calendar_official"] else (
            data["deadlines"]["calendar_note"] if lang == "en" else str(templates("zh-CN")["calendar_note"])),
        materials=materials(holder.housing_type, "en" if lang == "en" else "zh-CN"),
        findings=findings,
        points_materials=points_materials(lang) if data["points"]["renewal_near"] else [],
        planned=[{**t, "channel": data["channel"]} for t in data["planned_touches"]],
        channel=data["channel"])
