"""CLI commands that work on the registry: teams, holders, the demo team."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from worker.cli.common import App, json_line, out, parse_day, pass_app
from worker.registry import records as registry
from worker.registry import service
from worker.registry.records import BadInput
from worker.registry.roster import iter_roster_csv, parse_roster, spool_roster
from worker.store.db import unit_of_work


def register(cli: click.Group) -> None:
    cli.add_command(teams)
    cli.add_command(holders)
    cli.add_command(demo)


# -- teams ------------------------------------------------------------------------------------
@click.group()
def teams() -> None:
    """HR teams that register holders."""


@teams.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The employer's name, as HR knows it.")
@click.option("--hr-email", default=None, help="Where HR digests and failure reports go.")
@click.option("--channels", default=None, help="Channel order, e.g. wecom,sms,email (default: the policy's).")
@pass_app
def teams_create(app: App, slug: str, name: str, hr_email: str | None, channels: str | None) -> None:
    """Create a team."""
    with unit_of_work(app.ready().factory) as session:
        team = registry.create_team(session, slug, name, hr_email, channels)
        token = registry.issue_token(session, team)
    out(f"created team {team.slug}")
    out(f"api token (shown once, store it now): {token}")


@teams.command("rotate-token")
@click.argument("slug")
@pass_app
def teams_rotate_token(app: App, slug: str) -> None:
    """Replace a team's API token; the old one stops working at once."""
    with unit_of_work(app.ready().factory) as session:
        token = registry.issue_token(session, registry.get_team(session, slug))
    out(f"new api token for {slug} (shown once, store it now): {token}")


@teams.command("update")
@click.argument("slug")
@click.option("--name", default=None, help="The employer's name.")
@click.option("--hr-email", default=None, help="Where HR digests go (\"\" clears it).")
@click.option("--channels", default=None,
              help="Channel order, e.g. wecom,sms,email: a holder gets the first one they have a contact for, and a "
                   "permanent failure falls back along it (\"\" restores the policy's order).")
@click.option("--hr-wecom-webhook", default=None,
              help="A WeCom group robot's webhook URL: the daily digest goes there too (\"\" removes it).")
