"""`permit-worker sms templates`: what to submit for approval, and what would be refused."""

from __future__ import annotations

import click

from schedules.sms_check import missing_ids, problems, submissions
from schedules.sms_templates import TEMPLATE_PROVIDERS, load_sms_templates
from worker.cli.common import App, out, pass_app

_SIGN_VARIABLE = {"aliyun": "PERMIT_ALIYUN_SMS_SIGN_NAME", "tencent": "PERMIT_TENCENT_SMS_SIGN_NAME"}


@click.group()
def sms() -> None:
    """SMS templates and signatures."""


@sms.command("templates")
@click.option("--provider", type=click.Choice(TEMPLATE_PROVIDERS), default=None,
              help="Show what to file with this provider (its signature counted in every length).")
@pass_app
def sms_templates(app: App, provider: str | None) -> None:
    """Print every approved-template text with a sample at its longest and its length in
    segments; exit 2 with one line per problem (a link, over 2 segments, a parameter the worker
    cannot fill)."""
    settings = app.runtime.settings
    tset = load_sms_templates(settings.sms_templates)
    env_sign = (settings.environ.get(_SIGN_VARIABLE.get(provider or "", ""), "") or "").strip() or None
    sign_name = env_sign or (tset.signature if provider else None)
    out(f"# templates: {tset.source}")
    if provider:
        out(f"signature (签名): {sign_name}" + ("" if env_sign else f" (the file's; set {_SIGN_VARIABLE[provider]})"))
        out("template type (模板类型): 通知 / notification")
    for sub in submissions(tset, provider, sign_name):
        t = sub.template
        ident = t.ids.get(provider, "not yet approved: write its id into the file") if provider else ""
        out("")
        out(f"[{t.kind}] {t.locale}" + (f"  {provider}: {ident}" if provider else ""))
        out(f"  text:       {t.text}")
        out(f"  parameters: {', '.join(t.params) or 'none'}")
        out(f"  sample:     {sub.sample}")
        out(f"  length:     {sub.characters} characters, {sub.segments} segment(s), signature counted")
    if provider:
        pending = missing_ids(tset, provider)
        if pending:
            out("")
            out(f"# {len(pending)} template(s) have no {provider} id yet; until they do, those kinds go out as "
                "`fallback`, which needs one before the worker starts")
    found = problems(tset, provider, sign_name)
    for problem in found:
        click.echo(f"permit-worker: {problem}", err=True)
    if found:
        raise click.exceptions.Exit(2)


def register(cli: click.Group) -> None:
    cli.add_command(sms)
