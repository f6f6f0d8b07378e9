"""Social-insurance months from HR: `external_id,month,paid,base_multiple`, all or nothing.

Same rules as the roster import: UTF-8, UTF-8 with BOM or GBK; English or Chinese headers; a
file with any bad row is rejected whole with one `row N: column: reason` per problem.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.registry.roster import RosterError, RowError, RowErrors, decode_roster
from worker.store.models import Holder, Team
from worker.store.models import InsuranceMonth as InsuranceRow
from worker.store.privacy import CONTROL_REASON, control_characters

COLUMNS = ("external_id", "month", "paid", "base_multiple")
_CHINESE = {"工号": "external_id", "月份": "month", "缴费月份": "month", "是否缴纳": "paid", "已缴": "paid",
            "缴费基数倍数": "base_multiple", "基数倍数": "base_multiple"}
_YES = {"1", "true", "yes", "y", "是", "已缴", "正常"}
_NO = {"0", "false", "no", "n", "否", "未缴", "断缴"}
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


@dataclass(frozen=True)
class MonthRow:
    row: int
    external_id: str
    month: date
    paid: bool
    base_multiple: float | None


def parse_months(data: bytes) -> list[MonthRow]:
    text = decode_roster(data)
    records = [r for r in csv.reader(io.StringIO(text))]
    if not records:
        raise RosterError([RowError(0, "file", "empty file")])
    header = [_CHINESE.get(h.strip(), h.strip().lower()) for h in records[0]]
    missing = [c for c in COLUMNS[:3] if c not in header]
    if missing:
        raise RosterError([RowError(1, c, "missing column") for c in missing])
    index = {c: header.index(c) for c in COLUMNS if c in header}
    rows: list[MonthRow] = []
    errors = RowErrors()
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        cell = {c: (record[i].strip() if i < len(record) else "") for c, i in index.items()}
        rows_errors = len(errors)
        bad = [c for c, value in cell.items() if control_characters(value)]
        for column in bad:
            errors.add(RowError(number, column, CONTROL_REASON))
        if bad:
            continue
        if not cell["external_id"]:
            errors.add(RowError(number, "external_id", "required"))
        match = _MONTH.match(cell["month"])
        if not match or not 1 <= int(match.group(2)) <= 12:
            errors.add(RowError(number, "month", "not a month (use YYYY-MM)"))
        paid = cell["paid"].lower()
        if paid not in _YES | _NO:
            errors.add(RowError(number, "paid", "must be 1/0, yes/no or 是/否"))
        multiple: float | None = None
        if cell.get("base_multiple"):
            try:
                multiple = float(cell["base_multiple"])
                if not 0 <= multiple <= 10:
                    raise ValueError
            except ValueError:
                errors.add(RowError(number, "base_multiple", "not a multiple between 0 and 10"))
        if len(errors) == rows_errors and match:
            rows.append(MonthRow(number, cell["external_id"], date(int(match.group(1)), int(match.group(2)), 1),
                                 paid in _YES, multiple))
    if errors:
        raise errors.error()
    if not rows:
        raise RosterError([RowError(0, "file", "no data rows")])
    return rows


def import_months(session: Session, team: Team, rows: list[MonthRow]) -> set[int]:
    """Upsert each (holder, month); an unknown external_id rejects the whole file. Returns the ids
    of the holders concerned: their points checks have new facts (worker.planning.events acts on them)."""
    ids = {ext: hid for ext, hid in session.execute(select(Holder.external_id, Holder.id).where(
        Holder.team_id == team.id, Holder.external_id.in_({r.external_id for r in rows})))}
    unknown = RowErrors()
    for r in rows:
        if r.external_id not in ids:
            unknown.add(RowError(r.row, "external_id", f"no holder {r.external_id!r} in team {team.slug!r}",
                                 "no such holder in the team"))
    if unknown:
        raise unknown.error()
    existing = {(m.holder_id, m.month): m for m in session.scalars(
        select(InsuranceRow).where(InsuranceRow.holder_id.in_(set(ids.values()))))}
    for r in rows:
        key = (ids[r.external_id], r.month)
        if key in existing:
            existing[key].paid, existing[key].base_multiple = r.paid, r.base_multiple
        else:
            existing[key] = InsuranceRow(holder_id=key[0], month=r.month, paid=r.paid, base_multiple=r.base_multiple)
            session.add(existing[key])
    session.flush()
    return set(ids.values())
