"""The daytime send window: is a moment inside it, and when does it next open."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from schedules.policy import SendWindow


def _end_of(window: SendWindow, day: datetime) -> datetime:
    if window.end == time(0):  # "24:00": the window runs to midnight
        return datetime.combine(day.date() + timedelta(days=1), time(0), day.tzinfo)
    return datetime.combine(day.date(), window.end, day.tzinfo)


def in_send_window(moment: datetime, window: SendWindow, tz: ZoneInfo) -> bool:
    local = moment.astimezone(tz)
    start = datetime.combine(local.date(), window.start, tz)
    return start <= local < _end_of(window, local)


def next_window_opening(moment: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """The first moment at or after `moment` inside the window (moment itself if inside)."""
    if in_send_window(moment, window, tz):
        return moment
    local = moment.astimezone(tz)
    start_today = datetime.combine(local.date(), window.start, tz)
    if local < start_today:
        return start_today
    return datetime.combine(local.date() + timedelta(days=1), window.start, tz)


def window_closes(moment: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """When the window that `moment` falls in (or the day's window) closes."""
    return _end_of(window, moment.astimezone(tz))
