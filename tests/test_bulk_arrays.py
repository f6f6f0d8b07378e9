"""The array literals the set-based SQL sends PostgreSQL read back as exactly the values given."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select, text

from worker.store.bulk import any_of, pg_array
from worker.store.db import unit_of_work
from worker.store.models import Holder, Team

from .support import add_holder

AWKWARD = ["plain", 'a "quoted" word', "back\\slash", "NULL", "", "逗号,括号{}", None, "trailing\\"]


def test_array_literals_quote_what_needs_quoting() -> None:
    assert pg_array([1, 2, 30]) == "{1,2,30}"
    assert pg_array([]) == "{}"
    assert pg_array([date(2026, 12, 3), None]) == '{"2026-12-03",NULL}'
    assert pg_array(['say "hi"']) == '{"say \\"hi\\""}'


@pytest.fixture
def postgres_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL array literals")


def test_postgresql_reads_every_awkward_text_back_unchanged(factory, postgres_only) -> None:
    with unit_of_work(factory) as session:
        back = session.execute(text("SELECT unnest(CAST(:a AS TEXT[]))"), {"a": pg_array(AWKWARD)}).scalars().all()
        days = session.execute(text("SELECT unnest(CAST(:a AS DATE[]))"),
                               {"a": pg_array([date(2026, 1, 31), date(2027, 2, 1)])}).scalars().all()
        moments = session.execute(text("SELECT unnest(CAST(:a AS TIMESTAMP[]))"),
                                  {"a": pg_array([datetime(2026, 12, 3, 0, 30, 5, 123456)])}).scalars().all()
    assert back == AWKWARD
    assert days == [date(2026, 1, 31), date(2027, 2, 1)]
    assert moments == [datetime(2026, 12, 3, 0, 30, 5, 123456)]


def test_any_of_finds_rows_by_awkward_keys_on_both_backends(factory, team: Team) -> None:
    add_holder(factory, team, 'E"1\\', date(2027, 1, 20))
    add_holder(factory, team, "E2", date(2027, 1, 20))
    with unit_of_work(factory) as session:
        found = session.scalars(select(Holder.external_id)
                                .where(any_of(session, Holder.external_id, ['E"1\\', "nobody"]))).all()
    assert found == ['E"1\\']
