"""`permit-worker`: the command line. Output on stdout, logs on stderr, errors as one line.

Exit status: 0 success, 2 bad input or usage, 1 anything else.
"""

from __future__ import annotations

import signal
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from notifiers import NotifierConfigError
from schedules.policy import PolicyError
from worker.cli import access as cli_access
from worker.cli import config as cli_config
from worker.cli import points as cli_points
from worker.cli import registry as cli_registry
from worker.cli import sms as cli_sms
from worker.cli.common import App, json_line, out, parse_day, parse_moment, pass_app
from worker.ops.logs import configure_logging
from worker.ops.runtime import SchemaOutOfDate
from worker.ops.settings import Settings
from worker.registry.fingerprint import FingerprintKeyError
from worker.registry.records import BadInput
from worker.registry.roster import RosterError
from worker.store.backup import BackupError
from worker.store.db import unit_of_work, upgrade

log = structlog.get_logger("worker.cli")


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
    done = upgrade(app.runtime.settings.database_url)
    out({"created": "database schema created", "migrated": "database schema migrated to the latest version",
         "current": "database schema is already up to date"}[done])


@db.command("wait")
@click.option("--timeout", type=click.FloatRange(0, 24 * 3600), default=600.0, show_default=True,
              help="Seconds to wait before giving up (exit 1).")
@pass_app
def db_wait(app: App, timeout: float) -> None:
    """Wait until the database answers and its schema is this version's: an init container's
    step, so the apps start only after the migration Job has finished."""
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from worker.store.db import schema_is_current

    deadline = time.monotonic() + timeout
    why = "schema not current"
    while True:
        try:
            if schema_is_current(app.runtime.engine):
                out("database schema is current")
                return
            why = "schema not current (is the migration Job done?)"
        except SQLAlchemyError as exc:
            why = f"database unreachable ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            raise SchemaOutOfDate(f"gave up after {timeout:g} s: {why}")
        time.sleep(2)


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def backup_command(app: App, file: Path) -> None:
    """A consistent online copy of the SQLite registry (safe while the daemon runs)."""
    from worker.store.backup import backup

    snap = backup(app.runtime.settings.database_url, file)
    out(f"backed up {snap.holders} holder(s), {snap.notifications} notification(s) of {snap.teams} team(s) "
        f"to {snap.path} ({snap.bytes / 1e6:.1f} MB, schema {snap.revision}, integrity ok)")


@cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace the current registry (stop the daemon and the HTTP app first).")
@pass_app
def restore_command(app: App, file: Path, yes: bool) -> None:
    """Replace the SQLite registry with a checked backup."""
    from worker.store.backup import inspect_file, restore, sqlite_file

    url = app.runtime.settings.database_url
    incoming = inspect_file(file)
    target = sqlite_file(url)
    if target.exists() and not yes:
        current = inspect_file(target)
        raise click.UsageError(f"this replaces {target} ({current.holders} holder(s)) with {file} "
                               f"({incoming.holders} holder(s)): stop the daemon and the HTTP app, then pass --yes")
    snap = restore(file, url)
    out(f"restored {snap.holders} holder(s), {snap.notifications} notification(s) of {snap.teams} team(s) "
        f"into {target} (schema {snap.revision}); then run: permit-worker db upgrade")


@cli.group()
def keys() -> None:
    """The keys the embedded default keeps in its database."""


@keys.command("export")
@pass_app
def keys_export(app: App) -> None:
    """Print the keys this database keeps, as environment lines, to move them into your secret
    store before running outside the embedded default (PostgreSQL, or https). Once the same
    values come from the environment, the copies in the database are deleted at the next start."""
    from worker.http.web.session import stored_secret
    from worker.registry.fingerprint import stored_key

    with unit_of_work(app.ready().factory) as session:
        found = {"PERMIT_FINGERPRINT_KEY": stored_key(session), "PERMIT_SESSION_SECRET": stored_secret(session)}
    for name, value in found.items():
        if value:
            out(f"{name}={value}")
    if not any(found.values()):
        out("# no keys are kept in this database: they come from the environment")


cli_registry.register(cli)
cli_access.register(cli)
cli_points.register(cli, cli_registry.holders)
cli_config.register(cli)
cli_sms.register(cli)


