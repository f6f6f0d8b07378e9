"""PERMIT_WORKDAY_CALENDAR: a year's published holidays and adjusted working days, loaded from a
small file before the `holidays` package ships them, checked on load, winning for that year;
explain and the policy digest say which calendar is in use. 2030 is used because no package
release carries it yet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from schedules.deadlines import deadlines, last_working_day_on_or_before
from schedules.policy import default_policy
from schedules.workdays import (
    CalendarError,
    calendar_source,
    calendar_version,
    has_official_data,
    is_working_day,
    load_calendar,
)

NOTICE = "国务院办公厅关于2030年部分节假日安排的通知（示例）"
GOOD = f"""source: "{NOTICE}"
years:
  2030:
    holidays: [2030-01-01, 2030-10-01, 2030-10-02, 2030-10-03, 2030-10-04, 2030-10-05, 2030-10-06, 2030-10-07]
    working_days: [2030-09-29, 2030-10-12]
"""


@pytest.fixture(autouse=True)
def no_calendar_left_behind() -> Iterator[None]:
    yield
    load_calendar(None)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_loaded_year_wins_over_the_package_and_says_where_it_comes_from(tmp_path: Path) -> None:
    before_version = calendar_version()
    assert not has_official_data(2030) and is_working_day(date(2030, 10, 7))  # Monday, unknown as a holiday
    assert calendar_source(2030).startswith("Monday-Friday")
    load_calendar(write(tmp_path, GOOD))
    assert has_official_data(2030) and calendar_source(2030) == f"PERMIT_WORKDAY_CALENDAR: {NOTICE}"
    assert not is_working_day(date(2030, 10, 7)) and not is_working_day(date(2030, 10, 1))  # days off
    assert is_working_day(date(2030, 9, 29)) and is_working_day(date(2030, 10, 12))  # Sunday, Saturday worked
    assert is_working_day(date(2030, 10, 8)) and not is_working_day(date(2030, 10, 13))  # the rest as usual
    # A permit expiring on the holiday's last day: the last working day before it is 30 September.
    assert last_working_day_on_or_before(date(2030, 10, 7)) == date(2030, 9, 30)
    assert deadlines(date(2030, 10, 7), default_policy()).fallback_years == (2031,)  # 2030 is known now
    assert calendar_version() != before_version  # the policy digest changes: touches are re-planned
    assert calendar_source(2026).startswith("holidays ")  # other years keep the package's data


@pytest.mark.parametrize(("text", "problem"), [
    ("years: {}", "at least one year"),
    ("source: x\nyears:\n  2030:\n    holidays: [2031-01-01]\n", "not in 2030"),
    ("source: x\nyears:\n  2030:\n    holidays: [2030-01-01]\n    working_days: [2030-10-08]\n", "is a weekday"),
    ("source: x\nyears:\n  2030:\n    holidays: [2030-01-01, 2030-09-29]\n    working_days: [2030-09-29]\n",
     "both a holiday and a working day"),
    ("years:\n  2030:\n    holidays: [2030-01-01]\n", "name the notice"),
    ("source: x\nyears:\n  2030:\n    holidays: []\n", "is empty"),
    ("source: x\nyears:\n  2030:\n    holidays: [1 October]\n", "list of dates"),
    ("source: [unclosed\n", "cannot read it"),
])
def test_a_bad_calendar_file_is_refused_in_one_line_and_changes_nothing(tmp_path: Path, text: str,
                                                                        problem: str) -> None:
    with pytest.raises(CalendarError, match=problem) as refused:
        load_calendar(write(tmp_path, text))
    assert "\n" not in str(refused.value) and "PERMIT_WORKDAY_CALENDAR" in str(refused.value)
    assert not has_official_data(2030)


def test_config_check_and_explain_report_the_calendar(tmp_path: Path, db_url: str, factory, team, capsys,
                                                      monkeypatch) -> None:
    from worker.cli.main import main
    from worker.planning.explain import explain, explain_text
    from worker.registry import records as registry
    from worker.store.db import unit_of_work

    from .support import add_holder

    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setenv("PERMIT_WORKDAY_CALENDAR", str(write(tmp_path, "source: x\nyears:\n  2030:\n    holidays: []\n")))
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    assert main(["config", "check"]) == 2
    assert "PERMIT_WORKDAY_CALENDAR" in capsys.readouterr().err
    load_calendar(write(tmp_path, GOOD))
    add_holder(factory, team, "E1", date(2030, 10, 7))
    with unit_of_work(factory) as session:
        data = explain(session, registry.get_holder(session, session.merge(team), "E1"), date(2030, 9, 1),
                       default_policy())
    assert data["deadlines"]["calendars"]["2030"] == f"PERMIT_WORKDAY_CALENDAR: {NOTICE}"
    assert data["deadlines"]["last_day_in_person"] == "2030-09-30"
    assert NOTICE in explain_text(data)
