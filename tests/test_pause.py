"""Pausing one holder's reminders: nothing goes out while paused (scan, registration, rows already
queued), and afterwards exactly the latest due touch, never the backlog. Real SQLite/PostgreSQL,
the real dispatcher with a recording notifier."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import select

from worker.delivery.dispatch import Dispatcher
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.scan import scan
from worker.registry import records as registry
from worker.registry import service
from worker.registry.records import BadInput
from worker.registry.service import UnitOfWork
from worker.store.db import unit_of_work
from worker.store.models import Holder, Notification

from .support import RecordingNotifier, add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), SHANGHAI)


def uow(factory, policy, now: datetime) -> UnitOfWork:
    return UnitOfWork(factory, policy, SHANGHAI, now=now)


def sent_touches(notifier: RecordingNotifier) -> list[str]:
    return [m.idempotency_key.split(":", 2)[2] for m in notifier.sent]


def day_by_day(factory, policy, dispatcher: Dispatcher, first: date, last: date) -> None:
    """What the daemon does each morning: scan, then send what is due at 10:00."""
    day = first
    while day <= last:
        scan(factory, policy, SHANGHAI, today=day, now=at(day, 8))
        while dispatcher.dispatch_one(at(day)) is not None:
            pass
        day += timedelta(days=1)


def test_a_paused_holder_gets_nothing_then_only_the_latest_touch(factory, team, policy) -> None:
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI)
    add_holder(factory, team, "E1", EXPIRES)
    start = EXPIRES - timedelta(days=35)
    with uow(factory, policy, at(start)) as work:
        service.pause_holder(work, service.team_of(work, team.slug), "E1", EXPIRES - timedelta(days=4), "产假")
        work.commit()
    # The -30, -15, -10 touches all fall inside the pause.
    day_by_day(factory, policy, dispatcher, start, EXPIRES - timedelta(days=4))
    assert notifier.sent == []
    # The pause ends: the next morning the latest due touch (-10; -3 is tomorrow) and nothing older.
    day_by_day(factory, policy, dispatcher, EXPIRES - timedelta(days=3), EXPIRES - timedelta(days=3))
    assert sent_touches(notifier) == ["renew_in_person:-3:sms"]


def test_resuming_early_sends_the_touch_due_today_and_releases_what_was_held(factory, team, policy) -> None:
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI)
    add_holder(factory, team, "E1", EXPIRES)
    touch_day = EXPIRES - timedelta(days=10)
    scan(factory, policy, SHANGHAI, today=touch_day, now=at(touch_day, 8))  # queued before the pause
    with uow(factory, policy, at(touch_day, 9)) as work:
        service.pause_holder(work, service.team_of(work, team.slug), "E1", touch_day + timedelta(days=30), None)
        work.commit()
    assert dispatcher.dispatch_one(at(touch_day)) == "deferred"  # held for the pause's end
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.next_attempt_at)) == at(touch_day + timedelta(days=31), 0)
    assert notifier.sent == []
    with uow(factory, policy, at(touch_day, 11)) as work:
        service.resume_holder(work, service.team_of(work, team.slug), "E1")
        work.handle_events()
        work.commit()
    assert dispatcher.dispatch_one(at(touch_day, 11)) == "sent"
    assert dispatcher.dispatch_one(at(touch_day, 11)) is None  # one reminder, not two
    assert sent_touches(notifier) == ["renew_in_person:-10:sms"]


@freeze_time("2026-12-03 02:00:00")  # 10:00 in Shanghai
@pytest.mark.parametrize(("until", "needle"), [
    (date(2026, 12, 2), "is in the past"),
    (date(2029, 1, 1), "more than two years away"),
])
def test_a_pause_in_the_past_or_years_away_is_refused_and_changes_nothing(factory, team, policy, until: date,
                                                                           needle: str) -> None:
    add_holder(factory, team, "E1", EXPIRES)
    with pytest.raises(BadInput, match=needle), uow(factory, policy, datetime.now(SHANGHAI)) as work:
        service.pause_holder(work, service.team_of(work, team.slug), "E1", until, None)
        work.commit()
    with unit_of_work(factory) as session:
        assert session.scalar(select(Holder.paused_until)) is None


def test_the_api_pauses_and_resumes_and_shows_it(db_url: str, factory, team) -> None:
    # No freezegun here: FastAPI builds response models from the date type it patches.
    until = (datetime.now(SHANGHAI) + timedelta(days=60)).date().isoformat()
    add_holder(factory, team, "E1", EXPIRES)
    with unit_of_work(factory) as session:
        token = registry.issue_token(session, session.merge(team))
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))))
    headers = {"Authorization": f"Bearer {token}"}
    paused = client.post("/v1/holders/E1/pause", headers=headers, json={"until": until, "reason": "借调海外"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["paused_until"], paused.json()["pause_reason"]) == (until, "借调海外")
    assert client.post("/v1/holders/E1/pause", headers=headers, json={"until": "2020-01-01"}).status_code == 422
    assert client.post("/v1/holders/NOPE/pause", headers=headers, json={"until": until}).status_code == 404
    resumed = client.delete("/v1/holders/E1/pause", headers=headers)
    assert resumed.status_code == 200 and resumed.json()["paused_until"] is None
    assert client.delete("/v1/holders/E1/pause", headers=headers).status_code == 422  # not paused
