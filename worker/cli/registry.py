"""CLI commands that work on the registry: teams, holders, the demo team."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import click

from schedules.stages import STAGES
from worker.cli.common import App, cli_actor, out, parse_day, parse_roster_day, pass_app
from worker.cli.listing import export_holders, list_holders
from worker.cli.roster_files import roster_rows
from worker.registry import audit, service
from worker.registry import records as registry
from worker.registry.records import BadInput
from worker.registry.roster import RosterRow, parse_roster
from worker.store.db import unit_of_work
from worker.store.maintenance import checkpoint_after_erasure


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
        audit.record(session, team.id, cli_actor(), "team.created", changes={"slug": slug})
        token = registry.issue_token(session, team)
    out(f"created team {team.slug}")
    out(f"api token (shown once, store it now): {token}")


@teams.command("rotate-token")
@click.argument("slug")
@pass_app
def teams_rotate_token(app: App, slug: str) -> None:
    """Replace a team's API token; the old one stops working at once."""
    with unit_of_work(app.ready().factory) as session:
        token = registry.issue_token(session, registry.get_team(session, slug), cli_actor())
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
        if changed:  # the webhook holds a key: named as changed, never recorded
            audit.record(session, team.id, cli_actor(), "team.updated", changes={"fields": sorted(changed)})
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


@teams.command("test-message")
@click.argument("slug")
@click.option("--to", "address", required=True, help="A mainland mobile number, an email address or a WeCom userid.")
@pass_app
def teams_test_message(app: App, slug: str, address: str) -> None:
    """Send one clearly marked test through the channel the address belongs to, and print what
    the provider answered. Exit 0 when it was accepted, 1 when not."""
    from worker.delivery.test_message import send_test
    from worker.store.privacy import mask_text

    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team_name = registry.get_team(session, slug).name
    sent = send_test(runtime.notifiers(), address, team_name, runtime.sms_templates,
                     datetime.now(runtime.settings.tz).date())
    result = sent.result
    out(f"test {sent.channel} to {mask_text(sent.to)} through {sent.notifier}: {result.status.value}"
        + (f" (id {result.provider_message_id})" if result.provider_message_id else "")
        + (f": {mask_text(result.error)}" if result.error else "")
        + (f" [code {result.error_code}]" if result.error_code else ""))
    if result.status.value != "sent":
        raise click.exceptions.Exit(1)


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
@click.option("--full-roster", is_flag=True,
              help="The file lists everyone: holders missing from it have left and are deleted (PIPL: their data "
                   "goes). Try it with --dry-run first.")
@click.option("--yes", is_flag=True, help="With --full-roster: delete even when that is more than half the team.")
@pass_app
def holders_import(app: App, file: Path, team_slug: str, dry_run: bool, allow_earlier_expiry: bool,
                   full_roster: bool, yes: bool) -> None:
    """Import a roster: CSV (UTF-8, UTF-8 with BOM or GBK) or XLSX (the web's template), told
    apart by content; English or Chinese headers, and errors in the file's language."""
    # Two passes, so memory stays flat in the file size: validate the whole file streaming
    # (RosterError: every bad row, nothing written), keeping the valid rows in a temporary file;
    # then write them in chunks, all in one transaction, so a file is still all-or-nothing.
    gone: list[str] = []
    with roster_rows(file) as (rows, _lang):
        runtime = app.ready()
        listed: set[str] = set()

        def noting(source: Iterator[RosterRow]) -> Iterator[RosterRow]:
            # Only a full roster needs every external id it lists (a million-row file: ~70 MB).
            for row in source:
                listed.add(row.external_id)
                yield row

        with runtime.unit(cli_actor()) as uow:
            team = service.team_of(uow, team_slug)
            report = service.import_rows(uow, team, noting(rows) if full_roster else rows,
                                         runtime.settings.fingerprint_key, allow_earlier_expiry=allow_earlier_expiry)
            if full_roster:
                gone = registry.leavers(uow.session, team, listed)
                existing = report.updated + report.unchanged + len(gone)  # renewed ones are among updated
                if len(gone) * 2 > existing and not yes and not dry_run:
                    raise BadInput(f"--full-roster would delete {len(gone)} of {existing} holders: is the file "
                                   "complete? Check with --dry-run, then pass --yes")
                if not dry_run:
                    registry.delete_leavers(uow.session, team, gone, cli_actor())
            if not dry_run:
                uow.commit()
    if gone and not dry_run:
        checkpoint_after_erasure(runtime.engine)
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
    if full_roster:
        shown = ", ".join(gone[:50]) + (" ..." if len(gone) > 50 else "")
        out(f"{len(gone)} leaver(s) (not in the file) {'would be deleted' if dry_run else 'deleted'}"
            + (f": {shown}" if gone else ""))
    losing = [c for c in report.changes if c.loses_auto_renewal]
    if losing:
        out(f"{report.losing_auto_renewal} holder(s) {'would lose' if dry_run else 'lost'} auto-renewal this cycle "
            "(changed details: they must renew in person): "
            + ", ".join(f"{c.external_id} ({', '.join(c.loses_auto_renewal)})" for c in losing[:50])
            + (" ..." if report.losing_auto_renewal > 50 else ""))


