"""Every line of a unit of work names what it works on: the scan's day, the team, the holder,
the notification, bound once at the unit's start instead of passed to each call."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy, SendWindow
from worker.delivery.dispatch import Dispatcher
from worker.ops.logs import configure_logging
from worker.planning.scan import scan
from worker.registry import service
from worker.registry.roster import RosterRow
from worker.registry.service import UnitOfWork
from worker.store.models import Team

from .support import RecordingNotifier

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    yield buf
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _read(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def _row(external_id: str, expires_on: date) -> RosterRow:
    return RosterRow(row=2, external_id=external_id, expires_on=expires_on, phone="+8613800138000",
                     present=frozenset({"external_id", "expires_on", "phone"}))


def test_a_use_case_binds_its_team_and_holder_and_unbinds_them_after(
        factory: sessionmaker[Session], team: Team, policy: Policy, lines: io.StringIO) -> None:
    with UnitOfWork(factory, policy, SHANGHAI) as uow:
        service.save_holder(uow, service.team_of(uow, team.id), _row("E1", date.today()), "test-key")
        uow.commit()
    structlog.get_logger("worker.test").info("after")
    enqueued = [line for line in _read(lines) if line["event"] == "events.enqueued"]
    assert enqueued and all(line["team"] == "acme" for line in enqueued)
    after = _read(lines)[-1]
    assert after["event"] == "after" and "team" not in after and "holder" not in after


def test_every_line_of_a_scan_names_its_day_and_every_delivery_line_its_notification(
        factory: sessionmaker[Session], team: Team, policy: Policy, lines: io.StringIO) -> None:
    with UnitOfWork(factory, policy, SHANGHAI) as uow:
        service.save_holder(uow, service.team_of(uow, team.id), _row("E1", date(2027, 1, 4)), "test-key")
        uow.commit()
    day = date(2026, 12, 5)  # 30 days before the expiry: the "upcoming" touch is due
    report = scan(factory, policy, SHANGHAI, today=day, full=True)  # full: it logs the re-plan
    assert report.enqueued
    scan_lines = [line for line in _read(lines) if line["logger"] == "worker.scan"]
    assert scan_lines and all(line["scan"] == "2026-12-05" for line in scan_lines)

    notifier = RecordingNotifier()
    always = SendWindow(time(0), time(0))  # the whole day: the test may run at any hour
    Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI, send_window=always).run_batch(
        now=datetime.combine(day, time(10), SHANGHAI))
    delivery = [line for line in _read(lines) if line["event"] == "delivery"]
    assert delivery and delivery[0]["notification_id"] and "scan" not in delivery[0]
