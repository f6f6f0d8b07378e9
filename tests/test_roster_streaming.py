"""Large rosters: streaming validation, the spooled second pass, chunked all-or-nothing writes,
set-based registration events, and the scan's O(due) reads."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from worker.planning.events import Context, handle
from worker.planning.scan import scan
from worker.registry import roster_import
from worker.registry.roster import (
    RosterError,
    RosterRow,
    RowErrors,
    decode_roster,
    iter_roster_csv,
    normalize_phone,
    parse_roster,
    spool_roster,
)
from worker.store.db import unit_of_work
from worker.store.models import DUE_NOW, Holder, Notification, Team

from .support import add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = "external_id,name,phone,email,expires_on,housing_type\n"


def rows_of(data: bytes) -> list[RosterRow]:
    return list(iter_roster_csv(io.BytesIO(data)))


def errors_of(data: bytes) -> list[str]:
    with pytest.raises(RosterError) as info:
        rows_of(data)
    return [str(e) for e in info.value.errors]


# -- pass one: streaming validation ------------------------------------------------------------

def test_the_encoding_is_decided_by_the_whole_file_even_past_the_first_megabyte() -> None:
    ascii_rows = "".join(f"E{i},Name,13812345678,,2027-01-01,own\n" for i in range(40_000))
    data = (HEADER + ascii_rows + "Z1,张三,13912345678,,2027-01-01,own\n").encode("gbk")
    assert len(data) > 1 << 20
    assert decode_roster(data).endswith("张三,13912345678,,2027-01-01,own\n")  # GBK, as a whole
    rows = rows_of(data)
    assert (len(rows), rows[-1].name, rows[-1].row) == (40_001, "张三", 40_002)


def test_a_malformed_record_after_bad_cells_is_the_one_error_reported() -> None:
    huge = "x" * 200_000  # over csv's default field size limit
    data = (HEADER + "E1,A,021-1234,,2027-01-01,own\n" + f'E2,"{huge}",13812345678,,2027-01-01,own\n').encode()
    assert errors_of(data) == ["row 0: file: malformed csv: field larger than field limit (131072)"]


def test_a_malformed_record_wins_over_a_bad_header_too() -> None:
    huge = "x" * 200_000
    data = f'name\n"{huge}"\n'.encode()
    assert errors_of(data) == ["row 0: file: malformed csv: field larger than field limit (131072)"]


def test_every_bad_row_is_reported_even_after_rows_stop_being_yielded() -> None:
    data = (HEADER + "E1,A,13812345678,,2027-01-01,own\n" + "E2,B,bad,,2027-01-01,own\n"
            + "E3,C,13812345679,,2027-02-30,own\n" + "E1,D,13812345670,,2027-01-01,own\n").encode()
    assert errors_of(data) == [
        "row 3: phone: not a mainland China mobile number",
        "row 4: expires_on: not a real calendar date",
        "row 5: external_id: duplicate of row 2",
    ]


def test_a_spooled_roster_streams_back_the_same_rows_as_often_as_asked() -> None:
    data = (HEADER + "".join(f"E{i},名{i},1381234{i:04d},,2027-01-01,own\n" for i in range(2500))).encode()
    with spool_roster(iter_roster_csv(io.BytesIO(data)), chunk_size=1000) as spooled:
        assert spooled.rows == 2500
        assert list(spooled) == parse_roster(data)
        assert sum(1 for _ in spooled) == 2500


def test_a_bad_file_leaves_no_spool_behind() -> None:
    data = (HEADER + "E1,A,13812345678,,2027-01-01,own\nE2,B,bad,,2027-01-01,own\n").encode()
    with pytest.raises(RosterError):
        spool_roster(iter_roster_csv(io.BytesIO(data)))


def _old_predicate(number: phonenumbers.PhoneNumber) -> bool:
    return (phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) == "CN"
            and phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.from_regex(r"\+?(86|0086)?1[0-9]{10}", fullmatch=True),
                 st.from_regex(r"\+?[0-9]{4,15}", fullmatch=True)))
def test_the_one_check_phone_test_accepts_exactly_what_the_three_checks_did(raw: str) -> None:
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return
    try:
        normalize_phone(raw)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == _old_predicate(number)


# -- pass two: chunked writes -------------------------------------------------------------------

def _row(n: int, external_id: str, expires_on: date, **fields: object) -> RosterRow:
    values: dict[str, object] = {"phone": "+8613800138000", "housing_type": "own", "name": "张三"}
    values.update(fields)
    return RosterRow(row=n, external_id=external_id, expires_on=expires_on,
                     present=frozenset({"external_id", "expires_on", *values}), **values)  # type: ignore[arg-type]


def test_chunks_create_update_renew_and_act_on_each_chunk(factory: sessionmaker[Session], team: Team) -> None:
    expires = date(2027, 6, 1)
    add_holder(factory, team, "OLD1", expires)
    add_holder(factory, team, "OLD2", expires)
    rows = [_row(2, "N1", expires), _row(3, "OLD1", expires, name="李四"), _row(4, "N2", expires),
            _row(5, "OLD2", expires + timedelta(days=365)), _row(6, "N3", expires)]
    seen: list[list[str]] = []
    with unit_of_work(factory) as session:
        counts = roster_import.import_roster_chunked(session, session.merge(team), rows, "test-key",
                                                lambda part: seen.append(sorted(type(e).__name__ for e in part.events)),
                                                chunk_size=2)
    assert (counts.created, counts.updated, counts.unchanged, counts.renewed, counts.rows) == (3, 2, 0, 1, 5)
    assert seen == [["HolderRegistered", "HolderUpdated"], ["HolderRegistered", "HolderUpdated", "RenewalConfirmed"],
                    ["HolderRegistered"]]
    with unit_of_work(factory) as session:
        by_id = {h.external_id: h for h in session.scalars(select(Holder))}
    assert by_id["OLD1"].name == "李四" and by_id["OLD2"].expires_on == expires + timedelta(days=365)
    assert all(by_id[k].next_due_on == DUE_NOW for k in ("N1", "N2", "N3", "OLD1", "OLD2"))


def test_a_failure_in_a_later_chunk_writes_nothing_at_all(factory: sessionmaker[Session], team: Team) -> None:
    expires = date(2027, 6, 1)
    add_holder(factory, team, "OLD", expires, phone="+8613800138000")
    rows = [_row(2, "N1", expires), _row(3, "N2", expires), _row(4, "OLD", expires, phone=None)]
    with pytest.raises(RosterError, match="row 4: phone: phone or email is required"), \
            unit_of_work(factory) as session:
        roster_import.import_roster_chunked(session, session.merge(team), rows, "test-key", lambda _: None,
                                       chunk_size=2)
    with unit_of_work(factory) as session:
        assert session.scalars(select(Holder.external_id)).all() == ["OLD"]


def test_registration_enqueues_the_stage_reminder_at_once_and_the_scan_does_not_repeat_it(
    factory: sessionmaker[Session], team: Team, policy: Policy
) -> None:
    today = datetime.now(SHANGHAI).date()
    rows = [_row(2 + i, f"H{i}", today + timedelta(days=days)) for i, days in enumerate((10, 25, 200, -5))]
    with unit_of_work(factory) as session:
        ctx = Context(policy, SHANGHAI, datetime.now(UTC))
        counts = roster_import.import_roster_chunked(session, session.merge(team), rows, "k",
                                                lambda part: handle(session, part.events, ctx), chunk_size=3)
    assert counts.created == 4
    assert sorted((e.external_id, e.stage, e.touch_day) for e in ctx.enqueued) == [
        ("H0", "renew_in_person", -10), ("H1", "upcoming", -30), ("H3", "expired_grace", 1)]
    later = scan(factory, policy, SHANGHAI)  # the next scan looks again (DUE_NOW), finds them enqueued
    assert later.holders_seen == 4 and later.enqueued == []
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 3
        assert DUE_NOW not in set(session.scalars(select(Holder.next_due_on)))


def test_a_newer_touch_supersedes_the_pending_one_and_says_which(factory, team, policy) -> None:
    expires = date(2027, 1, 20)
    add_holder(factory, team, "E1", expires)
    scan(factory, policy, SHANGHAI, today=expires - timedelta(days=30))
    scan(factory, policy, SHANGHAI, today=expires - timedelta(days=12))
    with unit_of_work(factory) as session:
        notes = session.execute(select(Notification.stage, Notification.status, Notification.status_reason)
                                .order_by(Notification.id)).all()
    assert [tuple(n) for n in notes] == [("upcoming", "cancelled", "superseded by auto_renewal_window -15"),
                                         ("auto_renewal_window", "pending", None)]


def test_the_morning_scan_reads_nobody_due_only_tomorrow(factory, team, policy) -> None:
    expires = date(2027, 1, 20)
    add_holder(factory, team, "E1", expires)
    day = expires - timedelta(days=30)
    scan(factory, policy, SHANGHAI, now=datetime.combine(day, time(8, 30), SHANGHAI))
    with unit_of_work(factory) as session:
        session.execute(update(Holder).values(next_due_on=day + timedelta(days=2)))
    morning = datetime.combine(day + timedelta(days=1), time(8, 30), SHANGHAI)
    assert scan(factory, policy, SHANGHAI, now=morning).holders_seen == 0
    # Late at night somewhere on Earth it is already the day after: a holder with a zone of
    # their own may be there, so they are read (and a holder in the default zone still is not).
    with unit_of_work(factory) as session:
        session.execute(update(Holder).values(timezone="Pacific/Kiritimati"))
    late = datetime.combine(day + timedelta(days=1), time(23, 30), SHANGHAI)
    assert scan(factory, policy, SHANGHAI, now=late).holders_seen == 1


# -- the CLI, end to end, across several chunks -------------------------------------------------

ENTRY = Path(sys.executable).with_name("permit-worker")
CMD = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "worker.cli"]


@pytest.mark.slow
def test_the_cli_imports_a_file_of_several_chunks_all_or_nothing(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "PERMIT_DATABASE_URL": db_url, "PERMIT_LOG_FORMAT": "json"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CMD, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              check=False)

    assert run("db", "upgrade").returncode == 0
    assert run("teams", "create", "acme", "--name", "Acme").returncode == 0
    today = datetime.now(SHANGHAI).date()
    body = "".join(f"E{i},名{i},1381234{i:04d},,{today + timedelta(days=i % 400)},own\n" for i in range(4500))
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + body + "E9999,坏,13812345678,,2027-02-30,own\n", encoding="utf-8")
    proc = run("holders", "import", str(bad), "--team", "acme")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[0] == "row 4502: expires_on: not a real calendar date"
    assert run("holders", "list", "--team", "acme", "--json").stdout == ""
    good = tmp_path / "good.csv"
    good.write_text(HEADER + body, encoding="utf-8")
    proc = run("holders", "import", str(good), "--team", "acme")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("imported 4500 holders into acme: 4500 new, 0 updated, 0 unchanged, 0 renewed; ")
    assert len(run("holders", "list", "--team", "acme", "--json").stdout.splitlines()) == 4500


def test_a_row_taken_by_a_concurrent_import_is_updated_not_lost(factory: sessionmaker[Session], team: Team) -> None:
    expires = date(2027, 6, 1)
    add_holder(factory, team, "E1", expires, name="张三")
    with unit_of_work(factory) as session:
        # As if the team had been empty when the import began (no look-up first), and another
        # import then created E1: the insert skips it, and it is updated like any existing holder.
        part = roster_import._import_chunk(session, session.merge(team), [_row(2, "E1", expires, name="李四"),
                                           _row(3, "E2", expires)], b"k", False, RowErrors(), False)
    assert (part.created, part.updated) == (["E2"], ["E1"])
    with unit_of_work(factory) as session:
        assert session.scalar(select(Holder.name).where(Holder.external_id == "E1")) == "李四"


def test_the_bare_mobile_shortcut_parses_exactly_as_phonenumbers_does() -> None:
    # Every 4-digit prefix the shortcut takes, with suffixes at both ends and in between.
    from worker.registry.phones import _BARE_MOBILE_SHAPE

    checked = 0
    for prefix in range(1000, 2000):
        for suffix in ("0000000", "5555555", "9999999", f"{prefix * 7919 % 10_000_000:07d}"):
            text = f"{prefix}{suffix}"
            if not _BARE_MOBILE_SHAPE.fullmatch(text):
                continue
            parsed = phonenumbers.parse(text, "CN")
            assert (parsed.country_code, parsed.national_number) == (86, int(text)), text
            assert not parsed.italian_leading_zero
            checked += 1
    assert checked == 690 * 4  # 130x-169x, 170x-178x, 180x-199x
