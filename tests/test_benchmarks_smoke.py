"""The benchmark code still imports and its data builders work (on 100 rows; no timing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from benchmarks import run  # noqa: F401 - the entry point must import
from benchmarks.data import (
    SHANGHAI,
    build_registry,
    scan_day,
    scan_moment,
    write_roster_csv,
)
from schedules.policy import default_policy
from worker.planning.scan import scan
from worker.registry.roster import parse_roster
from worker.store.db import make_engine, session_factory, unit_of_work
from worker.store.models import Holder, Notification


def test_the_registry_builder_makes_a_steady_state_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    day = scan_day()
    built = build_registry(url, 100, day)
    assert built.holders == 100 and built.notifications > 0
    engine = make_engine(url)
    factory = session_factory(engine)
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(Holder)) == 100
        assert session.scalar(select(func.count()).select_from(Notification)) == built.notifications
    # Yesterday's touches are all in the outbox already: today's scan enqueues exactly today's.
    report = scan(factory, default_policy(), SHANGHAI, now=scan_moment(day))
    assert report.holders_seen == built.due_today
    again = scan(factory, default_policy(), SHANGHAI, now=scan_moment(day))
    assert again.holders_seen == 0
    engine.dispose()


def test_the_roster_writer_writes_a_valid_roster(tmp_path: Path) -> None:
    path = write_roster_csv(tmp_path / "r.csv", 100, scan_day())
    assert len(parse_roster(path.read_bytes())) == 100


@pytest.mark.slow
def test_the_hr_reads_step_answers_every_request_on_a_small_team(tmp_path: Path) -> None:
    # In its own process, as benchmarks.run starts it: the step quiets logging process-wide.
    url = f"sqlite:///{tmp_path / 'team.db'}"
    build_registry(url, 300, scan_day())
    done = subprocess.run([sys.executable, "-m", "benchmarks.steps", "team_reads", json.dumps({"url": url, "rounds": 2})],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["holders"] == 300
    assert result["export"]["bytes"] > 300 * 20 and 0 < result["export"]["first_byte"] <= result["export"]["total"]
    assert all(0 < result[k]["p50"] <= result[k]["p95"] for k in ("list", "list_stage", "summary", "overview", "search"))
