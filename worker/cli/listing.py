"""`holders list` and `holders export`: a team's holders on the terminal, as CSV or JSON lines,
or as a roster file that imports back unchanged."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from worker.cli.common import json_line, out
from worker.http.web.export import csv_chunks, export_xlsx
from worker.ops.runtime import Runtime
from worker.planning.team_rows import Evaluator, HolderLike, page_ids, rows_by_id, stream_rows
from worker.registry import records as registry
from worker.registry.records import BadInput
from worker.store.db import unit_of_work
from worker.store.models import Holder

COLUMNS = ("external_id", "name", "expires_on", "days_left", "stage", "not_eligible_because", "channel")


def list_holders(runtime: Runtime, team_slug: str, today: date | None, stage: str | None,
                 expires_before: date | None, fmt: str) -> None:
    """Print the team's holders (soonest expiry first), filtered by stage and expiry."""
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        evaluator = Evaluator(runtime.policy, runtime.settings.tz, now, team.channels)
        before = Holder.expires_on < expires_before if expires_before is not None else None
        if stage is None:  # everyone: one streamed read
            found: Iterable[HolderLike] = stream_rows(session, team.id, before)
        else:  # only holders whose expiry can put them in the stage (team_rows.page_ids)
            found = rows_by_id(session, page_ids(session, team.id, evaluator, stage=stage, where=before,
                                                 limit=None, today=today)[1])
        for holder in found:
            ev = evaluator.of(holder, today)
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
    """Write the team's registry: XLSX for a .xlsx file, else CSV (UTF-8 with BOM); stdout by
    default. Rows are read in batches and written as they come (memory flat in the team's size)."""
    now = datetime.now(UTC)
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        evaluator = Evaluator(runtime.policy, runtime.settings.tz, now)
        counted = _Counted(stream_rows(session, team.id))
        try:
            if output is None:
                for chunk in csv_chunks(counted, evaluator, lang):
                    sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                return
            if output.suffix.lower() == ".xlsx":
                export_xlsx(counted, evaluator, lang, output)
            else:
                with output.open("wb") as f:
                    for chunk in csv_chunks(counted, evaluator, lang):
                        f.write(chunk)
        except OSError as exc:
            raise BadInput(f"cannot write {output or 'stdout'}: {exc.strerror}") from exc
    print(f"exported {counted.n} holder(s) of {team_slug} to {output}", file=sys.stderr)


class _Counted:
    """Rows passed through, counted (for the closing line) without holding them."""

    def __init__(self, rows: Iterable[HolderLike]) -> None:
        self.rows, self.n = rows, 0

    def __iter__(self) -> Iterator[HolderLike]:
        for row in self.rows:
            self.n += 1
            yield row
