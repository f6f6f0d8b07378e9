"""Synthetic, deterministic benchmark data: registries in a steady state, and roster files.

A registry is built as the daemon would have left it after yesterday's scan: every holder's
`next_due_on` is the first touch day after yesterday, and every touch already due has its
outbox row (sent). So today's scan does exactly a normal day's work. Rows go in with Core
executemany (SQLite) or COPY (PostgreSQL), 20,000 at a time, never as ORM objects.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, insert, make_url, text
from sqlalchemy.pool import NullPool

from schedules.policy import Policy, load_policy
from schedules.stages import HolderFacts, evaluate, next_touch_on
from worker.planning.outbox import NEVER
from worker.planning.scan import current_digest
from worker.store.bulk import table_of
from worker.store.db import make_engine, upgrade
from worker.store.models import AppMeta, Holder, Notification, Team

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Expiry dates are spread evenly over these days around the scan day: two years, starting 60 days
# back, so about 8 of the policy's touch offsets fall on any one day (~11,000 touches per 1M).
EXPIRY_FROM, EXPIRY_DAYS = -60, 730
CHUNK = 20_000
TEAM_SLUG = "bench"
# Mobile prefixes phonenumbers accepts as mainland mobiles.
_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "155", "156", "158", "159",
             "176", "177", "180", "181", "185", "186", "187", "188", "189", "199")
_CHANGES = ("address", "employer", "phone", "address,employer")


def scan_day() -> date:
    """Today in Shanghai: the day the benchmark scans (and the real day the import acts on)."""
    return datetime.now(SHANGHAI).date()


def scan_moment(day: date) -> datetime:
    """08:30 in Shanghai on `day`: when the daemon's daily scan runs."""
    return datetime.combine(day, time(8, 30), SHANGHAI)


@dataclass(frozen=True)
class Person:
    """One synthetic holder; the same index always gives the same person."""

    index: int
    expires_on: date
    phone: str | None
    email: str | None
    housing_type: str | None
    rental_registration_ends_on: date | None
    changed: str
    locale: str
    opted_out: bool

    @property
    def external_id(self) -> str:
        return f"B{self.index:08d}"


def people(n: int, day: date, seed: int) -> Iterator[Person]:
    """A realistic mix: 75% phone only, 15% phone and email, 10% email only; 1% opted out of SMS;
    housing own 30%, rental 45%, dormitory 15%, relative 5%, unknown 5%; 5% with a change since
    the last endorsement; a third of rental registrations end before expiry."""
    rng = random.Random(seed)
    for i in range(n):
        expires = day + timedelta(days=EXPIRY_FROM + rng.randrange(EXPIRY_DAYS))
        contact = rng.random()
        phone = f"+86{rng.choice(_PREFIXES)}{rng.randrange(10**8):08d}" if contact < 0.90 else None
        email = f"p{i}@corp{i % 97}.example.com" if contact >= 0.75 else None
        h = rng.random()
        housing = "own" if h < 0.30 else "rental" if h < 0.75 else "dormitory" if h < 0.90 else \
            "relative" if h < 0.95 else None
        rental = None
        if housing == "rental" and rng.random() < 0.7:
            # Whole months around expiry: a third end before it (that blocks auto-renewal).
            rental = expires + timedelta(days=30 * rng.randint(-3, 6))
        changed = rng.choice(_CHANGES) if rng.random() < 0.05 else ""
        yield Person(i, expires, phone, email, housing, rental, changed,
                     "en" if rng.random() < 0.15 else "zh-CN", phone is not None and rng.random() < 0.01)


@dataclass
class BuildReport:
    holders: int
    notifications: int
    due_today: int  # holders whose next_due_on is the scan day
    seconds: float


class _Steady:
    """Yesterday's evaluation of a fact set, memoised (a registry has few distinct ones)."""

    def __init__(self, policy: Policy, yesterday: date) -> None:
        self.policy = policy
        self.yesterday = yesterday
        self._memo: dict[tuple[Any, ...], tuple[date, Any, str | None]] = {}

    def of(self, p: Person) -> tuple[date, Any, str | None]:
        key = (p.expires_on, p.housing_type, p.rental_registration_ends_on, p.changed,
               p.phone is not None and not p.opted_out, p.email is not None)
        known = self._memo.get(key)
        if known is None:
            facts = HolderFacts(expires_on=p.expires_on, housing_type=p.housing_type,
                                rental_registration_ends_on=p.rental_registration_ends_on,
                                changed_since_endorsement=frozenset(f for f in p.changed.split(",") if f),
                                has_phone=key[4], has_email=key[5])
            ev = evaluate(facts, self.yesterday, self.policy)
            known = (next_touch_on(facts, self.yesterday, self.policy) or NEVER, ev.due_touch, ev.channel)
            self._memo[key] = known
        return known


