"""Notifiers are found by name; the console notifier prints one JSON line per message."""

from __future__ import annotations

import io
import json

import pytest

from notifiers import (
    Message,
    Notifier,
    NotifierConfigError,
    SendStatus,
    available_notifiers,
    get_notifier,
)
from notifiers.console.transport import ConsoleNotifier


def test_console_is_registered_by_name() -> None:
    assert "console" in available_notifiers()
    notifier = get_notifier("console")
    assert isinstance(notifier, Notifier) and notifier.name == "console"
    assert notifier.channels == {"sms", "email"}


def test_an_unknown_name_fails_with_the_known_ones_listed() -> None:
    with pytest.raises(NotifierConfigError, match=r"unknown notifier 'fax' \(known: .*console"):
        get_notifier("fax")


def test_console_prints_each_message_as_one_json_line() -> None:
    stream = io.StringIO()
    notifier = ConsoleNotifier(stream=stream)
    first = notifier.send(Message(channel="sms", to="+8613800138000", body="【居住证提醒】测试\n第二行", idempotency_key="k1"))
    notifier.send(Message(channel="email", to="a@example.com", subject="S", body="B", locale="en"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["body"] == "【居住证提醒】测试\n第二行" and record["to"] == "+8613800138000"
    assert first.status is SendStatus.SENT and first.provider_message_id == "console-k1"
    assert json.loads(lines[1])["subject"] == "S"


def test_a_broken_stream_is_a_transient_failure() -> None:
    stream = io.StringIO()
    stream.close()
    result = ConsoleNotifier(stream=stream).send(Message(channel="sms", to="+8613800138000", body="x"))
    assert result.status is SendStatus.TRANSIENT
