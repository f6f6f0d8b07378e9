"""Behaviour of worker.ops.logs: PII never reaches a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from worker.ops.logs import configure_logging, get_logger, mask_pii, mask_text


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # configure_logging mutates process-global state; undo it so other test
    # modules see the logging setup they expect.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {n: logging.getLogger(n).level for n in ("apscheduler", "sqlalchemy.engine")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lvl in named.items():
        logging.getLogger(n).setLevel(lvl)
    structlog.reset_defaults()


def _json_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def _mask(**event: Any) -> dict[str, Any]:
    return mask_pii(None, "info", dict(event))


# --- mask_text: free text -------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("call 13812345678 now", "call 138****5678 now"),
        ("call +8613812345678", "call +86138****5678"),
        ("call 8613812345678", "call 86138****5678"),
        ("call 138-1234-5678", "call 138****5678"),
    ],
)
def test_it_masks_phone_numbers_in_free_text(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


def test_it_masks_email_addresses_in_free_text() -> None:
    assert mask_text("sent to zhang.san@example.com.") == "sent to z***@example.com."


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("id 11010519491231002X ok", "id 110*************2X ok"),
        ("id 11010519491231002x", "id 110*************2x"),
        ("id 110105194912310021", "id 110*************21"),
        ("old id 110105491231002", "old id 110**********02"),
    ],
)
def test_it_masks_id_card_numbers_in_free_text(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


def test_it_does_not_half_mask_an_18_digit_id_as_a_phone() -> None:
    # 13812345678 sits inside this ID; it must be masked as an ID, not a phone.
    out = mask_text("id 110138123456781234")
    assert out == "id 110*************34"
    assert "****5678" not in out


@pytest.mark.parametrize(
    "text",
    [
        "due 2025-03-14T09:30:00+08:00",
        "window 2025-03-14 to 2025-04-13, 09:00-18:00",
        "sent 42 reminders in 1500 ms, job 12345, external_id 987654",
        "epoch ms 1714550400123",
    ],
)
def test_it_leaves_dates_times_and_short_numbers_untouched(text: str) -> None:
    assert mask_text(text) == text


# --- mask_pii: by key and recursively -------------------------------------

def test_it_masks_sensitive_keys_whatever_their_content() -> None:
    out = _mask(
        phone="13812345678", to="zhang.san@example.com", recipient="12345",
        name="张三丰", holder_name="Li", address="上海市浦东新区世纪大道1号",
        id_number="11010519491231002X", id_card="not-a-number", email="bogus",
    )
    assert out == {
        "phone": "138****5678", "to": "z***@example.com", "recipient": "***",
        "name": "张**", "holder_name": "L*", "address": "***",
        "id_number": "110*************2X", "id_card": "***", "email": "***",
    }


def test_it_masks_a_phone_stored_as_an_int_under_a_sensitive_key() -> None:
    assert _mask(phone=13812345678)["phone"] == "138****5678"


def test_it_leaves_operational_keys_readable() -> None:
    event = {"external_id": "A-20250314-77", "team": "ops", "stage": "renewal", "count": 3}
    assert _mask(**event) == event


def test_it_masks_nested_containers_recursively() -> None:
    out = _mask(batch={"people": [{"name": "王五", "n": 1}], "notes": ("mail a.b@c.cn",)})
    assert out == {"batch": {"people": [{"name": "王*", "n": 1}], "notes": ("mail a***@c.cn",)}}


# --- configure_logging: end to end ----------------------------------------

def test_json_output_is_one_masked_object_per_line() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    log = get_logger("worker.test")
    log.info("reminder sent", phone="13812345678", days_left=5)
    log.warning("retrying for %s", "zhang.san@example.com")
    first, second = _json_lines(buf)
    assert first["event"] == "reminder sent"
    assert first["level"] == "info"
    assert first["logger"] == "worker.test"
    assert first["timestamp"].endswith("Z")
    assert first["phone"] == "138****5678" and first["days_left"] == 5
    assert second["event"] == "retrying for z***@example.com"


def test_stdlib_loggers_come_out_as_masked_json() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    logging.getLogger("apscheduler.scheduler").warning("job for 13812345678")
    (line,) = _json_lines(buf)
    assert line["event"] == "job for 138****5678"
    assert line["level"] == "warning"
    assert line["logger"] == "apscheduler.scheduler"
    assert "timestamp" in line


def test_noisy_third_party_loggers_are_capped_unless_debugging() -> None:
    buf = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=buf)
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    assert buf.getvalue() == ""
    configure_logging(level="DEBUG", fmt="json", stream=buf)
    assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() == logging.WARNING


def test_it_writes_to_stderr_and_never_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="auto")  # capsys' stderr is not a TTY -> JSON
    get_logger("worker.test").info("hello", email="zhang.san@example.com")
    logging.getLogger("alembic").warning("migrating")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(x) for x in captured.err.splitlines()]
    assert [x["event"] for x in lines] == ["hello", "migrating"]
    assert lines[0]["email"] == "z***@example.com"


def test_configuring_twice_does_not_duplicate_lines() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    configure_logging(fmt="json", stream=buf)
    get_logger("worker.test").info("once")
    logging.getLogger("apscheduler").warning("once too")
    assert len(_json_lines(buf)) == 2


def test_exception_tracebacks_are_masked() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    try:
        raise ValueError("no such user zhang.san@example.com / 13812345678")
    except ValueError:
        get_logger("worker.test").exception("delivery failed")
        logging.getLogger("apscheduler.executors").exception("job crashed")
    for line in _json_lines(buf):
        assert "Traceback" in line["exception"]
        assert "z***@example.com / 138****5678" in line["exception"]
    assert "zhang.san" not in buf.getvalue() and "13812345678" not in buf.getvalue()


def test_console_format_is_plain_text_and_masked() -> None:
    buf = io.StringIO()
    configure_logging(fmt="console", stream=buf)
    get_logger("worker.test").info("reminder sent", name="张三丰")
    out = buf.getvalue()
    assert "reminder sent" in out and "张**" in out and "张三丰" not in out
    assert "\x1b[" not in out  # StringIO is not a TTY -> no colour codes
