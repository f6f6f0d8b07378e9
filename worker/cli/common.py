"""What every CLI module shares: the lazily built runtime, output helpers, argument parsers."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import click

from worker.ops.runtime import Runtime
from worker.ops.settings import Settings


def cli_actor() -> str:
    """Who the audit trail names for a change made at the shell: the operator's login."""
    import getpass

    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container running as a bare uid)
        return "cli"


def out(text: str) -> None:
    """Command output goes to stdout; logs never do."""
    click.echo(text)


def json_line(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from exc


def parse_roster_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    """A date as a roster cell takes it: 2027-12-08 or 2027/12/8."""
    if value is None:
        return None
    from worker.registry.roster import parse_date

    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc} (or YYYY/M/D)") from None


def parse_moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date-time (e.g. 2026-12-01T10:00:00+08:00)") from exc


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
