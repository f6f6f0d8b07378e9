"""`holders list` and `holders export`: a team's holders on the terminal, as CSV or JSON lines,
or as a roster file that imports back unchanged."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from worker.cli.common import json_line, out
from worker.http.web.export import export_csv, export_xlsx
from worker.ops.runtime import Runtime
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.registry import records as registry
from worker.registry.records import BadInput
from worker.store.db import unit_of_work

COLUMNS = ("external_id", "name", "expires_on", "days_left", "stage", "not_eligible_because", "channel")


def list_holders(runtime: Runtime, team_slug: str, today: date | None, stage: str | None,
                 expires_before: date | None, fmt: str) -> None:
    """Print the team's holders (soonest expiry first), filtered by stage and expiry."""
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        for holder in registry.holders_of(session, team, expires_before=expires_before):
            ev = evaluate_holder(holder, today or holder_today(holder, now, runtime.settings.tz), runtime.policy)
            if stage is not None and ev.stage != stage:
                continue
            rows.append({"external_id": holder.external_id, "name": holder.name or "",
                         "expires_on": holder.expires_on.isoformat(), "days_left": ev.days_left, "stage": ev.stage,
                         "auto_renewal": ev.auto_renewal,
                         "eligible": None if ev.auto_renewal == "not_applicable" else ev.eligibility.eligible,
                         "eligibility_reasons": list(ev.eligibility.reasons), "channel": ev.channel})
    if fmt == "json":
        for row in rows:
            json_line({k: v for k, v in row.items() if k != "name"} | {"name": row["name"] or None})
        return
    table = [[str(r["external_id"]), str(r["name"]), str(r["expires_on"]), str(r["days_left"]), str(r["stage"]),
              ",".join(r["eligibility_reasons"]) or "-", str(r["channel"] or "-")]  # type: ignore[arg-type]
             for r in rows]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(table)
        return
    widths = [max([_width(COLUMNS[i])] + [_width(line[i]) for line in table]) for i in range(len(COLUMNS))]
    for line in [list(COLUMNS), *table]:
        out("  ".join(_pad(cell, widths[i]) for i, cell in enumerate(line)).rstrip())
    out(f"# {len(table)} holder(s)")


def _width(text: str) -> int:
    # Chinese characters take two columns on a terminal.
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def export_holders(runtime: Runtime, team_slug: str, output: Path | None, lang: str) -> None:
    """Write the team's registry: XLSX for a .xlsx file, else CSV (UTF-8 with BOM); stdout by default."""
    now = datetime.now(UTC)
    with unit_of_work(runtime.factory) as session:
        holders = registry.holders_of(session, registry.get_team(session, team_slug))
        xlsx = output is not None and output.suffix.lower() == ".xlsx"
        data = (export_xlsx if xlsx else export_csv)(holders, runtime, lang, now)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise BadInput(f"cannot write {output}: {exc.strerror}") from exc
    print(f"exported {len(holders)} holder(s) of {team_slug} to {output}", file=sys.stderr)