@holders.command("list")
@click.option("--team", "team_slug", required=True)
@click.option("--today", callback=parse_day, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option("--stage", type=click.Choice(STAGES), default=None, help="Only holders in this stage.")
@click.option("--expires-before", "expires_before", callback=parse_roster_day, default=None,
              help="Only holders whose permit expires before this date.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default=None,
              help="table (default, with a header), csv, or json (one object per line).")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@pass_app
def holders_list(app: App, team_slug: str, today: date | None, stage: str | None, expires_before: date | None,
                 fmt: str | None, as_json: bool) -> None:
    """List a team's holders with their stage, soonest expiry first."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError("--json and --format table|csv cannot be used together")
    list_holders(app.ready(), team_slug, today, stage, expires_before, "json" if as_json else fmt or "table")


@holders.command("confirm-renewal")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@click.option("--expires-on", "expires_on", required=True, callback=parse_roster_day,
              help="The new expiry date (YYYY-MM-DD or YYYY/M/D, as in a roster).")
@click.option("--yes", is_flag=True, help="Record it even if it is more than 13 months after the current expiry.")
@pass_app
def holders_confirm_renewal(app: App, external_id: str, team_slug: str, expires_on: date, yes: bool) -> None:
    """Record an endorsement: a new cycle starts and the old one's reminders stop."""
    with app.ready().unit(cli_actor()) as uow:
        service.confirm_renewal(uow, service.team_of(uow, team_slug), external_id, expires_on, confirm_far=yes)
        uow.commit()
    out(f"renewal recorded: {external_id} now expires on {expires_on.isoformat()}")


@holders.command("pause")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@click.option("--until", "until", required=True, callback=parse_roster_day,
              help="The last day nothing is sent (inclusive; YYYY-MM-DD or YYYY/M/D).")
@click.option("--reason", default=None, help="Why, for HR (e.g. parental leave); at most 200 characters.")
@pass_app
def holders_pause(app: App, external_id: str, team_slug: str, until: date, reason: str | None) -> None:
    """Send the holder nothing until a day (parental leave, a secondment abroad). HR still sees
    them in the digest; at the end the latest due reminder goes out, never a backlog."""
    with app.ready().unit(cli_actor()) as uow:
        service.pause_holder(uow, service.team_of(uow, team_slug), external_id, until, reason)
        uow.commit()
    out(f"paused {external_id}: nothing is sent to them up to and including {until.isoformat()}")


@holders.command("resume")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@pass_app
def holders_resume(app: App, external_id: str, team_slug: str) -> None:
    """End a pause now: the reminder due today goes out."""
    with app.ready().unit(cli_actor()) as uow:
        service.resume_holder(uow, service.team_of(uow, team_slug), external_id)
        uow.handle_events()
        enqueued = uow.enqueued_count
        uow.commit()
    out(f"resumed {external_id}; {enqueued} reminder(s) due now enqueued")


@holders.command("export")
@click.option("--team", "team_slug", required=True)
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here: .xlsx for a workbook, anything else CSV (UTF-8 with BOM). Default: CSV on stdout.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Column names in Chinese (as the web's template) or English.")
@pass_app
def holders_export(app: App, team_slug: str, output: Path | None, lang: str) -> None:
    """Export the team's holders in the roster's own columns (plus stage and days left), so the
    file imports back unchanged."""
    export_holders(app.ready(), team_slug, output, lang)


@holders.command("delete")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@pass_app
def holders_delete(app: App, external_id: str, team_slug: str) -> None:
    """Delete a holder and every notification about them."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team_id = registry.get_team(session, team_slug).id
    service.erase_holder(runtime.factory, runtime.engine, team_id, external_id, cli_actor())
    out(f"deleted {external_id}")


@click.group()
def demo() -> None:
    """A sample registry to see the worker at work."""


@demo.command("seed")
@click.option("--team", "team_slug", default="demo", show_default=True)
@click.option("--sign-in-url", default="http://127.0.0.1:8080/web/login", show_default=True,
              help="Where `run --serve` (or `serve`) shows the HR pages, to print with the demo's token.")
@pass_app
def demo_seed(app: App, team_slug: str, sign_in_url: str) -> None:
    """Create the team if needed and import sample holders spread over every stage."""
    from worker.registry.sample import sample_roster_csv

    runtime = app.ready()
    today = datetime.now(runtime.settings.tz).date()
    rows = parse_roster(sample_roster_csv(today).encode("utf-8"))
    with runtime.unit(cli_actor()) as uow:
        try:
            team = service.team_of(uow, team_slug)
        except registry.NotFound:
            team = registry.create_team(uow.session, team_slug, "示例科技有限公司 (demo)", None)
        report = service.import_rows(uow, team, rows, runtime.settings.fingerprint_key,
                                     allow_earlier_expiry=True)  # the sample moves with today's date
        # A sample team's token is nobody's secret: a fresh one each time, so the first run can
        # say how to sign in (a real team's token is shown once, at `teams create`).
        token = registry.issue_token(uow.session, team)
        uow.commit()
    out(f"seeded team {team_slug}: {report.created} new, {report.updated + report.unchanged} existing; "
        f"{report.enqueued} reminder(s) due today enqueued (they go out between 09:00 and 20:00 Shanghai time)")
    out(f"HR pages: {sign_in_url} — under \"用团队令牌登录 / Sign in with a team token\", the {team_slug} team's "
        f"token: {token}")