@pass_app
def teams_update(app: App, slug: str, name: str | None, hr_email: str | None, channels: str | None,
                 hr_wecom_webhook: str | None) -> None:
    """Change a team's name, HR email, channel order or WeCom group robot."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, slug)
        changed = registry.update_team(session, team, name=name, hr_email=hr_email, channels=channels,
                                       hr_wecom_webhook=hr_wecom_webhook)
        order = team.channels or ",".join(runtime.policy.channels)
    if not changed:
        raise click.UsageError("nothing to change: give --name, --hr-email, --channels or --hr-wecom-webhook")
    out(f"updated team {slug}: {', '.join(changed)}")
    out(f"channels: {order}")
    allowed = runtime.settings.wecom_team_slugs()
    if "wecom" in order.split(",") and not runtime.settings.wecom_enabled:
        click.echo("permit-worker: warning: PERMIT_WECOM_CORP_ID is not set on this machine: wecom touches "
                   "fall back to the next channel until the worker has WeCom configured", err=True)
    elif "wecom" in order.split(",") and allowed is not None and slug not in allowed:
        click.echo(f"permit-worker: warning: {slug} is not in PERMIT_WECOM_TEAMS: its wecom touches fall back "
                   "to the next channel (its employees are not members of this WeCom enterprise)", err=True)


@teams.command("list")
@pass_app
def teams_list(app: App) -> None:
    """List teams."""
    from sqlalchemy import select

    from worker.store.models import Team

    with unit_of_work(app.ready().factory) as session:
        for team in session.scalars(select(Team).order_by(Team.slug)):
            robot = "wecom-robot" if team.hr_wecom_webhook else "-"  # the URL holds the robot's key
            out(f"{team.slug}\t{team.name}\t{team.channels or 'policy order'}\t{robot}")


# -- holders ----------------------------------------------------------------------------------
@click.group()
def holders() -> None:
    """Permit holders of a team."""


@holders.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--team", "team_slug", required=True)
@click.option("--dry-run", is_flag=True, help="Validate and report every change (old → new); write nothing.")
@click.option("--allow-earlier-expiry", is_flag=True,
              help="Let rows move an expiry earlier than the one on file (to correct a mistyped date).")
@pass_app
def holders_import(app: App, file: Path, team_slug: str, dry_run: bool, allow_earlier_expiry: bool) -> None:
    """Import a roster CSV (UTF-8, UTF-8 with BOM or GBK; English or Chinese headers)."""
    try:
        stream = file.open("rb")
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    # Two passes, so memory stays flat in the file size: validate the whole file streaming
    # (RosterError: every bad row, nothing written), keeping the valid rows in a temporary file;
    # then write them in chunks, all in one transaction, so a file is still all-or-nothing.
    with stream, spool_roster(iter_roster_csv(stream)) as rows:
        runtime = app.ready()
        with runtime.unit() as uow:
            report = service.import_rows(uow, service.team_of(uow, team_slug), rows, runtime.settings.fingerprint_key,
                                         allow_earlier_expiry=allow_earlier_expiry)
            if not dry_run:
                uow.commit()
    if dry_run:
        for change in report.changes:
            out(f"  row {change.row} {change.external_id}: " + "; ".join(str(c) for c in change.changes)
                + ("  (renewed: a new cycle starts)" if change.renewed else ""))
        if report.more_changes:
            out(f"  ... and {report.more_changes} more updated row(s)")
    verb = "would import" if dry_run else "imported"
    out(f"{verb} {report.rows} holders into {team_slug}: {report.created} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.renewed} renewed; "
        f"{report.enqueued} reminder(s) due now {'would be sent at once' if dry_run else 'enqueued'}")
    losing = [c for c in report.changes if c.loses_auto_renewal]
    if losing:
        out(f"{report.losing_auto_renewal} holder(s) {'would lose' if dry_run else 'lost'} auto-renewal this cycle "
            "(changed details: they must renew in person): "
            + ", ".join(f"{c.external_id} ({', '.join(c.loses_auto_renewal)})" for c in losing[:50])
            + (" ..." if report.losing_auto_renewal > 50 else ""))


@holders.command("list")
@click.option("--team", "team_slug", required=True)
@click.option("--today", callback=parse_day, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def holders_list(app: App, team_slug: str, today: date | None, as_json: bool) -> None:
    """List a team's holders with their stage."""
    from worker.planning.evaluation import evaluate_holder, holder_today

    runtime = app.ready()
    now = datetime.now(UTC)
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        for holder in registry.holders_of(session, team):
            day = today or holder_today(holder, now, runtime.settings.tz)
            ev = evaluate_holder(holder, day, runtime.policy)
            if as_json:
                json_line({"external_id": holder.external_id, "expires_on": holder.expires_on.isoformat(),
                            "stage": ev.stage, "days_left": ev.days_left, "auto_renewal": ev.auto_renewal,
                            "eligible": None if ev.auto_renewal == "not_applicable" else ev.eligibility.eligible,
                            "eligibility_reasons": list(ev.eligibility.reasons), "channel": ev.channel})
            else:
                reasons = ",".join(ev.eligibility.reasons) or "-"
                out(f"{holder.external_id}\t{holder.expires_on}\t{ev.days_left:>5}\t{ev.stage}\t{reasons}")


@holders.command("confirm-renewal")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@click.option("--expires-on", "expires_on", required=True, callback=parse_day, help="The new expiry date.")
@pass_app
def holders_confirm_renewal(app: App, external_id: str, team_slug: str, expires_on: date) -> None:
    """Record an endorsement: a new cycle starts and the old one's reminders stop."""
    with app.ready().unit() as uow:
        service.confirm_renewal(uow, service.team_of(uow, team_slug), external_id, expires_on)
        uow.commit()
    out(f"renewal recorded: {external_id} now expires on {expires_on.isoformat()}")


@holders.command("delete")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@pass_app
def holders_delete(app: App, external_id: str, team_slug: str) -> None:
    """Delete a holder and every notification about them."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team_id = registry.get_team(session, team_slug).id
    service.erase_holder(runtime.factory, runtime.engine, team_id, external_id)
    out(f"deleted {external_id}")


@click.group()
def demo() -> None:
    """A sample registry to see the worker at work."""


@demo.command("seed")
@click.option("--team", "team_slug", default="demo", show_default=True)
@pass_app
def demo_seed(app: App, team_slug: str) -> None:
    """Create the team if needed and import sample holders spread over every stage."""
    from worker.registry.sample import sample_roster_csv

    runtime = app.ready()
    today = datetime.now(runtime.settings.tz).date()
    rows = parse_roster(sample_roster_csv(today).encode("utf-8"))
    with runtime.unit() as uow:
        try:
            team = service.team_of(uow, team_slug)
        except registry.NotFound:
            team = registry.create_team(uow.session, team_slug, "示例科技有限公司 (demo)", None)
        report = service.import_rows(uow, team, rows, runtime.settings.fingerprint_key,
                                     allow_earlier_expiry=True)  # the sample moves with today's date
        uow.commit()
    out(f"seeded team {team_slug}: {report.created} new, {report.updated + report.unchanged} existing; "
        f"{report.enqueued} reminder(s) due today enqueued")
