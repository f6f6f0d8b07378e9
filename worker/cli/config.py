"""`permit-worker config check`: what the worker would run with, and what stops it."""

from __future__ import annotations

import click

from worker.cli.common import out
from worker.ops.config_check import check_config


@click.group()
def config() -> None:
    """The configuration read from the environment."""


@config.command("check")
def config_check() -> None:
    """Print the effective configuration (secrets masked) and every problem; exit 2 if any."""
    report = check_config()
    for name, value in report.effective:
        out(f"{name}={value}")
    for problem in report.problems:
        click.echo(f"permit-worker: problem: {problem}", err=True)
    if report.problems:
        raise click.exceptions.Exit(2)
    out("# configuration ok")


def register(cli: click.Group) -> None:
    cli.add_command(config)
