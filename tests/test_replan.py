"""A policy change re-plans: next_due_on was worked out with the old policy, so the first scan
under a new one takes the full path once, and a new or earlier touch day is not skipped."""

from __future__ import annotations

import copy
import subprocess
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from schedules.policy import Policy, policy_from_mapping, read_packaged_policy
from worker.planning.scan import current_digest, planned_digest, scan
from worker.store.db import unit_of_work
from worker.store.models import Holder

from .support import add_holder
from .test_cli import CMD

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2027, 3, 1)
NOW = datetime.combine(DAY, time(8, 30), SHANGHAI)


def earlier_reminders() -> Policy:
    """The Shanghai policy with the first reminder 35 days before expiry instead of 30."""
    raw = copy.deepcopy(read_packaged_policy("shanghai_residence_permit"))
    for stage in raw["stages"]:
        if stage["name"] == "valid":
            stage["windows"] = [{"days_left": [36, None]}]
        if stage["name"] == "upcoming":
            stage["windows"] = [{"days_left": [16, 35]}]
            stage["touches"] = [-35, -30]
    return policy_from_mapping(raw)


def _next_due(factory, external_id: str) -> date:
    with unit_of_work(factory) as session:
        return session.scalar(select(Holder.next_due_on).where(Holder.external_id == external_id))


def test_a_changed_policy_replans_every_holder_once_and_sends_what_is_now_due(factory, team, policy) -> None:
    add_holder(factory, team, "SOON", DAY + timedelta(days=33))  # -33: due under the new policy's -35
    add_holder(factory, team, "LATER", DAY + timedelta(days=38))  # next touch -35 (in 3 days), not -30 (in 8)
    first = scan(factory, policy, SHANGHAI, now=NOW)
    assert first.replanned == 2  # a registry without a recorded plan is planned once, to be sure
    assert _next_due(factory, "LATER") == DAY + timedelta(days=8)
    assert scan(factory, policy, SHANGHAI, now=NOW).replanned is None  # same policy: the O(due) path

    changed = earlier_reminders()
    report = scan(factory, changed, SHANGHAI, now=NOW + timedelta(hours=1))
    assert report.replanned == 2
    assert [(e.external_id, e.stage, e.touch_day) for e in report.enqueued] == [("SOON", "upcoming", -35)]
    assert _next_due(factory, "LATER") == DAY + timedelta(days=3)
    assert planned_digest(factory) == current_digest(changed)
    again = scan(factory, changed, SHANGHAI, now=NOW + timedelta(hours=2))
    assert again.replanned is None and again.enqueued == []


def test_without_a_change_the_due_scan_alone_would_have_skipped_the_new_touch(factory, team, policy) -> None:
    # The failure the re-plan prevents: next_due_on from the old policy hides the new touch day.
    add_holder(factory, team, "SOON", DAY + timedelta(days=33))
    scan(factory, policy, SHANGHAI, now=NOW)
    changed = earlier_reminders()
    with unit_of_work(factory) as session:  # as if the registry had been planned with the new policy
        from worker.store.models import AppMeta
        session.get(AppMeta, "planned_policy_digest").value = current_digest(changed)  # type: ignore[union-attr]
    assert scan(factory, changed, SHANGHAI, now=NOW).enqueued == []


def test_a_newer_working_day_calendar_replans_too(factory, team, policy, monkeypatch: pytest.MonkeyPatch) -> None:
    add_holder(factory, team, "E1", DAY + timedelta(days=60))
    scan(factory, policy, SHANGHAI, now=NOW)
    monkeypatch.setattr("worker.planning.scan.calendar_version", lambda: "holidays 99.0")
    assert scan(factory, policy, SHANGHAI, now=NOW).replanned == 1


def test_dry_runs_and_future_days_never_replan_or_record_a_plan(factory, team, policy) -> None:
    add_holder(factory, team, "E1", DAY + timedelta(days=60))
    assert scan(factory, policy, SHANGHAI, now=NOW, dry_run=True).replanned is None
    assert scan(factory, policy, SHANGHAI, now=NOW, today=DAY + timedelta(days=5)).replanned is None
    assert planned_digest(factory) is None


def test_a_scan_pinned_to_a_past_day_updates_the_schedule_and_a_future_one_keeps_it(factory, team, policy) -> None:
    add_holder(factory, team, "E1", DAY + timedelta(days=40))
    scan(factory, policy, SHANGHAI, now=NOW, today=DAY - timedelta(days=1))  # yesterday: schedules
    assert _next_due(factory, "E1") == DAY + timedelta(days=10)
    add_holder(factory, team, "E2", DAY + timedelta(days=40))
    scan(factory, policy, SHANGHAI, now=NOW, today=DAY + timedelta(days=1))  # tomorrow: a simulation
    with unit_of_work(factory) as session:
        from worker.store.models import DUE_NOW
        assert session.scalar(select(Holder.next_due_on).where(Holder.external_id == "E2")) == DUE_NOW


@pytest.mark.slow
def test_scan_full_replans_on_demand(tmp_path: Path, db_url: str) -> None:
    import os
    env = {**os.environ, "PERMIT_DATABASE_URL": db_url}

    def cli(*args: str) -> str:
        proc = subprocess.run([*CMD, *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("teams", "create", "acme", "--name", "Acme")
    roster = tmp_path / "r.csv"
    roster.write_text(f"external_id,phone,expires_on\nE1,13800138000,{date.today() + timedelta(days=200)}\n")
    cli("holders", "import", str(roster), "--team", "acme")
    cli("scan")
    assert "re-planned" not in cli("scan")
    assert "re-planned all 1 holders" in cli("scan", "--full")
    # A policy file with other touch days: the next scan re-plans by itself.
    policy_file = tmp_path / "policy.yaml"
    raw = read_packaged_policy("shanghai_residence_permit")
    raw["send_window"]["end"] = "19:00"
    policy_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    env["PERMIT_POLICY_FILE"] = str(policy_file)
    assert "re-planned all 1 holders" in cli("scan")
