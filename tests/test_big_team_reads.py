"""The HR API's list and summary, and the web overview, search and export, read a team through SQL
(pages, counts, bounded and streamed reads), and say exactly what evaluating each holder one by
one says: every stage, eligibility changes, other time zones, failed deliveries, opt-outs."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from schedules.stages import STAGES
from worker.http.app import create_app
from worker.http.web import views
from worker.http.web.export import csv_chunks, export_csv
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.planning.team_rows import Evaluator, stream_rows
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import Holder, Notification

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


def _mixed_team(factory, team) -> None:  # type: ignore[no-untyped-def]
    """Holders in every stage, on both sides of each boundary, some in another time zone, some
    with a failed delivery or an SMS opt-out: what the overview and search must read right."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    ids = {}
    for i, offset in enumerate(range(-130, 60, 3)):
        expires = today + timedelta(days=offset)
        email = f"e{i}@example.com" if i % 3 == 0 else None
        ids[i] = add_holder(factory, team, f"E{i:03d}", expires, phone=f"+86138001{i:05d}", email=email,
                            address=f"上海市示例路{i}号", name=f"员工{i}")
        if i % 4 == 0:
            add_holder(factory, team, f"E{i:03d}", expires, phone=f"+86138001{i:05d}", email=email,
                       address=f"上海市新路{i}号", name=f"员工{i}")
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        session.execute(update(Holder).where(Holder.external_id.in_([f"E{i:03d}" for i in range(0, 64, 5)]))
                        .values(timezone="America/Los_Angeles"))
        session.execute(update(Holder).where(Holder.id.in_([ids[i] for i in range(1, 64, 7)]))
                        .values(sms_opted_out_at=now - timedelta(days=40)))
        for n, i in enumerate(range(2, 64, 6)):  # a failed reminder; every other one later got through
            holder = session.get(Holder, ids[i])
            assert holder is not None
            for k, (status, delivery) in enumerate([("failed", None)] + ([("sent", "delivered")] if n % 2 else [])):
                session.add(Notification(holder_id=holder.id, cycle_expires_on=holder.expires_on, stage="upcoming",
                                         touch_day=30 + k, touch_on=holder.expires_on, channel="sms", status=status,
                                         delivery_status=delivery, attempts=1, next_attempt_at=now,
                                         created_at=now + timedelta(seconds=k), updated_at=now))


def _expected_attention(session, team_id: int, runtime: Runtime, now: datetime) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The overview's rule applied to each holder loaded one by one (the reference)."""
    expected = {}
    for h in session.scalars(select(Holder).where(Holder.team_id == team_id)):
        view = views.view_of(h, runtime, now)
        notes = list(session.scalars(select(Notification).where(
            Notification.holder_id == h.id, Notification.cycle_expires_on == h.expires_on,
            Notification.status.in_(("sent", "failed"))).order_by(Notification.created_at, Notification.id)))
        why = []
        if view.stage in ("expired_grace", "accumulation_reset"):
            why.append("overdue")
        elif view.stage == "renew_in_person":
            why.append("renew_in_person")
        if notes and (notes[-1].status == "failed" or notes[-1].delivery_status in ("failed", "undelivered")) \
                and view.stage != "lapsed":
            why.append("failed")
        if h.sms_opted_out_at is not None and view.stage != "lapsed" and (
                not h.email or now - h.sms_opted_out_at <= views.OPT_OUT_NOTICE):
            why.append("opted_out")
        if why:
            expected[h.external_id] = why
    return expected


def test_the_overview_reads_by_sql_and_agrees_with_evaluating_every_holder(db_url: str, factory, team) -> None:
    _mixed_team(factory, team)
    runtime = Runtime(Settings(database_url=db_url))
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        expected = _expected_attention(session, team.id, runtime, now)
        got = views.overview(session, team.id, runtime, now)
        everyone = [views.view_of(h, runtime, now) for h in session.scalars(select(Holder))]
    assert {a.holder.external_id: a.why for a in got.attention} == expected
    assert {"overdue", "renew_in_person", "failed", "opted_out"} <= {w for ws in expected.values() for w in ws}
    assert got.counts == {s: Counter(v.stage for v in everyone).get(s, 0) for s in STAGES}
    assert got.total == len(everyone) and got.attention_total == len(expected)
    deadlines = [a.days_to_deadline for a in got.attention]
    assert deadlines == sorted(deadlines)


def test_the_overview_lists_the_nearest_deadlines_and_says_how_many_more(db_url: str, factory, team,
                                                                        monkeypatch) -> None:
    _mixed_team(factory, team)
    runtime = Runtime(Settings(database_url=db_url))
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        full = views.overview(session, team.id, runtime, now)
        monkeypatch.setattr(views, "ATTENTION_SHOWN", 5)
        capped = views.overview(session, team.id, runtime, now)
    assert full.attention_total > 5
    assert [a.holder.external_id for a in capped.attention] == [a.holder.external_id for a in full.attention[:5]]
    assert capped.attention_total == full.attention_total and capped.this_week == full.this_week


def test_search_pages_by_sql_match_filtering_every_holder(db_url: str, factory, team) -> None:
    _mixed_team(factory, team)
    runtime = Runtime(Settings(database_url=db_url))
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        everyone = sorted((views.view_of(h, runtime, now) for h in session.scalars(select(Holder))),
                          key=lambda v: (v.expires_on, v.external_id))
        for q, stage in (("", None), ("E01", None), ("员工1", "upcoming"), ("", "renew_in_person"),
                         ("138 0010", None), ("", "expired_grace"), ("nobody", None)):
            want = [v.external_id for v in everyone if (stage is None or v.stage == stage) and (
                not q or q in v.external_id or q in (v.name or "") or q.replace(" ", "") in (v.phone or ""))]
            got: list[str] = []
            page = views.search(session, team.id, runtime, now, q, stage, 1)
            while True:
                got += [v.external_id for v in page.items]
                assert page.total == len(want), (q, stage)
                if page.page >= page.pages:
                    break
                page = views.search(session, team.id, runtime, now, q, stage, page.page + 1)
            assert got == want, (q, stage)
        past_the_end = views.search(session, team.id, runtime, now, "", None, 99)
    assert past_the_end.page == past_the_end.pages and past_the_end.items


def test_the_export_streams_in_chunks_that_join_to_the_whole_file(db_url: str, factory, team) -> None:
    _mixed_team(factory, team)
    runtime = Runtime(Settings(database_url=db_url))
    evaluator = Evaluator(runtime.policy, runtime.settings.tz, datetime.now(UTC))
    with unit_of_work(factory) as session:
        chunks = list(csv_chunks(stream_rows(session, team.id), evaluator, "zh-CN", every=10))
        whole = export_csv(session.scalars(select(Holder).order_by(Holder.expires_on, Holder.external_id)),
                           evaluator, "zh-CN")
        n = session.scalar(select(func.count()).select_from(Holder)) or 0
    assert len(chunks) == 1 + -(-n // 10) and chunks[0].startswith("\ufeff".encode())
    assert chunks[0].decode("utf-8-sig").count("\r\n") == 1  # the header leaves first, alone
    assert b"".join(chunks) == whole
    with unit_of_work(factory) as session:
        token = registry.issue_token(session, session.merge(team))
    client = TestClient(create_app(runtime))
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/web/login", data={"token": token, "csrf": csrf}, follow_redirects=False).status_code == 303
    with client.stream("GET", "/web/export.csv") as response:
        assert response.status_code == 200 and "content-length" not in response.headers  # streamed
        body = b"".join(response.iter_bytes())
    assert body == whole
