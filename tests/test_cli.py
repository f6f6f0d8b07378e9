"""The CLI contract, run as a user runs it: the installed `permit-worker` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import default_policy
from worker.registry import records as registry
from worker.registry import service
from worker.registry.roster import parse_roster
from worker.registry.service import UnitOfWork
from worker.store.db import unit_of_work

# Subprocesses (the installed CLI, daemons): seconds each; `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


ENTRY = Path(sys.executable).with_name("permit-worker")
CMD = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "worker.cli"]

# Dates are relative to the real day in Shanghai: an import acts at once on what is due today,
# so the scenario must look the same whichever day the suite runs. DAY is the scan day.
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
DAY = TODAY + timedelta(days=25)


def _slash(day: date) -> str:
    return f"{day.year}/{day.month}/{day.day}"


GOOD_CSV = (
    "external_id,name,phone,email,expires_on,housing_type,rental_registration_ends_on,address,employer,locale\n"
    f"E001,王芳,13800138001,,{DAY + timedelta(days=30)},own,,浦东新区A路1号,Acme,zh-CN\n"
    f"E002,Emma,,emma@example.com,{_slash(DAY - timedelta(days=16))},rental,2020-06-30,徐汇区B路2号,Acme,en\n"
    f"E003,李强,+86 138 0013 8003,li@example.com,{DAY + timedelta(days=9)},dormitory,,,Acme,\n"
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path, db_url: str) -> Run:
    env = {**os.environ, "PERMIT_DATABASE_URL": db_url, "PERMIT_LOG_FORMAT": "json"}
    env.pop("PERMIT_TIMEZONE", None)

    def _run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*CMD, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        return proc

    return _run


@pytest.fixture
def ready(run: Run, tmp_path: Path, factory: sessionmaker[Session]) -> Path:
    """A team with the good roster imported. The registry is migrated already (a copy of the
    template), and the team and roster are set up in-process through the same use cases as
    `teams create` and `holders import`, so the CLI processes are spent on what each test checks
    (test_the_cli_sets_up_a_team_from_nothing runs those commands themselves)."""
    with unit_of_work(factory) as session:
        registry.create_team(session, "acme", "Acme 上海", "hr@acme.example")
    roster = tmp_path / "roster.csv"
    roster.write_text(GOOD_CSV, encoding="utf-8")
    with UnitOfWork(factory, default_policy(), ZoneInfo("Asia/Shanghai")) as uow:
        service.import_rows(uow, service.team_of(uow, "acme"), parse_roster(GOOD_CSV.encode()), "test-key")
        uow.commit()
    return roster


def test_the_cli_sets_up_a_team_from_nothing(run: Run, tmp_path: Path) -> None:
    assert "up to date" in run("db", "upgrade").stdout
    created = run("teams", "create", "acme", "--name", "Acme 上海", "--hr-email", "hr@acme.example").stdout
    assert "created team acme" in created and "pwt_" in created
    roster = tmp_path / "roster.csv"
    roster.write_text(GOOD_CSV, encoding="utf-8")
    assert "imported 3 holders into acme: 3 new" in run("holders", "import", str(roster), "--team", "acme").stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_default_database_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMIT_")}
    subprocess.run([*CMD, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert (tmp_path / "permit-worker.db").exists()


def test_commands_before_db_upgrade_fail_with_one_line_and_status_1(tmp_path: Path) -> None:
    env = {**os.environ, "PERMIT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    proc = subprocess.run([*CMD, "scan"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "permit-worker: error: the database schema is missing or out of date: run `permit-worker db upgrade`"
    )
    assert "Traceback" not in proc.stderr


def test_import_list_and_json_output(run: Run, ready: Path) -> None:
    listed = json_lines(run("holders", "list", "--team", "acme", "--today", str(DAY), "--json").stdout)
    by_id = {row["external_id"]: row for row in listed}
    assert by_id["E001"] == {**by_id["E001"], "expires_on": str(DAY + timedelta(days=30)), "stage": "upcoming",
                             "days_left": 30}
    assert by_id["E002"]["stage"] == "expired_grace"
    assert by_id["E003"]["stage"] == "renew_in_person"


def test_a_gbk_file_with_chinese_headers_imports(run: Run, ready: Path, tmp_path: Path) -> None:
    gbk = tmp_path / "花名册.csv"
    gbk.write_bytes(
        ("工号,姓名,手机,邮箱,居住证有效期至,居住类型,租赁备案到期日,居住地址,用人单位,语言\n"
         f"C001,张伟,13900139001,,{_slash(TODAY + timedelta(days=60))},租赁,2099/1/1,静安区C路3号,上海某某公司,中文\n"
         ).encode("gbk")
    )
    proc = run("holders", "import", str(gbk), "--team", "acme")
    assert "1 new" in proc.stdout
    listed = json_lines(run("holders", "list", "--team", "acme", "--json").stdout)
    assert {"external_id": "C001", "expires_on": str(TODAY + timedelta(days=60))}.items() <= next(
        r for r in listed if r["external_id"] == "C001"
    ).items()


def test_a_file_with_bad_rows_is_rejected_whole_with_one_line_per_bad_row(run: Run, ready: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "external_id,name,phone,email,expires_on,housing_type\n"
        "N001,好人,13800138009,,2027-03-01,own\n"
        "N002,坏电话,021-12345678,,2027-03-01,own\n"
        "N003,坏日期,13800138010,,2027-02-30,castle\n",
        encoding="utf-8",
    )
    proc = run("holders", "import", str(bad), "--team", "acme", check=2)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("row 3: phone: ")
    assert lines[1].startswith("row 4: expires_on: ")
    assert lines[2].startswith("row 4: housing_type: ")
    assert lines[-1] == "permit-worker: error: 3 bad row(s); nothing was imported"
    listed = json_lines(run("holders", "list", "--team", "acme", "--json").stdout)
    assert "N001" not in {r["external_id"] for r in listed}  # the good row was not written either


def test_import_dry_run_writes_nothing(run: Run, tmp_path: Path) -> None:
    run("db", "upgrade")
    run("teams", "create", "acme", "--name", "Acme")
    roster = tmp_path / "r.csv"
    roster.write_text(GOOD_CSV, encoding="utf-8")
    assert "would import 3 holders" in run("holders", "import", str(roster), "--team", "acme", "--dry-run").stdout
    assert run("holders", "list", "--team", "acme", "--json").stdout == ""


def test_scan_json_lists_each_enqueued_notification_once(run: Run, ready: Path) -> None:
    first = json_lines(run("scan", "--today", str(DAY), "--json").stdout)
    assert {(r["external_id"], r["stage"], r["channel"], r["days_left"]) for r in first} == {
        ("E001", "upcoming", "sms", 30),
        ("E002", "expired_grace", "email", -16),
        ("E003", "renew_in_person", "sms", 9),
    }
    assert all({"team", "external_id", "stage", "channel", "expires_on", "days_left"} <= r.keys() for r in first)
    assert run("scan", "--today", str(DAY), "--json").stdout == ""


def test_scan_dry_run_lists_but_does_not_enqueue(run: Run, ready: Path) -> None:
    assert len(json_lines(run("scan", "--today", str(DAY), "--dry-run", "--json").stdout)) == 3
    assert len(json_lines(run("scan", "--today", str(DAY), "--json").stdout)) == 3


def test_dispatch_once_prints_only_messages_on_stdout(run: Run, ready: Path) -> None:
    run("scan", "--today", str(DAY))
    early = run("dispatch", "--once", "--now", f"{DAY}T08:00:00+08:00")
    assert early.stdout == ""  # quiet hours
    proc = run("dispatch", "--once", "--now", f"{DAY}T09:00:00+08:00")
    messages = json_lines(proc.stdout)
    assert sorted(m["to"] for m in messages) == ["+8613800138001", "+8613800138003", "emma@example.com"]
    assert "13800138001" not in proc.stderr  # logs mask phone numbers
    assert run("dispatch", "--once", "--now", f"{DAY}T10:00:00+08:00").stdout == ""


def test_confirm_renewal_stops_reminders_for_the_old_cycle(run: Run, ready: Path) -> None:
    run("scan", "--today", str(DAY))
    renewed = str(DAY + timedelta(days=400))
    run("holders", "confirm-renewal", "E003", "--team", "acme", "--expires-on", renewed)
    messages = json_lines(run("dispatch", "--once", "--now", f"{DAY}T10:00:00+08:00").stdout)
    assert "+8613800138003" not in {m["to"] for m in messages}
    listed = {r["external_id"]: r for r in json_lines(run("holders", "list", "--team", "acme", "--json").stdout)}
    assert listed["E003"]["expires_on"] == renewed and listed["E003"]["stage"] == "valid"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("scan", "--today", "2026-13-01"), "is not a date"),
        (("holders", "list", "--team", "nobody"), "no team 'nobody'"),
        (("holders", "confirm-renewal", "E404", "--team", "acme", "--expires-on", "2027-01-01"), "no holder 'E404'"),
        (("holders", "confirm-renewal", "E001", "--team", "acme", "--expires-on", "2020-01-01"), "must be after"),
        (("holders", "import", "missing.csv", "--team", "acme"), "cannot read"),
        (("teams", "create", "acme", "--name", "Again"), "already exists"),
        (("teams", "create", "Bad Slug", "--name", "X"), "lowercase"),
        (("dispatch", "--once", "--now", "yesterday"), "ISO date-time"),
        (("nonsense",), "No such command"),
    ],
)

def test_bad_input_is_one_clear_line_and_status_2(run: Run, ready: Path, args: tuple[str, ...], needle: str) -> None:
    proc = run(*args, check=2)
    assert needle in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("permit-worker: error: ")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_bad_setting_fails_with_one_line(run: Run, tmp_path: Path) -> None:
    env = {**os.environ, "PERMIT_TIMEZONE": "Mars/Olympus", "PERMIT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([*CMD, "scan"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "permit-worker: error: PERMIT_TIMEZONE: Value error, unknown time zone 'Mars/Olympus'"


def test_an_unknown_backend_fails_at_start_up(run: Run, ready: Path, db_url: str) -> None:
    env = {**os.environ, "PERMIT_SMS_BACKEND": "carrier-pigeon", "PERMIT_DATABASE_URL": db_url}
    proc = subprocess.run([*CMD, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown notifier 'carrier-pigeon'" in proc.stderr


def test_delete_removes_the_holder_and_their_notifications(run: Run, ready: Path) -> None:
    run("scan", "--today", str(DAY))
    run("holders", "delete", "E001", "--team", "acme")
    listed = {r["external_id"] for r in json_lines(run("holders", "list", "--team", "acme", "--json").stdout)}
    assert listed == {"E002", "E003"}
    messages = json_lines(run("dispatch", "--once", "--now", f"{DAY}T10:00:00+08:00").stdout)
    assert "+8613800138001" not in {m["to"] for m in messages}


def test_a_misconfigured_sms_backend_fails_at_start_up_with_one_line(run: Run, ready: Path, db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    env.update({"PERMIT_SMS_BACKEND": "twilio", "PERMIT_DATABASE_URL": db_url})
    for command in (["run"], ["dispatch", "--once"]):
        proc = subprocess.run([*CMD, *command], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert proc.stderr.strip() == "permit-worker: error: TWILIO_ACCOUNT_SID is not set"


def test_a_misconfigured_email_backend_fails_at_start_up_with_one_line(run: Run, ready: Path, db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMIT_SMTP")}
    env.update({"PERMIT_EMAIL_BACKEND": "smtp", "PERMIT_DATABASE_URL": db_url})
    proc = subprocess.run([*CMD, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "permit-worker: error: PERMIT_SMTP_HOST is not set"


def test_serve_answers_health_checks_and_stops_on_sigterm(run: Run, ready: Path, db_url: str) -> None:
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PERMIT_DATABASE_URL": db_url, "PERMIT_LOG_FORMAT": "json"}
    proc = subprocess.Popen([*CMD, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        body = None
        deadline = time.monotonic() + 20
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        assert body is not None and (body["status"], body["database"]) == ("ok", "ok")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.communicate(timeout=5)
