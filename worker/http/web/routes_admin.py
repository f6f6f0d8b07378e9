"""What an admin manages (users, API tokens) and what everyone may read: the activity page.

Every route checks the role on the server (pages.team_as / pages.posted with a role): a viewer
who crafts a POST gets the 403 page and nothing changes. A new user's invitation link and a new
token are shown once, on the next page, and never stored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response

from worker.http.web.i18n import translate
from worker.http.web.pages import Pages, TeamInfo, WebPages
from worker.http.web.render import WebRoute, lang_of, redirect
from worker.http.web.session import WebSession
from worker.ops.links import link_url, send_invitation, send_reset
from worker.registry import accounts, audit, tokens
from worker.registry.records import BadInput
from worker.store.db import unit_of_work
from worker.store.models import Team

_Field = Annotated[str, Form(max_length=320)]
router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


@router.get("/users")
def users_page(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team_as(request, "admin")
    return _users(pages, request, ws, team)


def _users(pages: Pages, request: Request, ws: WebSession, team: TeamInfo, shown: str | None = None,
           note: str | None = None) -> Response:
    """The users page; `shown` is a one-time link, on this answer only."""
    with unit_of_work(pages.runtime.factory) as session:
        found = [(u, len(accounts.sessions_of(session, u))) for u in
                 accounts.users_of(session, session.get_one(Team, team.id))]
    return pages.page(request, "users.html", ws, team, users=found, roles=accounts.ROLES, shown=shown, note=note)


@router.post("/users/invite")
def invite(request: Request, pages: WebPages, csrf: _Field = "", email: _Field = "",
           role: Annotated[str, Form(max_length=10)] = "viewer") -> Response:
    ws, team = pages.posted(request, csrf, role="admin")
    lang = lang_of(request)
    try:
        with unit_of_work(pages.runtime.factory) as session:
            user = accounts.add_user(session, session.get_one(Team, team.id), email, role, team.actor)
            secret = accounts.issue_link(session, user, "invite")
            address = user.email
    except BadInput as exc:
        ws.add_flash("error", translate(lang, f"err.{exc.code}") if exc.code else str(exc))
        return redirect("/web/users")
    url = link_url(pages.runtime, f"/web/invite/{secret}")
    sent = send_invitation(pages.runtime, address, team.name, role, url)
    # Shown on this answer only, never put in the (signed, not encrypted) session cookie.
    return _users(pages, request, ws, team, shown=translate(lang, "users.invited_sent" if sent else "users.invited",
                                                            email=address, url=url))


@router.post("/users/update")
def update_user(request: Request, pages: WebPages, csrf: _Field = "", email: _Field = "",
                role: Annotated[str, Form(max_length=10)] = "", action: Annotated[str, Form(max_length=16)] = "") \
        -> Response:
    ws, team = pages.posted(request, csrf, role="admin")
    lang = lang_of(request)
    with unit_of_work(pages.runtime.factory) as session:
        user = accounts.get_user(session, session.get_one(Team, team.id), email)  # NotFound: 404
        if action == "remove":
            if user.id == team.user_id:
                ws.add_flash("error", translate(lang, "users.not_self"))
                return redirect("/web/users")
            accounts.remove_user(session, user, team.actor)
            ws.add_flash("ok", translate(lang, "users.removed", email=user.email))
        elif action == "end_sessions":
            n = accounts.end_session(session, user)
            audit.record(session, team.id, team.actor, "user.sessions_ended", changes={"email": user.email, "n": n})
            ws.add_flash("ok", translate(lang, "users.sessions_ended", email=user.email, n=n))
        elif action == "reset":
            # Emailed to the person when email is configured (the admin never sees it); else
            # shown, once, to hand over. Either way the trail says who asked for it.
            secret = accounts.issue_link(session, user, "reset")
            url = link_url(pages.runtime, f"/web/reset/{secret}")
            sent = send_reset(pages.runtime, user.email, url)
            audit.record(session, team.id, team.actor, "user.reset_link_issued",
                         changes={"email": user.email, "emailed": sent})
            return _users(pages, request, ws, team, shown=None if sent else
                          translate(lang, "users.reset_link", email=user.email, url=url),
                          note=translate(lang, "users.reset_emailed", email=user.email) if sent else None)
        elif action == "role" and role in accounts.ROLES:
            if user.id == team.user_id and role != "admin":
                ws.add_flash("error", translate(lang, "users.not_self"))
                return redirect("/web/users")
            accounts.set_role(session, user, role, team.actor)
            ws.add_flash("ok", translate(lang, "users.role_set", email=user.email, role=role))
    return redirect("/web/users")


@router.get("/tokens")
def tokens_page(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team_as(request, "admin")
    with unit_of_work(pages.runtime.factory) as session:
        found = tokens.tokens_of(session, session.get_one(Team, team.id))
    return pages.page(request, "tokens.html", ws, team, tokens=found, scopes=tokens.SCOPES)


@router.post("/tokens/create")
def create_token(request: Request, pages: WebPages, csrf: _Field = "", name: Annotated[str, Form(max_length=64)] = "",
                 scope: Annotated[str, Form(max_length=8)] = "read") -> Response:
    ws, team = pages.posted(request, csrf, role="admin")
    try:
        with unit_of_work(pages.runtime.factory) as session:
            _, secret = tokens.create_token(session, session.get_one(Team, team.id), name.strip(), scope, team.actor)
    except BadInput as exc:
        ws.add_flash("error", str(exc))
        return redirect("/web/tokens")
    with unit_of_work(pages.runtime.factory) as session:  # shown on this answer only, never in the cookie
        found = tokens.tokens_of(session, session.get_one(Team, team.id))
    return pages.page(request, "tokens.html", ws, team, tokens=found, scopes=tokens.SCOPES,
                      shown=translate(lang_of(request), "tokens.created_once", name=name.strip(), token=secret))


@router.post("/tokens/revoke")
def revoke_token(request: Request, pages: WebPages, csrf: _Field = "",
                 name: Annotated[str, Form(max_length=64)] = "") -> Response:
    ws, team = pages.posted(request, csrf, role="admin")
    with unit_of_work(pages.runtime.factory) as session:
        tokens.revoke_token(session, session.get_one(Team, team.id), name, team.actor)  # NotFound: 404
    ws.add_flash("ok", translate(lang_of(request), "tokens.revoked", name=name))
    return redirect("/web/tokens")


@router.get("/activity")
def activity_page(request: Request, pages: WebPages, actor: Annotated[str, Query(max_length=320)] = "",
                  action: Annotated[str, Query(max_length=40)] = "",
                  on: Annotated[str, Query(max_length=10)] = "",
                  before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> Response:
    ws, team = pages.team(request)
    since = until = None
    try:
        day = date.fromisoformat(on) if on else None
    except ValueError:
        day = None
    if day is not None:
        since = datetime.combine(day, time.min, pages.runtime.settings.tz).astimezone(UTC)
        until = since + timedelta(days=1)
    with unit_of_work(pages.runtime.factory) as session:
        found = audit.entries(session, team.id, limit=audit.PAGE + 1, before=before, actor=actor or None,
                              action=action or None, since=since, until=until)
        people = audit.actors(session, team.id)
    return pages.page(request, "activity.html", ws, team, entries=found[:audit.PAGE], people=people,
                      actions=ACTIONS, chosen={"actor": actor, "action": action, "on": on},
                      older=found[audit.PAGE - 1].id if len(found) > audit.PAGE else None)


ACTIONS = ("holder.created", "holder.updated", "holder.renewal_confirmed", "holder.renewal_reported",
           "holder.paused", "holder.resumed", "holder.opted_out", "holder.deleted", "roster.imported",
           "user.added", "user.activated", "user.password_reset", "user.role_changed", "user.removed",
           "user.sessions_ended", "user.reset_link_issued", "token.created", "token.rotated", "token.revoked",
           "team.created", "team.updated")
