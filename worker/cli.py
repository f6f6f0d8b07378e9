"""`permit-worker`: the command line. Output on stdout, logs on stderr, errors as one line.

Exit status: 0 success, 2 bad input or usage, 1 anything else.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import click
import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from notifiers import NotifierConfigError
from schedules.policy import PolicyError
from worker import registry
from worker.db import unit_of_work, upgrade
from worker.logging_setup import configure_logging
from worker.registry import BadInput
from worker.roster import RosterError, parse_roster
from worker.runtime import Runtime, SchemaOutOfDate
from worker.settings import Settings

log = structlog.get_logger("worker.cli")


def _out(text: str) -> None:
    click.echo(text)


def _json_line(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from exc


def _parse_moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date-time (e.g. 2026-12-01T10:00:00+08:00)") from exc
    return moment


class App:
    """Lazily built per invocation, so `--help` and usage errors need no database."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(Settings())
        return self._runtime

    def ready(self) -> Runtime:
        self.runtime.require_schema()
        return self.runtime


pass_app = click.make_pass_decorator(App, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Reminders for Shanghai residence permit (上海市居住证) endorsements."""


# -- db ---------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Create or migrate the schema to the latest version."""
    upgrade(app.runtime.settings.database_url)
    _out("database schema is up to date")


# -- teams ------------------------------------------------------------------------------------
@cli.group()
def teams() -> None:
    """HR teams that register holders."""


@teams.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The employer's name, as HR knows it.")
@click.option("--hr-email", default=None, help="Where HR digests and failure reports go.")
@pass_app
def teams_create(app: App, slug: str, name: str, hr_email: str | None) -> None:
    """Create a team."""
    with unit_of_work(app.ready().factory) as session:
        team = registry.create_team(session, slug, name, hr_email)
    _out(f"created team {team.slug}")


@teams.command("list")
@pass_app
def teams_list(app: App) -> None:
    """List teams."""
    from sqlalchemy import select

    from worker.models import Team

    with unit_of_work(app.ready().factory) as session:
        for team in session.scalars(select(Team).order_by(Team.slug)):
            _out(f"{team.slug}\t{team.name}")


# -- holders ----------------------------------------------------------------------------------
@cli.group()
def holders() -> None:
    """Permit holders of a team."""


@holders.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--team", "team_slug", required=True)
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@pass_app
def holders_import(app: App, file: Path, team_slug: str, dry_run: bool) -> None:
    """Import a roster CSV (UTF-8, UTF-8 with BOM or GBK; English or Chinese headers)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    rows = parse_roster(data)  # RosterError: every bad row, nothing written
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        summary = registry.import_roster(session, team, rows, runtime.settings.fingerprint_key)
        if dry_run:
            session.rollback()
    verb = "would import" if dry_run else "imported"
    _out(f"{verb} {len(rows)} holders into {team_slug}: {len(summary.created)} new, {len(summary.updated)} updated, "
         f"{len(summary.unchanged)} unchanged, {len(summary.renewed)} renewed")


@holders.command("list")
@click.option("--team", "team_slug", required=True)
@click.option("--today", callback=_parse_day, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def holders_list(app: App, team_slug: str, today: date | None, as_json: bool) -> None:
    """List a team's holders with their stage."""
    from worker.evaluation import evaluate_holder, holder_today

    runtime = app.ready()
    now = datetime.now(timezone.utc)
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        for holder in registry.holders_of(session, team):
            day = today or holder_today(holder, now, runtime.settings.tz)
            ev = evaluate_holder(holder, day, runtime.policy)
            if as_json:
                _json_line({"external_id": holder.external_id, "expires_on": holder.expires_on.isoformat(),
                            "stage": ev.stage, "days_left": ev.days_left, "eligible": ev.eligibility.eligible,
                            "eligibility_reasons": list(ev.eligibility.reasons), "channel": ev.channel})
            else:
                reasons = ",".join(ev.eligibility.reasons) or "-"
                _out(f"{holder.external_id}\t{holder.expires_on}\t{ev.days_left:>5}\t{ev.stage}\t{reasons}")


@holders.command("confirm-renewal")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@click.option("--expires-on", "expires_on", required=True, callback=_parse_day, help="The new expiry date.")
@pass_app
def holders_confirm_renewal(app: App, external_id: str, team_slug: str, expires_on: date) -> None:
    """Record an endorsement: a new cycle starts and the old one's reminders stop."""
    with unit_of_work(app.ready().factory) as session:
        team = registry.get_team(session, team_slug)
        registry.confirm_renewal(session, team, external_id, expires_on)
    _out(f"renewal recorded: {external_id} now expires on {expires_on.isoformat()}")


@holders.command("delete")
@click.argument("external_id")
@click.option("--team", "team_slug", required=True)
@pass_app
def holders_delete(app: App, external_id: str, team_slug: str) -> None:
    """Delete a holder and every notification about them."""
    with unit_of_work(app.ready().factory) as session:
        registry.delete_holder(session, registry.get_team(session, team_slug), external_id)
    _out(f"deleted {external_id}")


# -- scan / dispatch / run --------------------------------------------------------------------
@cli.command("scan")
@click.option("--today", callback=_parse_day, help="Scan as of this date (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="Report what would be enqueued; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per enqueued notification.")
@pass_app
def scan_command(app: App, today: date | None, dry_run: bool, as_json: bool) -> None:
    """Evaluate every holder and enqueue the reminders that are due."""
    from worker.scan import scan

    runtime = app.ready()
    report = scan(runtime.factory, runtime.policy, runtime.settings.tz, today=today, dry_run=dry_run)
    log.info("scan.finished", scan_date=report.scan_date.isoformat(), holders=report.holders_seen,
             enqueued=len(report.enqueued), dry_run=dry_run, seconds=round(report.seconds, 3))
    if as_json:
        for item in report.enqueued:
            _json_line(item.as_json())
    else:
        verb = "would enqueue" if dry_run else "enqueued"
        _out(f"scanned {report.holders_seen} holders for {report.scan_date}: {verb} {len(report.enqueued)}")
        for item in report.enqueued:
            _out(f"  {item.team}/{item.external_id}\t{item.stage} {item.touch_day:+d}\t{item.channel}\t"
                 f"expires {item.expires_on} ({item.days_left} days left)")


@cli.command("dispatch")
@click.option("--once", is_flag=True, required=True, help="Send what is due now, then exit.")
@click.option("--now", "now", callback=_parse_moment, help="Act as if it were this moment (ISO 8601).")
@pass_app
def dispatch_command(app: App, once: bool, now: datetime | None) -> None:
    """Send the notifications that are due."""
    runtime = app.ready()
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=runtime.settings.tz)  # a bare time is read in PERMIT_TIMEZONE
    dispatcher = runtime.dispatcher()
    counts = dispatcher.run_batch(now=now, limit=10**9)
    log.info("dispatch.finished", **dict(counts))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing due"
    click.echo(f"dispatch: {summary}", err=True)


@cli.command("run")
@pass_app
def run_command(app: App) -> None:
    """Run the daemon: daily scan plus continuous dispatch, until SIGTERM/SIGINT."""
    from worker.daemon import Daemon

    code = Daemon(app.ready()).run()
    sys.exit(code)


@cli.group()
def demo() -> None:
    """A sample registry to see the worker at work."""


@demo.command("seed")
@click.option("--team", "team_slug", default="demo", show_default=True)
@pass_app
def demo_seed(app: App, team_slug: str) -> None:
    """Create the team if needed and import sample holders spread over every stage."""
    from worker.sample import sample_roster_csv

    runtime = app.ready()
    today = datetime.now(runtime.settings.tz).date()
    rows = parse_roster(sample_roster_csv(today).encode("utf-8"))
    with unit_of_work(runtime.factory) as session:
        try:
            team = registry.get_team(session, team_slug)
        except registry.NotFound:
            team = registry.create_team(session, team_slug, "示例科技有限公司 (demo)", None)
        summary = registry.import_roster(session, team, rows, runtime.settings.fingerprint_key)
    _out(f"seeded team {team_slug}: {len(summary.created)} new, {len(summary.updated) + len(summary.unchanged)} existing")


# -- entry point ------------------------------------------------------------------------------
def _fail(message: str, code: int) -> int:
    click.echo(f"permit-worker: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes one line on stderr and an exit status."""
    try:
        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "PERMIT_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        return _fail(f"{field}: {first['msg']}", 2)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        cli.main(args=argv, prog_name="permit-worker", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 1)
    except click.UsageError as exc:
        hint = f" (see: permit-worker {exc.ctx.command_path.split(' ', 1)[-1]} --help)" if exc.ctx else ""
        return _fail(exc.format_message() + hint, 2)
    except RosterError as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        return _fail(f"{len(exc.errors)} bad row(s); nothing was imported", 2)
    except (BadInput, PolicyError, NotifierConfigError) as exc:
        return _fail(str(exc), 2)
    except SchemaOutOfDate as exc:
        return _fail(str(exc), 1)
    except SQLAlchemyError as exc:
        log.debug("database_error", exc_info=True)
        return _fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}", 1)
    except Exception as exc:  # the last line of defence: no tracebacks for users
        log.error("unexpected_error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
