"""A big roster checked in a child process while the import writes it (worker/registry/roster_pipe.py),
through the CLI's own entry point, on both backends."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from worker.cli import roster_files
from worker.cli.main import main
from worker.registry.roster import RosterError, iter_roster_csv
from worker.registry.roster_pipe import validated_in_background
from worker.store.db import unit_of_work
from worker.store.models import Holder, Team

HEADER = "external_id,name,phone,email,expires_on,housing_type\n"


def _roster(path: Path, n: int, *, bad_last: bool = False, header: str = HEADER) -> Path:
    lines = [header] + [f"P{i:05d},员工{i},138{i:08d},,2027-0{1 + i % 9}-15,own\n" for i in range(n)]
    if bad_last:
        lines.append("P99999,坏电话,021-12345678,,2027-02-30,own\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch, factory: sessionmaker[Session], team: Team):
    monkeypatch.setenv("PERMIT_DATABASE_URL", db_url)
    monkeypatch.setenv("PERMIT_FINGERPRINT_KEY", "test-only-key")
    monkeypatch.setenv("PERMIT_LOG_FORMAT", "json")
    monkeypatch.setenv("PERMIT_LOG_LEVEL", "WARNING")
    monkeypatch.setattr(roster_files, "PIPELINE_FROM_BYTES", 0)  # every CSV through the child process
    return main


def _holders(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        return session.scalar(select(func.count()).select_from(Holder)) or 0


def test_a_big_roster_checked_in_a_child_process_imports_every_row(cli, tmp_path: Path, factory, capsys) -> None:
    roster = _roster(tmp_path / "big.csv", 2500)
    assert cli(["holders", "import", str(roster), "--team", "acme"]) == 0
    assert "imported 2500 holders into acme: 2500 new" in capsys.readouterr().out
    assert _holders(factory) == 2500
    assert not multiprocessing.active_children()


def test_a_bad_row_at_the_end_rejects_the_whole_file_and_writes_nothing(cli, tmp_path: Path, factory,
                                                                         capsys) -> None:
    # 2,500 good rows are written (and rolled back) before the child reaches the bad one.
    roster = _roster(tmp_path / "late.csv", 2500, bad_last=True)
    assert cli(["holders", "import", str(roster), "--team", "acme"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("row 2502: phone: ")
    assert lines[1].startswith("row 2502: expires_on: ")
    assert lines[-1] == "permit-worker: error: 2 bad row(s); nothing was imported"
    assert _holders(factory) == 0


def test_a_chinese_file_hears_back_in_chinese_from_the_child_too(cli, tmp_path: Path, factory, capsys) -> None:
    roster = _roster(tmp_path / "zh.csv", 10, bad_last=True, header="工号,姓名,手机,邮箱,居住证有效期至,居住类型\n")
    assert cli(["holders", "import", str(roster), "--team", "acme"]) == 2
    err = capsys.readouterr().err
    assert "第 12 行 手机" in err and "未导入任何数据" in err
    assert _holders(factory) == 0


def test_a_dry_run_of_a_big_file_writes_nothing(cli, tmp_path: Path, factory, capsys) -> None:
    roster = _roster(tmp_path / "dry.csv", 1200)
    assert cli(["holders", "import", str(roster), "--team", "acme", "--dry-run"]) == 0
    assert "would import 1200 holders" in capsys.readouterr().out
    assert _holders(factory) == 0


def test_the_child_yields_the_rows_the_plain_reader_does(tmp_path: Path) -> None:
    roster = _roster(tmp_path / "same.csv", 2100)
    with roster.open("rb") as stream:
        plain = list(iter_roster_csv(stream))
    positions: list[int] = []
    with validated_in_background(roster, positions.append) as rows:
        piped = list(rows)
    assert piped == plain
    assert positions == sorted(positions) and positions[-1] == roster.stat().st_size  # progress, in order


def test_the_child_reports_every_error_as_the_plain_reader_does(tmp_path: Path) -> None:
    roster = _roster(tmp_path / "errors.csv", 5, bad_last=True)
    with roster.open("rb") as stream, pytest.raises(RosterError) as plain:
        list(iter_roster_csv(stream))
    with validated_in_background(roster) as rows, pytest.raises(RosterError) as piped:
        list(rows)
    assert (piped.value.errors, piped.value.total) == (plain.value.errors, plain.value.total)


def test_a_reader_that_stops_early_leaves_no_child_behind(tmp_path: Path) -> None:
    roster = _roster(tmp_path / "stop.csv", 5000)
    with validated_in_background(roster) as rows:
        assert next(rows).external_id == "P00000"
    assert not multiprocessing.active_children()


def test_an_unreadable_file_is_one_file_error(tmp_path: Path) -> None:
    with validated_in_background(tmp_path / "missing.csv") as rows, pytest.raises(RosterError) as error:
        list(rows)
    [only] = error.value.errors
    assert (only.row, only.column) == (0, "file") and "cannot read" in only.reason


def test_a_child_killed_mid_file_is_a_file_error_not_a_hang(tmp_path: Path) -> None:
    roster = _roster(tmp_path / "killed.csv", 20_000)
    with validated_in_background(roster) as rows, pytest.raises(RosterError) as error:
        next(rows)
        [child] = multiprocessing.active_children()
        child.kill()
        child.join()
        list(rows)  # what was already in the pipe, then the end of it
    assert "stopped unexpectedly" in error.value.errors[0].reason