def admin_engine(url: str) -> Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def fresh_database(url: str) -> None:
    """An empty, migrated database at `url` (a SQLite file is deleted first)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        admin = admin_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    upgrade(url)


def copy_database(source_url: str, target_url: str) -> None:
    """A byte-for-byte copy, so two measurements start from the same registry."""
    source, target = make_url(source_url), make_url(target_url)
    if source.get_backend_name() == "sqlite":
        import shutil

        engine = make_engine(source_url)
        with engine.connect() as conn:  # fold the WAL into the main file first
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        for suffix in ("-wal", "-shm"):
            Path(f"{target.database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(str(source.database), str(target.database))
        return
    admin = admin_engine(source_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}" TEMPLATE "{source.database}"'))
    admin.dispose()


def build_registry(url: str, n: int, day: date, seed: int = 42, policy: Policy | None = None) -> BuildReport:
    """A fresh database at `url` holding `n` holders of one team, in yesterday's steady state."""
    started = perf_counter()
    fresh_database(url)
    steady = _Steady(policy or load_policy(None), day - timedelta(days=1))
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    now = datetime.now(UTC)
    with engine.begin() as conn:
        team_id = conn.execute(insert(Team).values(slug=TEAM_SLUG, name="Benchmark Co.", created_at=now)
                               .returning(Team.id)).scalar_one()
    holders: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    counts = {"holders": 0, "notifications": 0, "due_today": 0}

    def flush() -> None:
        with engine.begin() as conn:
            if postgres:
                _copy(conn, table_of(Holder).name, holders)
                _copy(conn, table_of(Notification).name, notes)
            else:
                conn.execute(insert(table_of(Holder)), holders)
                if notes:
                    conn.execute(insert(table_of(Notification)), notes)
        counts["holders"] += len(holders)
        counts["notifications"] += len(notes)
        holders.clear()
        notes.clear()

    # PostgreSQL's COPY takes naive UTC (what UTCDateTime stores); Core executemany the aware one.
    stamp = now.replace(tzinfo=None) if postgres else now
    for p in people(n, day, seed):
        following, touch, channel = steady.of(p)
        holder_id = p.index + 1  # explicit ids, so outbox rows can point at them without a round trip
        holders.append({
            "id": holder_id, "team_id": team_id, "external_id": p.external_id, "name": f"测试{p.index}",
            "phone": p.phone, "email": p.email, "expires_on": p.expires_on, "housing_type": p.housing_type,
            "rental_registration_ends_on": p.rental_registration_ends_on,
            "address_fingerprint": f"{p.index:064x}", "employer": f"Employer {p.index % 500}", "locale": p.locale,
            "timezone": None, "changed_since_endorsement": p.changed, "next_due_on": following,
            "sms_opted_out_at": stamp if p.opted_out else None, "created_at": stamp, "updated_at": stamp,
        })
        counts["due_today"] += following == day
        if touch is not None and channel is not None:  # yesterday's latest touch: enqueued, sent
            sent_at = datetime.combine(touch.on, time(10), SHANGHAI).astimezone(UTC)
            sent = sent_at.replace(tzinfo=None) if postgres else sent_at
            notes.append({"holder_id": holder_id, "cycle_expires_on": p.expires_on, "stage": touch.stage,
                          "touch_day": touch.day, "touch_on": touch.on, "channel": channel, "status": "sent",
                          "attempts": 1, "next_attempt_at": sent, "created_at": sent, "updated_at": sent,
                          "sent_at": sent, "segments": 1 if channel == "sms" else None, "rendered_on": touch.on})
        if len(holders) >= CHUNK:
            flush()
    if holders:
        flush()
    # The registry was planned with this policy, as a daemon's would be: the scan's policy check
    # (worker.planning.scan) finds it current and takes the O(due) path.
    with engine.begin() as conn:
        conn.execute(insert(AppMeta).values(key="planned_policy_digest",
                                            value=current_digest(policy or load_policy(None))))
    with engine.connect() as conn:
        if postgres:
            # Explicit ids bypassed the sequence; later inserts (the import) must not collide.
            conn.execute(text("SELECT setval(pg_get_serial_sequence('holders', 'id'), :n)"), {"n": max(n, 1)})
            conn.commit()
    _analyze(engine)
    engine.dispose()
    return BuildReport(counts["holders"], counts["notifications"], counts["due_today"], perf_counter() - started)


def _copy(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _analyze(engine: Engine) -> None:
    """Fresh statistics, as autovacuum (PostgreSQL) or a periodic ANALYZE would have left them."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def write_roster_csv(path: Path, n: int, day: date, seed: int = 7) -> Path:
    """A roster CSV as HR exports it (English headers, UTF-8): `n` new holders, the same mix."""
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["external_id", "name", "phone", "email", "expires_on", "housing_type",
                      "rental_registration_ends_on", "address", "employer", "locale"])
        for p in people(n, day, seed):
            phone = p.phone[3:] if p.phone else ""  # national format, as HR types it
            out.writerow([f"R{p.index:08d}", f"姓名{p.index}", phone, p.email or "", p.expires_on.isoformat(),
                          p.housing_type or "", p.rental_registration_ends_on or "",
                          f"浦东新区{p.index % 997}路{p.index % 89}号", f"Employer {p.index % 500}", p.locale])
    return path
