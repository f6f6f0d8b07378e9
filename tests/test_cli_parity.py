"""The CLI does what the web does (issue 13): XLSX rosters by content, errors in the file's own
words, export that imports back unchanged, a listing with a header and filters, the roster's date
formats for a renewal, and a first run that says what it did. In-process, on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from worker.cli.main import main
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.registry.records import far_renewal

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()
ZH_HEADER = ["工号", "姓名", "手机", "邮箱", "居住证有效期至", "居住类型"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("worker.cli.main.configure_logging", lambda *_: None)
    return tmp_path


@pytest.fixture
def team(workdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["db", "upgrade"]) == 0
    assert main(["teams", "create", "acme", "--name", "Acme"]) == 0
    capsys.readouterr()
    return "acme"


def roster_csv(path: Path, rows: list[list[str]], header: list[str] = ZH_HEADER) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def day(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


ROWS = [["E1", "张三", "13800138000", "", day(120), "自有"], ["E2", "李四", "13800138001", "ls@acme.example", day(8), "租赁"],
        ["E3", "王五", "13800138002", "", day(-20), "宿舍"]]


def test_db_upgrade_says_whether_it_created_migrated_or_found_the_schema(workdir: Path, capsys) -> None:
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == "database schema created"
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == "database schema is already up to date"


def test_an_xlsx_roster_imports_through_the_cli_whatever_its_name(team: str, workdir: Path, capsys) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [ZH_HEADER, *ROWS]:
        sheet.append(row)
    path = workdir / "花名册.dat"  # the content decides, not the extension
    book.save(path)
    assert main(["holders", "import", str(path), "--team", team]) == 0
    assert "imported 3 holders into acme: 3 new" in capsys.readouterr().out


def test_errors_in_a_chinese_file_name_its_columns_and_reasons_in_chinese(team: str, workdir: Path, capsys) -> None:
    path = roster_csv(workdir / "bad.csv", [["E1", "张三", "12345", "", day(30), "自有"],
                                           ["E2", "李四", "13800138001", "", "2027-02-30", "自有"]])
    assert main(["holders", "import", str(path), "--team", team]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "第 2 行 手机：不是有效的中国大陆手机号"
    assert err[1] == "第 3 行 居住证有效期至：日期不存在"
    assert err[-1] == "permit-worker: error: 共 2 处错误，未导入任何数据"


def test_errors_in_an_english_file_stay_english(team: str, workdir: Path, capsys) -> None:
    path = roster_csv(workdir / "bad.csv", [["E1", "13800138000", "2027-02-30"]], ["external_id", "phone", "expires_on"])
    assert main(["holders", "import", str(path), "--team", team]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "row 2: expires_on: not a real calendar date"


@pytest.mark.parametrize("name", ["export.csv", "export.xlsx"])
def test_an_export_imports_back_all_unchanged(team: str, workdir: Path, capsys, name: str) -> None:
    assert main(["holders", "import", str(roster_csv(workdir / "in.csv", ROWS)), "--team", team]) == 0
    out = workdir / name
    assert main(["holders", "export", "--team", team, "--output", str(out)]) == 0
    capsys.readouterr()
    if name.endswith(".xlsx"):
        sheet = load_workbook(out, read_only=True).worksheets[0]
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
        assert header[:5] == ["工号", "姓名", "手机", "邮箱", "居住证有效期至"] and "阶段" in header
    else:
        assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
    assert main(["holders", "import", str(out), "--team", team]) == 0
    assert "3 holders into acme: 0 new, 0 updated, 3 unchanged" in capsys.readouterr().out


def test_export_without_a_file_writes_csv_on_stdout(workdir: Path, capsysbinary) -> None:
    team = "acme"
    main(["db", "upgrade"])
    main(["teams", "create", team, "--name", "Acme"])
    main(["holders", "import", str(roster_csv(workdir / "in.csv", ROWS)), "--team", team])
    capsysbinary.readouterr()
    assert main(["holders", "export", "--team", team, "--lang", "en"]) == 0
    text = capsysbinary.readouterr().out.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["external_id", "name", "phone"] and {r[0] for r in rows[1:]} == {"E1", "E2", "E3"}


def test_the_listing_has_a_header_names_and_filters(team: str, workdir: Path, capsys) -> None:
    main(["holders", "import", str(roster_csv(workdir / "in.csv", ROWS)), "--team", team])
    capsys.readouterr()
    assert main(["holders", "list", "--team", team]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["external_id", "name", "expires_on", "days_left", "stage", "not_eligible_because",
                                "channel"]
    assert [line.split()[0] for line in table[1:-1]] == ["E3", "E2", "E1"]  # soonest expiry first
    assert "张三" in table[-2] and table[-1] == "# 3 holder(s)"
    assert main(["holders", "list", "--team", team, "--stage", "renew_in_person", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [r[0] for r in rows] == ["external_id", "E2"]
    assert main(["holders", "list", "--team", team, "--expires-before", day(30).replace("-", "/"), "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["external_id"] for r in listed] == ["E3", "E2"] and listed[1]["name"] == "李四"


def test_list_refuses_json_with_another_format(team: str, capsys) -> None:
    assert main(["holders", "list", "--team", team, "--json", "--format", "csv"]) == 2


def test_a_renewal_takes_the_rosters_date_formats_and_asks_before_a_far_one(team: str, workdir: Path, capsys) -> None:
    main(["holders", "import", str(roster_csv(workdir / "in.csv", ROWS)), "--team", team])
    capsys.readouterr()
    expiry = TODAY + timedelta(days=8)
    next_year = expiry.replace(year=expiry.year + 1)
    slash = f"{next_year.year}/{next_year.month}/{next_year.day}"
    far = expiry.replace(year=expiry.year + 9)
    assert main(["holders", "confirm-renewal", "E2", "--team", team, "--expires-on", far.isoformat()]) == 2
    assert "more than 13 months after the current expiry" in capsys.readouterr().err
    assert main(["holders", "confirm-renewal", "E2", "--team", team, "--expires-on", slash]) == 0
    assert f"now expires on {next_year.isoformat()}" in capsys.readouterr().out
    farther = next_year.replace(year=next_year.year + 2)
    assert main(["holders", "confirm-renewal", "E2", "--team", team, "--expires-on", str(farther), "--yes"]) == 0


@pytest.mark.parametrize(("current", "new", "far"), [
    (date(2027, 1, 31), date(2028, 2, 29), False),  # 13 months on is the end of February
    (date(2027, 1, 31), date(2028, 3, 1), True),
    (date(2027, 12, 8), date(2029, 1, 8), False),
    (date(2027, 12, 8), date(2029, 1, 9), True),
])
def test_far_means_more_than_thirteen_months_on_both_sides_of_the_boundary(current: date, new: date, far: bool) -> None:
    assert far_renewal(current, new) is far


def test_the_root_goes_to_the_hr_pages_and_docs_are_served_without_scripts(db_url: str) -> None:
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))), follow_redirects=False)
    root = client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/web/"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/v1/holders" in docs.text and "<script" not in docs.text
    assert "default-src 'none'" in docs.headers["content-security-policy"]


def test_pause_and_resume_from_the_cli(team: str, workdir: Path, capsys) -> None:
    main(["holders", "import", str(roster_csv(workdir / "in.csv", ROWS)), "--team", team])
    capsys.readouterr()
    until = (TODAY + timedelta(days=90)).isoformat().replace("-", "/")
    assert main(["holders", "pause", "E2", "--team", team, "--until", until, "--reason", "产假"]) == 0
    assert "nothing is sent to them up to and including" in capsys.readouterr().out
    assert main(["holders", "pause", "E2", "--team", team, "--until", "2001-01-01"]) == 2
    assert "is in the past" in capsys.readouterr().err
    assert main(["holders", "resume", "E2", "--team", team]) == 0
    assert "resumed E2; 0 reminder(s) due now enqueued" in capsys.readouterr().out  # its -10 touch is queued already
    assert main(["holders", "resume", "E2", "--team", team]) == 2
    assert "E2 is not paused" in capsys.readouterr().err


def test_a_full_roster_deletes_only_the_holders_missing_from_it(team: str, workdir: Path, capsys) -> None:
    more = [*ROWS, ["E4", "赵六", "13800138003", "", day(60), "自有"]]
    main(["holders", "import", str(roster_csv(workdir / "all.csv", more)), "--team", team])
    capsys.readouterr()
    current = roster_csv(workdir / "now.csv", [ROWS[0], ROWS[2], more[3]])  # E2 has left
    assert main(["holders", "import", str(current), "--team", team, "--full-roster", "--dry-run"]) == 0
    assert "1 leaver(s) (not in the file) would be deleted: E2" in capsys.readouterr().out
    assert main(["holders", "list", "--team", team, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4  # a dry run deletes nothing
    assert main(["holders", "import", str(current), "--team", team]) == 0  # without the flag: nothing deleted
    assert "leaver" not in capsys.readouterr().out
    assert main(["holders", "import", str(current), "--team", team, "--full-roster"]) == 0
    assert "1 leaver(s) (not in the file) deleted: E2" in capsys.readouterr().out
    assert main(["holders", "list", "--team", team, "--json"]) == 0
    assert sorted(json.loads(line)["external_id"] for line in capsys.readouterr().out.splitlines()) == ["E1", "E3", "E4"]


def test_a_full_roster_that_would_delete_most_of_the_team_asks_first(team: str, workdir: Path, capsys) -> None:
    main(["holders", "import", str(roster_csv(workdir / "all.csv", ROWS)), "--team", team])
    capsys.readouterr()
    one = roster_csv(workdir / "one.csv", [ROWS[0]])
    assert main(["holders", "import", str(one), "--team", team, "--full-roster"]) == 2
    assert "would delete 2 of 3 holders" in capsys.readouterr().err
    assert main(["holders", "list", "--team", team, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # refused whole: nothing changed
    assert main(["holders", "import", str(one), "--team", team, "--full-roster", "--yes"]) == 0


def test_a_test_message_goes_through_the_channel_the_address_names(team: str, capsys) -> None:
    assert main(["teams", "test-message", team, "--to", "13800138000"]) == 0
    out = capsys.readouterr().out
    assert "测试消息" in out and "test sms to" in out and "through console: sent" in out and "13800138000" not in out.splitlines()[-1]
    assert main(["teams", "test-message", team, "--to", "hr@acme.example"]) == 0
    assert "test email to" in capsys.readouterr().out
    assert main(["teams", "test-message", team, "--to", "zhangsan"]) == 2  # WeCom is not configured here
    assert "no wecom backend is configured" in capsys.readouterr().err
    assert main(["teams", "test-message", team, "--to", "not an address!"]) == 2


def test_a_big_import_logs_one_line_of_counts_once_it_is_written(workdir: Path, team: str, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from structlog.testing import capture_logs

    monkeypatch.setattr("worker.registry.roster_import.IMPORT_CHUNK", 50)  # several chunks, as 50,000 rows are
    rows = [[f"B{i:04d}", f"员工{i}", f"1380013{i:04d}", "", day(5 + i % 3), "自有"] for i in range(240)]
    path = roster_csv(workdir / "big.csv", rows)
    with capture_logs() as dry:
        assert main(["holders", "import", str(path), "--team", team, "--dry-run"]) == 0
    assert [e for e in dry if e["event"].startswith("events.enqueued")] == []  # nothing was enqueued
    with capture_logs() as logs:
        assert main(["holders", "import", str(path), "--team", team]) == 0
    enqueued = [e for e in logs if e["event"].startswith("events.enqueued")]
    assert len(enqueued) == 1 and enqueued[0]["event"] == "events.enqueued_many"
    assert enqueued[0]["count"] == sum(enqueued[0]["by_touch"].values()) == 240
    assert "240 reminder(s) due now enqueued" in capsys.readouterr().out


def test_a_small_import_logs_each_touch_for_an_operator_to_follow(workdir: Path, team: str) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        assert main(["holders", "import", str(roster_csv(workdir / "r.csv", ROWS)), "--team", team]) == 0
    each = [e for e in logs if e["event"] == "events.enqueued"]
    assert {e["holder_id"] for e in each} and all("stage" in e and "channel" in e for e in each)
    assert not [e for e in logs if e["event"] == "events.enqueued_many"]


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run the CLI with stderr on a pseudo-terminal, as a person at a shell sees it."""
    import os
    import pty
    import subprocess

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen


