"""The daytime send window, at its edges, in the holder's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from schedules.policy import PolicyError, SendWindow, parse_send_window
from schedules.window import in_send_window, next_window_opening

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW = SendWindow(time(9), time(20))


def sh(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [(sh(8, 59, 59), False), (sh(9), True), (sh(19, 59, 59), True), (sh(20), False), (sh(3), False)],
)
def test_the_window_includes_its_start_and_excludes_its_end(moment: datetime, inside: bool) -> None:
    assert in_send_window(moment, WINDOW, SHANGHAI) is inside


def test_utc_moments_are_judged_in_the_holders_zone() -> None:
    # 01:00 UTC is 09:00 in Shanghai; 00:59 UTC is 08:59.
    assert in_send_window(datetime(2026, 12, 1, 1, 0, tzinfo=UTC), WINDOW, SHANGHAI)
    assert not in_send_window(datetime(2026, 12, 1, 0, 59, tzinfo=UTC), WINDOW, SHANGHAI)


def test_before_the_window_a_message_waits_for_this_mornings_opening() -> None:
    assert next_window_opening(sh(3), WINDOW, SHANGHAI) == sh(9)


def test_after_the_window_a_message_waits_for_tomorrow_morning() -> None:
    assert next_window_opening(sh(20), WINDOW, SHANGHAI) == sh(9, day=2)


def test_inside_the_window_a_message_goes_now() -> None:
    assert next_window_opening(sh(12, 30), WINDOW, SHANGHAI) == sh(12, 30)


def test_a_whole_day_window_is_always_open() -> None:
    whole = parse_send_window("00:00-24:00")
    assert in_send_window(sh(0), whole, SHANGHAI) and in_send_window(sh(23, 59, 59), whole, SHANGHAI)


@pytest.mark.parametrize("text", ["20:00-09:00", "9-20", "09:00", "25:00-26:00", "09:00-09:00"])
def test_a_malformed_window_setting_is_rejected(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_send_window(text)
