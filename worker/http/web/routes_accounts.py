"""Signing in and out, one-time links (invitation, password reset) and one's own sessions.

A person signs in with their email and password; a team's API token still signs in too (read:
viewer, write: editor), for teams that have no accounts yet. Every failure looks the same, and
sign-in is throttled per account and per address (accounts.throttled).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import func, select

from worker.http.web.i18n import translate
from worker.http.web.pages import Pages, WebPages
from worker.http.web.render import WebRoute, lang_of, redirect
from worker.http.web.routes import local
from worker.http.web.session import WebSession, revoke
from worker.ops.links import link_url, send_reset
from worker.registry import accounts
from worker.registry.records import BadInput
from worker.registry.tokens import find_token
from worker.store.db import unit_of_work
from worker.store.models import SignInFailure, User

_Field = Annotated[str, Form(max_length=320)]
_Password = Annotated[str, Form(max_length=400)]

router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_form(request: Request, pages: WebPages, next: str | None = None) -> Response:
    ws = pages.session(request)
    if ws.signed_in():
        return redirect(local(next))
    return pages.page(request, "login.html", ws, next=local(next))


@router.post("/login")
def login(request: Request, pages: WebPages, token: Annotated[str, Form(max_length=200)] = "",
          email: _Field = "", password: _Password = "", csrf: Annotated[str, Form(max_length=100)] = "",
          next: Annotated[str, Form(max_length=2000)] = "/web/") -> Response:
    ws = pages.session(request)
    pages.check_csrf(request, ws, csrf)  # login CSRF: nobody may sign a browser into their team
    fresh: WebSession | None = None
    error = "login.bad"
    with unit_of_work(pages.runtime.factory) as session:
        if token.strip():
            row = find_token(session, token.strip())
            fresh = pages.codec.sign_in(row) if row else None
        elif email.strip():
            if accounts.throttled(session, email, _address(request)):
                error = "login.throttled"
            else:
                user = accounts.authenticate(session, email, password, _address(request))
                if user is not None:
                    fresh = pages.codec.sign_in_user(user)
                    accounts.open_session(session, user, fresh.sid, request.headers.get("user-agent", ""))
                else:
                    error = "login.bad_password"
        session.commit()  # failures are counted even when sign-in fails
    if fresh is None:
        return pages.page(request, "login.html", ws, status=401, error=error, next=local(next),
                          email=email.strip())
    request.state.web_session = fresh
    return redirect(local(next))


@router.post("/logout")
def logout(request: Request, pages: WebPages, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    ws = pages.session(request)
    if ws.signed_in():
        pages.check_csrf(request, ws, csrf)
        with unit_of_work(pages.runtime.factory) as session:
            revoke(session, ws.sid)
            if ws.user_id is not None:
                user = session.get(User, ws.user_id)
                if user is not None:
                    accounts.end_session(session, user, ws.sid)
        pages.store.discard_session(ws.sid)  # uploads left unconfirmed go with the session
    request.state.web_session = None  # nothing to write back: the cookie is deleted
    response = redirect("/web/login?bye=1")
    pages.codec.clear(request, response)
    return response


# -- one-time links ---------------------------------------------------------------------------
def _link_page(pages: Pages, request: Request, secret: str, purpose: str, status: int = 200,
               error: str | None = None) -> Response:
    ws = pages.session(request)
    with unit_of_work(pages.runtime.factory) as session:
        found = accounts.link_user(session, secret)
        email = found[1].email if found and found[0].purpose == purpose else None
    if email is None:
        return pages.page(request, "password.html", ws, status=404, gone=True, purpose=purpose)
    return pages.page(request, "password.html", ws, status=status, purpose=purpose, email=email, secret=secret,
                      error=error, min_length=accounts.MIN_PASSWORD)


def _use_link(pages: Pages, request: Request, secret: str, purpose: str, csrf: str, password: str,
              again: str) -> Response:
    ws = pages.session(request)
    pages.check_csrf(request, ws, csrf)
    if password != again:
        return _link_page(pages, request, secret, purpose, 422, "pw.mismatch")
    try:
        with unit_of_work(pages.runtime.factory) as session:
            found = accounts.link_user(session, secret)
            if found is None or found[0].purpose != purpose:
                raise BadInput("gone", "link_gone")
            user = accounts.use_link(session, secret, password)
            fresh = pages.codec.sign_in_user(user)
            accounts.open_session(session, user, fresh.sid, request.headers.get("user-agent", ""))
    except BadInput as exc:
        return _link_page(pages, request, secret, purpose, 422, f"pw.{exc.code or 'link_gone'}")
    fresh.add_flash("ok", translate(lang_of(request), "flash.password_set"))
    request.state.web_session = fresh
    return redirect("/web/")


@router.get("/invite/{secret}")
def invite_page(request: Request, pages: WebPages, secret: str) -> Response:
    return _link_page(pages, request, secret, "invite")


@router.post("/invite/{secret}")
def invite_set(request: Request, pages: WebPages, secret: str, csrf: _Field = "", password: _Password = "",
               again: _Password = "") -> Response:
    return _use_link(pages, request, secret, "invite", csrf, password, again)


@router.get("/reset")
def forgot_form(request: Request, pages: WebPages) -> Response:
    return pages.page(request, "forgot.html", pages.session(request))


@router.post("/reset")
def forgot(request: Request, pages: WebPages, csrf: _Field = "", email: _Field = "") -> Response:
    """Emails a reset link if the account exists and email is configured; the answer is the
    same either way (nobody learns who has an account), and throttled as sign-in is."""
    ws = pages.session(request)
    pages.check_csrf(request, ws, csrf)
    with unit_of_work(pages.runtime.factory) as session:
        address = email.strip().lower()
        user = session.scalar(select(User).where(User.email == address)) if address else None
        secret = None
        recent = session.scalar(select(func.count()).select_from(SignInFailure).where(
            SignInFailure.key == f"reset:{address}", SignInFailure.at >= datetime.now(UTC) - accounts.WINDOW)) or 0
        if user is not None and recent < 3:  # three links per quarter hour: no mailbox flood
            secret = accounts.issue_link(session, user, "reset")
        session.add(SignInFailure(key=f"reset:{address}"))  # counted for any address, known or not
        session.commit()
    if secret is not None:
        url = link_url(pages.runtime, f"/web/reset/{secret}")
        send_reset(pages.runtime, address, url)
    return pages.page(request, "forgot.html", ws, done=True)


@router.get("/reset/{secret}")
def reset_page(request: Request, pages: WebPages, secret: str) -> Response:
    return _link_page(pages, request, secret, "reset")


@router.post("/reset/{secret}")
def reset_set(request: Request, pages: WebPages, secret: str, csrf: _Field = "", password: _Password = "",
              again: _Password = "") -> Response:
    return _use_link(pages, request, secret, "reset", csrf, password, again)


# -- one's own sessions -----------------------------------------------------------------------
@router.get("/account")
def account_page(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team(request)
    with unit_of_work(pages.runtime.factory) as session:
        user = session.get(User, team.user_id) if team.user_id else None
        sessions = accounts.sessions_of(session, user) if user else []
    return pages.page(request, "account.html", ws, team, sessions=sessions, current=ws.sid)


@router.post("/account/sessions/end")
def end_sessions(request: Request, pages: WebPages, csrf: _Field = "", sid: Annotated[str, Form(max_length=64)] = "",
                 others: Annotated[str, Form(max_length=10)] = "") -> Response:
    ws, team = pages.posted(request, csrf, role="viewer")
    with unit_of_work(pages.runtime.factory) as session:
        user = session.get(User, team.user_id) if team.user_id else None
        if user is not None:
            if others == "yes":
                for row in accounts.sessions_of(session, user):
                    if row.sid != ws.sid:
                        accounts.end_session(session, user, row.sid)
            elif sid:
                accounts.end_session(session, user, sid)
    return redirect("/web/account")
