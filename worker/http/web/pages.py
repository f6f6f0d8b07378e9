"""What every /web handler needs: the runtime, the session codec, the signed-in team."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from worker.http.api.auth import RequestRateLimiter
from worker.http.web.preview import UploadStore
from worker.http.web.render import lang_of, render
from worker.http.web.session import (
    Forbidden,
    SessionCodec,
    SignInRequired,
    WebSession,
    check_csrf,
    is_revoked,
)
from worker.ops.runtime import Runtime
from worker.registry.accounts import RANK, live_session
from worker.registry.audit import token_actor
from worker.store.db import unit_of_work
from worker.store.models import ApiToken, Team


@dataclass(frozen=True)
class TeamInfo:
    """The signed-in team, and who is signed in: their role and how the audit trail names them."""

    id: int
    slug: str
    name: str
    role: str = "editor"  # viewer | editor | admin (accounts.ROLES)
    actor: str = "system"
    user_id: int | None = None

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class Pages:
    def __init__(self, runtime: Runtime, store: UploadStore) -> None:
        self.runtime = runtime
        self.codec = SessionCodec(runtime)
        self.store = store
        # "Send a test message" (routes_team.py): five at once, then one a minute, per team:
        # enough to try each channel, not a way to send SMS to anyone at the team's cost.
        self.test_messages = RequestRateLimiter(per_minute=1, burst=5)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def session(self, request: Request) -> WebSession:
        """This request's session (a fresh anonymous one if none); WebRoute writes it back."""
        ws = getattr(request.state, "web_session", None)
        if ws is None:
            ws = self.codec.load(request)
            request.state.web_session = ws
        return ws

    def team(self, request: Request) -> tuple[WebSession, TeamInfo]:
        """The signed-in team, checked against the database on every request: a deleted team, a
        rotated token or a sign-out ends the session."""
        ws = self.session(request)
        if ws.team_id is None:
            raise SignInRequired()
        info: TeamInfo | None = None
        with unit_of_work(self.runtime.factory) as session:
            team = session.get(Team, ws.team_id)
            if team is not None and not is_revoked(session, ws.sid):
                if ws.user_id is not None:  # a named user: their session must still be on file
                    user = live_session(session, ws.sid, ws.user_id)
                    if user is not None and user.team_id == team.id:
                        info = TeamInfo(team.id, team.slug, team.name, user.role, user.email, user.id)
                elif ws.token_id is not None:  # an API token: as it is now (not rotated, not revoked)
                    token = session.get(ApiToken, ws.token_id)
                    if token is not None and token.team_id == team.id and \
                            hmac.compare_digest(self.codec.tag(token), ws.tag or ""):
                        info = TeamInfo(team.id, team.slug, team.name, "editor" if token.scope == "write" else "viewer",
                                        token_actor(token.name))
        if info is None:
            request.state.web_session = WebSession(dirty=True)  # drop the stale cookie
            raise SignInRequired()
        return ws, info

    def check_csrf(self, request: Request, ws: WebSession, csrf: str | None) -> None:
        check_csrf(request, ws, csrf, self.runtime.settings.public_url)

    def team_as(self, request: Request, role: str) -> tuple[WebSession, TeamInfo]:
        """The signed-in team, for a page only `role` and above may see (else Forbidden)."""
        ws, team = self.team(request)
        if not team.may(role):
            raise Forbidden(role)
        return ws, team

    def posted(self, request: Request, csrf: str | None, role: str = "editor") -> tuple[WebSession, TeamInfo]:
        """A signed-in form post: team first (an expired session goes to sign-in), then CSRF,
        then the role (every change needs at least an editor; users and tokens an admin)."""
        ws, team = self.team(request)
        self.check_csrf(request, ws, csrf)
        if not team.may(role):
            raise Forbidden(role)
        return ws, team

    def page(self, request: Request, name: str, ws: WebSession, team: TeamInfo | None = None, status: int = 200,
             **context: Any) -> HTMLResponse:
        return render(request, lang_of(request), name, status=status, ws=ws, team=team, **context)


def get_pages(request: Request) -> Pages:
    """The app's Pages (set by install_web), for the routes' `Depends`."""
    pages: Pages = request.app.state.web_pages
    return pages


WebPages = Annotated[Pages, Depends(get_pages)]
