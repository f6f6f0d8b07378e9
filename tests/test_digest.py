"""The daily HR digest, end to end: a real SQLite file, smtplib and an SMTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from pydantic import ValidationError
from sqlalchemy import select
from structlog.testing import capture_logs

from notifiers.smtp.fake import TRY_AGAIN, FakeSmtp, Received
from notifiers.smtp.transport import SmtpEmailNotifier
from schedules.workdays import has_official_data, is_working_day
from worker.delivery.digest import send_digests
from worker.delivery.dispatch import Dispatcher
from worker.delivery.hr_events import claim_hr_events, record_hr_event
from worker.ops.daemon import DIGEST_JOB, Daemon
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import DigestRun, Holder, HrEvent, Notification

from .support import RecordingNotifier, add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 1)  # a Tuesday
SATURDAY = date(2026, 12, 5)
NATIONAL_DAY = date(2026, 10, 1)  # a Thursday
WORKING_SUNDAY = date(2026, 1, 4)  # 调休 for New Year's Day 2026
WORKING_SATURDAY = date(2026, 2, 14)  # 调休 for the Spring Festival 2026


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


@pytest.fixture
def email(smtp: FakeSmtp) -> SmtpEmailNotifier:
    return SmtpEmailNotifier(host="127.0.0.1", port=smtp.port, tls="none", from_address="reminders@acme.example")


@pytest.fixture
def digest(factory, email, policy):
    def run(now: datetime) -> int:
        return send_digests(factory, email, policy, SHANGHAI, now=now)
    return run


def text(mail: Received) -> str:
    return mail.message.get_body(("plain",)).get_content()


def add_event(factory, team, kind: str = "opted_out", detail: str = "E4: replied 'TD'") -> None:
    with unit_of_work(factory) as session:
        record_hr_event(session, team.id, None, kind, detail)


def add_failed(factory, team, holder_id: int, updated_at: datetime, reason: str) -> None:
    with unit_of_work(factory) as session:
        session.add(Notification(
            holder_id=holder_id, cycle_expires_on=DAY + timedelta(days=25), stage="upcoming", touch_day=-30,
            touch_on=DAY - timedelta(days=5), channel="sms", status="failed", status_reason=reason,
            attempts=1, next_attempt_at=updated_at, updated_at=updated_at,
        ))


def digest_runs(factory) -> list[tuple[date, str]]:
    with unit_of_work(factory) as session:
        return [(r.digest_date, r.status) for r in session.scalars(select(DigestRun).order_by(DigestRun.id))]


def test_the_digest_lists_what_needs_attention_in_chinese_then_english(factory, team, smtp, digest) -> None:
    add_holder(factory, team, "E1", DAY + timedelta(days=10), name="张三")  # renew_in_person from today
    add_holder(factory, team, "E2", DAY - timedelta(days=20), name="李四")  # expired_grace
    add_holder(factory, team, "E6", DAY - timedelta(days=70), name="赵六")  # accumulation_reset
    add_holder(factory, team, "E5", DAY - timedelta(days=91), name="钱五")  # lapsed since today
    add_holder(factory, team, "OLD", DAY - timedelta(days=200))  # lapsed long ago: not news
    add_holder(factory, team, "FINE", DAY + timedelta(days=200))
    e3 = add_holder(factory, team, "E3", DAY + timedelta(days=25), phone="+8613800138003")
    add_failed(factory, team, e3, at(DAY, 8), "permanent: The 'To' number +8613800138003 is not valid")
    add_event(factory, team)

    assert digest(at(DAY, 10)) == 1
    [mail] = smtp.messages
    assert mail.rcpt_tos == ("hr@acme.example",)
    subject, body = mail.message["Subject"], text(mail)
    assert "Acme 上海" in subject and "6 项需要处理" in subject and "6 item(s)" in subject
    zh, en = body.split("\n---\n")
    assert "人事同事您好" in zh and "Dear HR team" in en
    for part in (zh, en):
        assert "E1 张三" in part and "2026-12-11" in part
        assert "E2 李四" in part and "2027-01-10" in part  # last day of grace: expiry + 60
        assert "E6 赵六" in part and "2026-12-21" in part  # last day before lapse: expiry + 90
        assert "E5 钱五" in part and "E3" in part and "E4: replied 'TD'" in part
        assert "OLD" not in part and "FINE" not in part
    assert "还剩 10 天" in zh and "社区事务受理服务中心" in zh and "租赁备案证明" in zh
    # 61-90 days late the years are already lost: the digest says so, as every other surface does.
    assert "已过期 20 天" in zh and "累计年限已清零" in zh and "累计年限将清零" not in zh and "需重新申领" in zh
    assert "10 day(s) left" in en and "renew in person" in en and "20 day(s) overdue" in en
    assert "already lost" in en and "退订短信" in zh and "opted out of SMS" in en
    assert "13800138003" not in body  # the provider's error quoted the number
    assert digest_runs(factory) == [(DAY, "sent")]
    with unit_of_work(factory) as session:
        assert all(e.reported_at is not None for e in session.scalars(select(HrEvent)))


def test_nothing_goes_out_before_the_digest_time(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    assert digest(at(DAY, 9, 29)) == 0
    assert smtp.messages == [] and digest_runs(factory) == []
    assert digest(at(DAY, 9, 30)) == 1


def test_the_clock_defaults_to_now(factory, team, smtp, email, policy) -> None:
    add_event(factory, team)
    with freeze_time(at(DAY, 9, 0)):
        assert send_digests(factory, email, policy, SHANGHAI) == 0
    with freeze_time(at(DAY, 9, 45)):
        assert send_digests(factory, email, policy, SHANGHAI) == 1
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("day", [SATURDAY, SATURDAY + timedelta(days=1), NATIONAL_DAY, date(2026, 10, 7)],
                         ids=["saturday", "sunday", "national-day", "national-day-substitute"])
def test_nothing_goes_out_on_a_day_off(factory, team, smtp, digest, day: date) -> None:
    add_holder(factory, team, "E2", day - timedelta(days=20))
    add_event(factory, team)
    assert digest(at(day, 11)) == 0
    assert smtp.messages == [] and digest_runs(factory) == []


@pytest.mark.parametrize("day", [WORKING_SUNDAY, WORKING_SATURDAY], ids=["sunday-2026-01-04", "saturday-2026-02-14"])
def test_an_adjusted_working_weekend_day_gets_its_digest(factory, team, smtp, digest, day: date) -> None:
    add_holder(factory, team, "E2", day - timedelta(days=20))
    assert digest(at(day, 10)) == 1
    assert "E2" in text(smtp.messages[0])


def test_never_two_digests_in_a_day(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    assert digest(at(DAY, 10)) == 1
    add_event(factory, team, "reply", "E7: 请问在哪里办")
    assert digest(at(DAY, 10, 30)) == 0
    assert digest(at(DAY, 17)) == 0
    assert len(smtp.messages) == 1
    assert digest(at(DAY + timedelta(days=1), 10)) == 1  # the later event waits for the next day
    assert "E7" in text(smtp.messages[1])


def test_a_quiet_day_sends_nothing_until_something_comes_up(factory, team, smtp, digest) -> None:
    add_holder(factory, team, "FINE", DAY + timedelta(days=200))
    assert digest(at(DAY, 10)) == 0
    assert digest_runs(factory) == []  # nothing recorded, so the day is still open
    add_event(factory, team, "renewal_reported", "E8: expiry 2026-12-20 -> 2027-12-20 (holder's word)")
    assert digest(at(DAY, 14)) == 1
    assert "E8" in text(smtp.messages[0])


def test_a_team_without_an_hr_address_is_skipped(factory, team, smtp, digest) -> None:
    with unit_of_work(factory) as session:
        beta = registry.create_team(session, "beta", "Beta", None)
    add_holder(factory, beta, "B1", DAY - timedelta(days=20))
    add_event(factory, beta)
    add_event(factory, team)
    assert digest(at(DAY, 10)) == 1
    assert [m.rcpt_tos for m in smtp.messages] == [("hr@acme.example",)]
    assert "B1" not in text(smtp.messages[0])


def test_a_failed_send_is_retried_by_a_later_run_the_same_day(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    smtp.handler.reject("hr@acme.example", TRY_AGAIN)
    assert digest(at(DAY, 10)) == 0
    assert digest_runs(factory) == []  # the day's row is gone again
    with unit_of_work(factory) as session:
        [event] = session.scalars(select(HrEvent))
        assert event.reported_at is None and event.claimed_until is None  # released at once
    smtp.handler.reject("hr@acme.example", "")  # accept again
    assert digest(at(DAY, 10, 30)) == 1
    assert "E4" in text(smtp.messages[0])
    assert digest_runs(factory) == [(DAY, "sent")]


def test_a_digest_another_process_is_sending_is_not_sent_again(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    with unit_of_work(factory) as session:
        session.add(DigestRun(team_id=team.id, digest_date=DAY, status="sending"))
    assert digest(at(DAY, 10)) == 0
    assert smtp.messages == []


def test_events_claimed_by_another_process_are_not_reported_twice(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    with unit_of_work(factory) as session:
        assert len(claim_hr_events(session, team.id, at(DAY, 9, 59))) == 1  # the other replica's lease
    assert digest(at(DAY, 10)) == 0
    assert digest(at(DAY, 10, 30)) == 1  # the lease ran out without a report: ours to send


def test_entering_in_person_is_counted_from_the_last_digest(factory, team, smtp, digest) -> None:
    friday, monday = date(2026, 12, 4), date(2026, 12, 7)
    add_holder(factory, team, "EMP-A", friday + timedelta(days=10))  # enters on Friday
    add_holder(factory, team, "EMP-B", friday + timedelta(days=11))  # enters on Saturday
    assert digest(at(friday, 10)) == 1
    assert "EMP-A" in text(smtp.messages[0]) and "EMP-B" not in text(smtp.messages[0])
    assert digest(at(monday, 10)) == 1  # Saturday's entrant, not repeated Friday's
    assert "EMP-B" in text(smtp.messages[1]) and "EMP-A" not in text(smtp.messages[1])
    assert digest(at(monday + timedelta(days=1), 10)) == 0  # both already told


def test_failures_are_counted_from_the_last_digest(factory, team, smtp, digest) -> None:
    e3 = add_holder(factory, team, "E3", DAY + timedelta(days=25))
    add_failed(factory, team, e3, at(DAY, 8), "permanent: invalid")
    assert digest(at(DAY, 10)) == 1
    assert digest(at(DAY + timedelta(days=1), 10)) == 0  # the same failure is not news


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 9, 30), True),
    (NATIONAL_DAY, False),
    (date(2026, 10, 5), False),  # Monday: the observed day for the Saturday holiday
    (date(2026, 10, 7), False),  # Wednesday off, worked on Sunday 20 September
    (date(2026, 10, 8), True),
    (date(2026, 10, 10), True),  # Saturday 调休
    (date(2026, 10, 11), False),
    (date(2026, 1, 1), False),
    (date(2026, 1, 2), False),  # Friday off, worked on Sunday 4 January
    (WORKING_SUNDAY, True),
    (WORKING_SATURDAY, True),
    (date(2026, 2, 21), False),  # an ordinary Saturday after the Spring Festival
    (SATURDAY, False),
    (date(2026, 12, 7), True),
])
def test_working_days_follow_the_official_2026_calendar(day: date, working: bool) -> None:
    assert has_official_data(2026)
    assert is_working_day(day) is working


def test_a_year_without_an_official_arrangement_keeps_only_the_statutory_holidays() -> None:
    assert not has_official_data(2099)
    assert is_working_day(date(2099, 10, 1)) is False  # National Day is fixed by law
    assert is_working_day(date(2099, 10, 5)) is True  # no guessed substitute days off
    assert is_working_day(date(2099, 10, 3)) is False  # a Saturday


def test_beyond_the_packages_range_it_is_plain_monday_to_friday() -> None:
    assert not has_official_data(2150)
    assert is_working_day(date(2150, 1, 1)) is True  # a Thursday; the package knows nothing then
    assert is_working_day(date(2150, 1, 3)) is False  # a Saturday


def test_one_log_line_per_team_names_no_person(factory, team, smtp, digest) -> None:
    add_holder(factory, team, "E2", DAY - timedelta(days=20), name="李四")
    with capture_logs() as logs:
        assert digest(at(DAY, 10)) == 1
    [line] = [entry for entry in logs if entry["event"] == "digest"]
    assert line["team_id"] == team.id and line["outcome"] == "sent" and line["overdue"] == 1
    assert "李四" not in str(logs) and "hr@acme.example" not in str(logs) and "E2" not in str(logs)


def test_events_are_marked_reported_at_the_digest_moment(factory, team, smtp, digest) -> None:
    add_event(factory, team)
    digest(at(DAY, 10))
    with unit_of_work(factory) as session:
        reported = session.scalar(select(HrEvent.reported_at))
    assert reported == at(DAY, 10).astimezone(UTC)


def test_the_daemon_checks_every_half_hour_from_the_configured_digest_time(db_url: str, team) -> None:
    runtime = Runtime(Settings(database_url=db_url, digest_time="10:15"))
    email = RecordingNotifier()
    daemon = Daemon(runtime, dispatcher=Dispatcher(runtime.factory, {"email": email}, runtime.policy, SHANGHAI))
    daemon.schedule()
    daemon.scheduler.start(paused=True)
    try:
        job = daemon.scheduler.get_job(DIGEST_JOB)
        assert DIGEST_JOB == "hr-digest" and job.coalesce and job.max_instances == 1
        assert job.trigger.interval == timedelta(minutes=30) and job.misfire_grace_time > 0
    finally:
        daemon.scheduler.shutdown(wait=False)
    add_event(runtime.factory, team)
    daemon.digest_job(at(DAY, 10))
    assert email.sent == []
    daemon.digest_job(at(DAY, 10, 15))
    [message] = email.sent
    assert message.to == "hr@acme.example" and message.idempotency_key == f"digest-{team.id}-2026-12-01"
    runtime.engine.dispose()


def test_the_digest_time_must_be_a_clock_time() -> None:
    with pytest.raises(ValidationError):
        Settings(digest_time="9.30")


def test_a_points_renewal_coming_up_reaches_hr_with_what_to_prepare_once(factory, team, smtp, digest) -> None:
    # Points valid until 60 days from today, no risk known: the first touch day is today.
    calm = add_holder(factory, team, "P1", DAY + timedelta(days=300), name="孙七")
    later = add_holder(factory, team, "P2", DAY + timedelta(days=300), name="周八")
    with unit_of_work(factory) as session:
        for holder_id, days in ((calm, 60), (later, 61)):  # P2's touch day is tomorrow
            holder = session.get(Holder, holder_id)
            assert holder is not None
            holder.points_basis, holder.points_valid_until = "education", DAY + timedelta(days=days)
    assert digest(at(DAY, 10)) == 1
    zh, en = text(smtp.messages[0]).split("\n---\n")
    assert "积分续签临近，未发现风险（1 人）" in zh and "P1 孙七" in zh and "P2" not in zh
    assert "申报单位介绍信" in zh and "加盖单位公章" in zh and "letter of introduction" in en
    assert digest(at(DAY + timedelta(days=1), 10)) == 1  # P2's day: P1 is not repeated
    zh2 = text(smtp.messages[1]).split("\n---\n")[0]
    assert "P2 周八" in zh2 and "P1" not in zh2
