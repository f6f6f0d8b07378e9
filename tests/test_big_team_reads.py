"""The HR API's list and summary read a team through SQL (a page and counts), and say exactly what
evaluating each holder one by one says: every stage, eligibility changes, other time zones."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from schedules.stages import STAGES
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import Holder

from .support import add_holder


def test_list_pages_and_summary_agree_with_evaluating_every_holder(db_url: str, factory, team) -> None:
    runtime = Runtime(Settings(database_url=db_url))
    today = datetime.now(runtime.settings.tz).date()
    for i, offset in enumerate(range(-130, 60, 3)):  # every stage, on both sides of each boundary
        expires = today + timedelta(days=offset)
        add_holder(factory, team, f"E{i:03d}", expires, phone=f"+86138001{i:05d}", address=f"上海市示例路{i}号")
        if i % 4 == 0:  # moved since the last endorsement: no auto-renewal (11-15 days left: in person)
            add_holder(factory, team, f"E{i:03d}", expires, phone=f"+86138001{i:05d}", address=f"上海市新路{i}号")
    with unit_of_work(factory) as session:  # and some whose "today" is another day than Shanghai's
        session.execute(update(Holder).where(Holder.external_id.in_([f"E{i:03d}" for i in range(0, 64, 5)]))
                        .values(timezone="America/Los_Angeles"))
    with unit_of_work(factory) as session:
        token = registry.issue_token(session, session.merge(team))
        now = datetime.now(UTC)
        expected = {h.external_id: evaluate_holder(h, holder_today(h, now, runtime.settings.tz), runtime.policy).stage
                    for h in registry.holders_of(session, session.merge(team))}
    client = TestClient(create_app(runtime))
    headers = {"Authorization": f"Bearer {token}"}
    summary = client.get("/v1/summary", headers=headers).json()
    assert summary["by_stage"] == {s: Counter(expected.values()).get(s, 0) for s in STAGES}
    for stage in STAGES:
        listed, offset = [], 0
        while offset is not None:
            page = client.get("/v1/holders", headers=headers, params={"stage": stage, "limit": 7, "offset": offset}).json()
            listed += [item["external_id"] for item in page["items"]]
            offset = page["next_offset"]
        assert sorted(listed) == sorted(e for e, s in expected.items() if s == stage), stage
    everyone = client.get("/v1/holders", headers=headers, params={"limit": 1000}).json()
    assert everyone["total"] == len(expected) and len(everyone["items"]) == len(expected)
    first = client.get("/v1/holders", headers=headers, params={"limit": 1}).json()
    assert first["items"][0]["external_id"] == "E000" and first["next_offset"] == 1
