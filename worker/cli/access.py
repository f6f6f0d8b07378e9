"""`users`, `tokens` and `audit`: named HR accounts, scoped API tokens and the audit trail."""

from __future__ import annotations

import json

import click

from worker.cli.common import App, cli_actor, json_line, out, pass_app
from worker.ops.links import link_url, send_invitation
from worker.registry import accounts, audit, tokens
from worker.registry import records as registry
from worker.store.db import unit_of_work


def register(cli: click.Group) -> None:
    cli.add_command(users)
    cli.add_command(tokens_group)
    cli.add_command(audit_command)
    cli.add_command(prune_command)


# -- users ------------------------------------------------------------------------------------
@click.group()
def users() -> None:
    """Named HR accounts: viewer (reads), editor (changes holders, imports), admin (users, tokens)."""


@users.command("add")
@click.argument("email")
@click.option("--team", "team_slug", required=True)
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@pass_app
def users_add(app: App, email: str, team_slug: str, role: str) -> None:
    """Invite a person: prints a one-time link (valid 72 hours) where they set their password,
    and emails it when email is configured."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        team = registry.get_team(session, team_slug)
        user = accounts.add_user(session, team, email, role, cli_actor())
        secret = accounts.issue_link(session, user, "invite")
        address, team_name = user.email, team.name
    url = link_url(runtime, f"/web/invite/{secret}")
    sent = send_invitation(runtime, address, team_name, role, url)
    out(f"invited {address} to {team_slug} as {role}; invitation link (valid 72 hours, once): {url}"
        + ("; emailed" if sent else ""))


@users.command("reset-link")
@click.argument("email")
@click.option("--team", "team_slug", required=True)
@pass_app
def users_reset_link(app: App, email: str, team_slug: str) -> None:
    """Print a one-time password-reset link for a user (valid 2 hours)."""
    runtime = app.ready()
    with unit_of_work(runtime.factory) as session:
        user = accounts.get_user(session, registry.get_team(session, team_slug), email)
        secret = accounts.issue_link(session, user, "reset")
    out(f"password reset link for {email.strip().lower()} (valid 2 hours, once): "
        f"{link_url(runtime, f'/web/reset/{secret}')}")


@users.command("list")
@click.option("--team", "team_slug", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def users_list(app: App, team_slug: str, as_json: bool) -> None:
    with unit_of_work(app.ready().factory) as session:
        found = accounts.users_of(session, registry.get_team(session, team_slug))
        rows = [{"email": u.email, "role": u.role, "active": u.password_hash is not None,
                 "sessions": len(accounts.sessions_of(session, u)), "created_by": u.created_by,
                 "created_at": u.created_at.isoformat(),
                 "last_sign_in_at": u.last_sign_in_at.isoformat() if u.last_sign_in_at else None} for u in found]
    for row in rows:
        if as_json:
            json_line(row)
        else:
            state = "active" if row["active"] else "invited"
            out(f"{row['email']}  {row['role']}  {state}  {row['sessions']} session(s)  "
                f"last sign-in {row['last_sign_in_at'] or 'never'}")
    if not as_json:
        out(f"# {len(rows)} user(s)")


@users.command("remove")
@click.argument("email")
@click.option("--team", "team_slug", required=True)
@pass_app
def users_remove(app: App, email: str, team_slug: str) -> None:
    """Remove a user: their sessions end at once."""
    with unit_of_work(app.ready().factory) as session:
        user = accounts.get_user(session, registry.get_team(session, team_slug), email)
        accounts.remove_user(session, user, cli_actor())
    out(f"removed {email.strip().lower()} from {team_slug}; their sessions are ended")


# -- tokens -----------------------------------------------------------------------------------
@click.group("tokens")
def tokens_group() -> None:
    """Named API tokens: read (GET only) or write."""


@tokens_group.command("create")
@click.option("--team", "team_slug", required=True)
@click.option("--name", required=True)
@click.option("--scope", type=click.Choice(tokens.SCOPES), required=True)
@pass_app
def tokens_create(app: App, team_slug: str, name: str, scope: str) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    with unit_of_work(app.ready().factory) as session:
        _, secret = tokens.create_token(session, registry.get_team(session, team_slug), name, scope, cli_actor())
    out(secret)


@tokens_group.command("list")
@click.option("--team", "team_slug", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def tokens_list(app: App, team_slug: str, as_json: bool) -> None:
    with unit_of_work(app.ready().factory) as session:
        rows = [{"name": t.name, "scope": t.scope, "created_by": t.created_by, "created_at": t.created_at.isoformat(),
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None}
                for t in tokens.tokens_of(session, registry.get_team(session, team_slug))]
    for row in rows:
        if as_json:
            json_line(row)
        else:
            out(f"{row['name']}  {row['scope']}  created {row['created_at']} by {row['created_by']}  "
                f"last used {row['last_used_at'] or 'never'}")


@tokens_group.command("revoke")
@click.argument("name")
@click.option("--team", "team_slug", required=True)
@pass_app
def tokens_revoke(app: App, name: str, team_slug: str) -> None:
    """Revoke a token: requests with it get 401, web sessions signed in with it end."""
    with unit_of_work(app.ready().factory) as session:
        tokens.revoke_token(session, registry.get_team(session, team_slug), name, cli_actor())
    out(f"revoked token {name} of {team_slug}")


# -- audit ------------------------------------------------------------------------------------
@click.command("audit")
@click.option("--team", "team_slug", required=True)
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One object per line, as GET /v1/audit's entries.")
@pass_app
def audit_command(app: App, team_slug: str, limit: int, as_json: bool) -> None:
    """The team's audit trail, newest first: who changed what, when."""
    with unit_of_work(app.ready().factory) as session:
        found = audit.entries(session, registry.get_team(session, team_slug).id, limit=limit)
    for entry in found:
        if as_json:
            json_line(entry.as_json())
        else:
            changes = json.dumps(entry.changes, ensure_ascii=False) if entry.changes else ""
            out(f"{entry.at.isoformat(timespec='seconds')}  {entry.actor}  {entry.action}"
                + (f"  {entry.holder}" if entry.holder else "") + (f"  {changes}" if changes else ""))


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@pass_app
def prune_command(app: App, dry_run: bool) -> None:
    """Delete what is past its retention (PERMIT_*_RETENTION_DAYS), with counts per table; the
    daemon does the same every night at 03:30. Also clears unconfirmed roster uploads."""
    from worker.http.web.preview import UploadStore
    from worker.ops.retention import prune

    runtime = app.ready()
    pruned = prune(runtime.factory, runtime.settings, dry_run=dry_run)
    uploads = UploadStore().purge(dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for p in pruned:
        out(f"{p.table}: {verb} {p.rows}")
    out(f"roster uploads awaiting confirmation: {verb} {uploads}")