@pytest.mark.slow
def test_a_long_import_shows_progress_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cli = [sys.executable, "-m", "worker.cli"]
    env = {**os.environ, "PERMIT_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "PERMIT_LOG_LEVEL": "WARNING"}
    for argv in (["db", "upgrade"], ["teams", "create", "acme", "--name", "Acme"]):
        subprocess.run([*cli, *argv], env=env, check=True, capture_output=True)
    rows = [[f"B{i:05d}", f"员工{i}", f"138{i:08d}", "", day(200 + i % 300), "自有"] for i in range(3000)]
    path = roster_csv(tmp_path / "big.csv", rows)
    code, seen = _on_a_terminal([*cli, "holders", "import", str(path), "--team", "acme"], env)
    assert code == 0
    assert b"checking the roster" in seen and b"writing to the registry" in seen and b"100%" in seen
    piped = subprocess.run([*cli, "holders", "import", str(path), "--team", "acme"], env=env, capture_output=True)
    assert piped.returncode == 0 and b"checking" not in piped.stderr and b"writing" not in piped.stderr


def test_demo_seed_prints_a_sign_in_token_that_opens_the_hr_pages(workdir: Path, capsys) -> None:
    import re

    assert main(["db", "upgrade"]) == 0
    assert main(["demo", "seed"]) == 0
    printed = capsys.readouterr().out
    assert "reminder(s) due today enqueued" in printed and "用团队令牌登录 / Sign in with a team token" in printed
    token = re.search(r"(pwt_[A-Za-z0-9_-]+)", printed)
    assert token
    client = TestClient(create_app(Runtime(Settings())), follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/web/login", data={"csrf": csrf, "token": token.group(1)}).status_code == 303
    assert client.get("/web/").status_code == 200
