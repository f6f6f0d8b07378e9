"""CLI for issue 6: `holders explain` and `social-insurance import`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import click

from worker.cli.common import App, cli_actor, out, parse_day, pass_app
from worker.planning.evaluation import holder_today
from worker.planning.explain import explain, explain_text
from worker.registry import records as registry
from worker.registry import service
from worker.registry.insurance import parse_months
from worker.registry.records import BadInput
from worker.store.db import unit_of_work


@click.command("explain")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@click.option("--today", callback=parse_day, help="Explain as of this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="The same as a JSON object.")
@pass_app
def holders_explain(app: App, external_id: str, team_slug: str, today: date | None, as_json: bool) -> None:
    """Where a holder stands: stage, eligibility, deadlines, accumulated years, points risks, reminders."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        holder = registry.get_holder(session, registry.get_team(session, team_slug), external_id)
        day = today or holder_today(holder, datetime.now(UTC), runtime.settings.tz)
        data = explain(session, holder, day, runtime.policy)
    out(json.dumps(data, ensure_ascii=False) if as_json else explain_text(data))


@click.group("social-insurance")
def social_insurance() -> None:
    """Social-insurance months, for the points (积分) risk checks."""


@social_insurance.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--team", "team_slug", required=True)
@pass_app
def social_insurance_import(app: App, file: Path, team_slug: str) -> None:
    """Import `external_id,month,paid,base_multiple` rows (month as YYYY-MM); all or nothing."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    rows = parse_months(data)  # RosterError: every bad row, nothing written
    runtime = app.ready()
    with runtime.unit(cli_actor()) as uow:
        # New months can make a points touch due now: planned at once, as for any other change.
        service.record_insurance(uow, service.team_of(uow, team_slug), rows)
        uow.commit()
    out(f"imported {len(rows)} social-insurance month(s) into {team_slug}; "
        f"{uow.enqueued_count} points reminder(s) due now enqueued")


def register(cli: click.Group, holders: click.Group) -> None:
    holders.add_command(holders_explain)
    cli.add_command(social_insurance)
