"""Reply keywords and how HR events read in the digest (pure domain functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from schedules.digest import DigestContent, HrNoticeItem, render_digest
from schedules.replies import OPT_OUT, RENEWED, classify_reply


@pytest.mark.parametrize("text", ["TD", "td", " T ", "退订", "STOP", "stop", "ＴＤ", "退订。"])
def test_opt_out_words(text: str) -> None:
    assert classify_reply(text) == OPT_OUT


@pytest.mark.parametrize("text", ["1", "１", "已续签", " 已续签 "])
def test_renewed_words(text: str) -> None:
    assert classify_reply(text) == RENEWED


@pytest.mark.parametrize("text", ["", "2", "你好", "TDD", "ok 1", "我想退订一下吗"])
def test_anything_else_is_not_a_command(text: str) -> None:
    assert classify_reply(text) is None


def test_hr_events_are_listed_in_the_digest_in_chinese_and_english() -> None:
    at = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    events = [
        HrNoticeItem("opted_out", "E1: replied 'TD'", at),
        HrNoticeItem("unreachable", "E2: renew_in_person -10 reminder could not be delivered", at),
    ]
    subject, body = render_digest(DigestContent("Acme 上海", date(2026, 12, 1), [], [], [], [], events))
    assert "2 项需要处理" in subject and "2 item(s)" in subject
    assert "2026-12-01 10:30  退订短信" in body  # Shanghai time
    assert "could not be reached" in body and "E2: renew_in_person -10" in body
