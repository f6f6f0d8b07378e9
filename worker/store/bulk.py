"""Set-based SQL for the paths that touch thousands of rows at once (roster import, registration
events, the daily scan), the same on SQLite and PostgreSQL in effect, each backend in the form it
runs fast.

PostgreSQL gets one array parameter per column or list (`unnest`, `= ANY`), never thousands of
placeholders: psycopg re-parses a long statement client-side for every execution, and once it
has prepared a statement PostgreSQL may pick a generic plan that cannot hash a parameter list
(a filter over every row of the table, per chunk). Each array goes as one array literal built
here (`pg_array`): psycopg's own list dumping runs in Python per element, and at a city's scale
(110,000 holders a day, a dozen arrays a batch) it cost more than a second of a scan. SQLite gets
plain IN lists and executemany, which it runs in-process at no round-trip cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Text, any_, bindparam, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session

from worker.store.models import Holder, utcnow


def table_of(model: type[DeclarativeBase]) -> Table:
    """A mapped class's Table (for Core statements that skip the ORM's per-row work)."""
    return cast(Table, model.__table__)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def pg_array(values: Sequence[Any]) -> str:
    """PostgreSQL's text form of a one-dimensional array ('{1,2,NULL}', '{"a","b\\"c"}'): ints
    joined at C speed, everything else quoted (dates and naive timestamps in ISO form)."""
    if all(type(v) is int for v in values):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"


def _quoted(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value if isinstance(value, str) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def any_of(session: Session, column: InstrumentedAttribute[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL as `column = ANY(one array literal)`, whose generic
    plan still uses the column's index (an `IN ($1, ..., $2000)` one filtered every row)."""
    if is_postgresql(session):
        return column == any_(sql_cast(bindparam(None, pg_array(list(values)), type_=Text()),
                                   postgresql.ARRAY(column.type)))
    return column.in_(values)


def insert_many(session: Session, table: Table, values: Sequence[Mapping[str, Any]], conflict: Sequence[str],
                returning: Sequence[str], *, stamped: Sequence[str] = (),
                at: datetime | None = None) -> list[tuple[Any, ...]]:
    """INSERT the rows (all with the same keys) ... ON CONFLICT (conflict) DO NOTHING RETURNING
    the `returning` columns of the rows inserted (in no particular order). Columns in `stamped`
    are set to one moment for every row (`at`, else `utcnow()`). Pass every column whose default is computed
    (a callable): on PostgreSQL only the database's own defaults apply to columns not given."""
    if not values:
        return []
    at = at or utcnow()
    if is_postgresql(session):
        return _insert_unnest(session, table, values, conflict, returning, stamped, at)
    # SQLite: a Core executemany (SQLAlchemy batches it into multi-row VALUES with RETURNING).
    # Core on the table, not the ORM bulk insert, which splits rows into one statement per
    # pattern of NULL columns: thousands of statements a chunk.
    rows = [{**v, **{name: at for name in stamped}} for v in values] if stamped else values
    many = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return [tuple(r) for r in session.execute(many.returning(*(table.c[name] for name in returning)), rows)]


def _insert_unnest(session: Session, table: Table, values: Sequence[Mapping[str, Any]], conflict: Sequence[str],
                   returning: Sequence[str], stamped: Sequence[str], at: datetime) -> list[tuple[Any, ...]]:
    """PostgreSQL: one `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING`.
    Values still go through each column type's bind processing (UTCDateTime: aware -> naive UTC)."""
    dialect = session.get_bind().dialect
    quote = dialect.identifier_preparer.quote
    columns = list(values[0])
    params: dict[str, Any] = {}
    for name in (*columns, *stamped):
        process = table.c[name].type.bind_processor(dialect)
        if name in stamped:
            params[f"s_{name}"] = process(at) if process else at
        else:
            column = [v[name] for v in values]
            params[f"a_{name}"] = pg_array([process(x) for x in column] if process else column)
    arrays = ", ".join(f"%(a_{name})s::{table.c[name].type.compile(dialect=dialect)}[]" for name in columns)
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in (*columns, *stamped))}) "
           f"SELECT {', '.join(quote(n) for n in columns)}"
           f"{''.join(f', %(s_{name})s' for name in stamped)} "
           f"FROM unnest({arrays}) AS given ({', '.join(quote(n) for n in columns)}) "
           f"ON CONFLICT ({', '.join(quote(n) for n in conflict)}) DO NOTHING "
           f"RETURNING {', '.join(quote(n) for n in returning)}")
    return _execute_binary(session, sql, params)


def set_next_due_on(session: Session, schedule: list[dict[str, Any]]) -> None:
    """Store each holder's next_due_on ({"id", "next_due_on"} items). SQLite: an executemany by
    primary key. PostgreSQL: one UPDATE ... FROM unnest(...), where an executemany would cost a
    round trip per row (11,000 of them on a normal day's scan of a million holders)."""
    if not schedule:
        return
    table = table_of(Holder)
    if not is_postgresql(session):
        # A Core executemany with one timestamp for all: the ORM's bulk UPDATE by primary key
        # would convert an `updated_at` per row (it costs more than SQLite's own work here).
        stmt = update(table).where(table.c.id == bindparam("b_id")).values(
            next_due_on=bindparam("b_next_due_on"), updated_at=utcnow())
        session.execute(stmt, [{"b_id": s["id"], "b_next_due_on": s["next_due_on"]} for s in schedule])
        return
    # updated_at as the ORM's onupdate would set it (naive UTC, as UTCDateTime stores it).
    _execute_binary(session, "UPDATE holders SET next_due_on = given.next_due_on, updated_at = %(now)s "
                             "FROM unnest(%(ids)s::INTEGER[], %(days)s::DATE[]) AS given (id, next_due_on) "
                             "WHERE holders.id = given.id",
                    {"now": utcnow().replace(tzinfo=None), "ids": pg_array([s["id"] for s in schedule]),
                     "days": pg_array([s["next_due_on"] for s in schedule])})


def _execute_binary(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run SQL straight through the driver, in the session's transaction (no SQLAlchemy
    compilation or result processing for statements built here)."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