# -- scan / dispatch / run --------------------------------------------------------------------
@cli.command("scan")
@click.option("--today", callback=parse_day, help="Scan as of this date (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="Report what would be enqueued; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per enqueued notification.")
@click.option("--full", is_flag=True, help="Re-plan every holder (as after a policy change), not only those due.")
@pass_app
def scan_command(app: App, today: date | None, dry_run: bool, as_json: bool, full: bool) -> None:
    """Evaluate the holders due (or, after a policy change or with --full, every holder) and
    enqueue the reminders that are due."""
    from worker.planning.points import scan_points
    from worker.planning.scan import scan
    from worker.planning.scan_runs import last_finished_before

    runtime = app.ready()
    now = datetime.now(UTC)
    since = last_finished_before(runtime.factory, today or now.astimezone(runtime.settings.tz).date())
    report = scan(runtime.factory, runtime.policy, runtime.settings.tz, today=today, now=now, dry_run=dry_run,
                  full=full)
    # Points (积分) touches: 60 and 30 days before the points expire, when the holder can act.
    report.enqueued.extend(scan_points(runtime.factory, runtime.settings.tz, today=today, now=now, dry_run=dry_run,
                                       policy=runtime.policy, since=since))
    log.info("scan.finished", scan_date=report.scan_date.isoformat(), holders=report.holders_seen,
             enqueued=len(report.enqueued), dry_run=dry_run, seconds=round(report.seconds, 3))
    if as_json:
        for item in report.enqueued:
            json_line(item.as_json())
    else:
        verb = "would enqueue" if dry_run else "enqueued"
        if report.replanned is not None:
            out(f"re-planned all {report.replanned} holders' reminder days with the current policy")
        out(f"scanned {report.holders_seen} holders for {report.scan_date}: {verb} {len(report.enqueued)}")
        for item in report.enqueued:
            out(f"  {item.team}/{item.external_id}\t{item.stage} {item.touch_day:+d}\t{item.channel}\t"
                 f"expires {item.expires_on} ({item.days_left} days left)")


@cli.command("dispatch")
@click.option("--once", is_flag=True, required=True, help="Send what is due now, then exit.")
@click.option("--now", "now", callback=parse_moment, help="Act as if it were this moment (ISO 8601).")
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
@click.option("--role", type=click.Choice(["all", "scheduler", "dispatcher"]), default="all", show_default=True,
              help="scheduler: daily scan, scan watch and HR digest; dispatcher: sending only; all: both. "
                   "Run one scheduler and any number of dispatchers.")
@click.option("--serve", "serve", is_flag=True,
              help="Also serve the HTTP app (HR pages, API, webhooks) in this process, as `make run` does.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="With --serve.")
@pass_app
def run_command(app: App, role: str, serve: bool, host: str, port: int) -> None:
    """Run the daemon: daily scan plus continuous dispatch, until SIGTERM/SIGINT; with --serve,
    the HR pages (/web/), the API (/v1, documented at /docs) and the webhooks too."""
    from worker.ops.daemon import Daemon

    runtime = app.ready()
    runtime.require_secrets()
    server = _http_in_background(runtime, host, port) if serve else None
    try:
        code = Daemon(runtime, role=role).run()  # type: ignore[arg-type]  # click.Choice checked it
    finally:
        if server is not None:
            server.should_exit = True  # the daemon stopped warmly: so does the HTTP app
    sys.exit(code)


def _http_in_background(runtime: Any, host: str, port: int) -> Any:
    """uvicorn on a thread of its own (it leaves signals to the main thread, the daemon's)."""
    import threading

    import uvicorn

    from worker.http.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host=host, port=port, log_config=None,
                                           access_log=False))
    threading.Thread(target=server.run, name="http", daemon=True).start()
    click.echo(f"HR pages: http://{host}:{port}/web/  API docs: http://{host}:{port}/docs", err=True)
    return server


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@pass_app
def serve_command(app: App, host: str, port: int) -> None:
    """Serve the HTTP app: the HR pages (/web/), the HR API (/v1, documented at /docs), the
    providers' webhooks (/webhooks/...), /healthz and /metrics."""
    import uvicorn

    from worker.http.app import create_app

    runtime = app.ready()
    runtime.require_secrets()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to whatever
    # handler was there before it: with this one, a requested stop exits 0 like the daemon.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: log.info("serve.stopped"))
    # log_config=None keeps uvicorn's loggers on our structlog handler (JSON on stderr, masked);
    # the app writes its own access log (worker.http.api.limits.AccessLog: no query strings).
    click.echo(f"HR pages: http://{host}:{port}/web/  API docs: http://{host}:{port}/docs", err=True)
    uvicorn.run(create_app(runtime), host=host, port=port, log_config=None, access_log=False)


# -- entry point ------------------------------------------------------------------------------
def _run_config_check() -> int:
    code = cli.main(args=["config", "check"], prog_name="permit-worker", standalone_mode=False)
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int) -> int:
    click.echo(f"permit-worker: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes one line on stderr and an exit status."""
    try:
        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
    except ValidationError as exc:
        args = sys.argv[1:] if argv is None else argv
        if args[:2] == ["config", "check"]:  # its job is to list every such problem
            configure_logging("WARNING", "auto")
            return _run_config_check()
        first = exc.errors()[0]
        field = "PERMIT_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        return _fail(f"{field}: {first['msg']}", 2)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        code = cli.main(args=argv, prog_name="permit-worker", standalone_mode=False)
        # Without standalone mode click returns (not raises) a command's Exit status.
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 1)
    except click.UsageError as exc:
        hint = f" (see: permit-worker {exc.ctx.command_path.split(' ', 1)[-1]} --help)" if exc.ctx else ""
        return _fail(exc.format_message() + hint, 2)
    except RosterError as exc:
        # A file with Chinese headers hears back in Chinese (worker/cli/roster_files.py).
        for line in getattr(exc, "lines", None) or [str(error) for error in exc.errors]:
            click.echo(line, err=True)
        if exc.truncated:  # thousands of bad rows: the first ones in full, then one line of counts
            click.echo(exc.summary_line(), err=True)
        if getattr(exc, "lang", "en") == "zh":
            return _fail(f"共 {exc.total} 处错误，未导入任何数据", 2)
        return _fail(f"{exc.total} bad row(s); nothing was imported", 2)
    except (BadInput, BackupError, PolicyError, NotifierConfigError, FingerprintKeyError) as exc:
        return _fail(str(exc), 2)
    except SchemaOutOfDate as exc:
        return _fail(str(exc), 1)
    except SQLAlchemyError as exc:
        log.debug("database_error", exc_info=True)
        return _fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}", 1)
    except Exception as exc:  # the last line of defence: no tracebacks for users
        # The traceback is for developers: it goes to the log only at PERMIT_LOG_LEVEL=DEBUG.
        log.debug("unexpected_error", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
