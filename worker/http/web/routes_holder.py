"""Holder search and detail, and the three things HR does to one holder: confirm a renewal,
edit contact details, delete. Writes go through the use cases in registry/service.py, as in the API.

A holder is addressed by `?id=<external_id>` rather than a path segment: the team's own ids may
contain "/" or anything else, and a query string carries them intact.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response

from schedules.stages import STAGES
from worker.delivery.rendering import texts_sent
from worker.http.api.convert import notifications_of, roster_row
from worker.http.web.i18n import roster_error, translate
from worker.http.web.pages import Pages, TeamInfo, WebPages
from worker.http.web.render import WebRoute, lang_of, redirect
from worker.http.web.session import WebSession
from worker.http.web.todo import todo_of
from worker.http.web.views import accumulated_years, holder_of, search, view_of
from worker.planning.evaluation import holder_today
from worker.registry import audit, service
from worker.registry.records import BadInput, NotFound
from worker.registry.roster import RosterError
from worker.store.db import unit_of_work

_Text = Annotated[str, Form(max_length=500)]
_Id = Annotated[str, Query(min_length=1, max_length=64)]


def _url(external_id: str) -> str:
    return "/web/holder?" + urlencode({"id": external_id})


router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


def said(lang: str, exc: BadInput) -> str:
    """A use case's refusal in the page's language (its code), else as the CLI says it."""
    return translate(lang, f"err.{exc.code}", **exc.params) if exc.code else str(exc)


def detail(pages: Pages, request: Request, ws: WebSession, team: TeamInfo, external_id: str, status: int = 200,
           errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> Response:
    now = pages.now()
    with unit_of_work(pages.runtime.factory) as session:
        holder = holder_of(session, team.id, external_id)
        if holder is None:
            raise NotFound(external_id)
        today = holder_today(holder, now, pages.runtime.settings.tz)
        context: dict[str, Any] = {
            "h": holder, "view": view_of(holder, pages.runtime, now),
            "todo": todo_of(session, holder, today, pages.runtime, lang_of(request)),
            "years": accumulated_years(holder, today),
            "notes": notifications_of(session, holder), "url": _url(external_id),
            "audit_entries": audit.entries(session, team.id, holder=external_id, limit=50),
            "texts": texts_sent(session, holder, pages.runtime.policy, pages.runtime.sms_templates,
                                pages.runtime.settings.tz, pages.runtime.settings.sms_backend)}
    return pages.page(request, "holder.html", ws, team, status=status, errors=errors or {},
                      values=values or {}, **context)

@router.get("/holders")
def holders_page(request: Request, pages: WebPages, q: Annotated[str, Query(max_length=100)] = "",
                 stage: Annotated[str, Query(max_length=32)] = "",
                 page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    ws, team = pages.team(request)
    with unit_of_work(pages.runtime.factory) as session:
        result = search(session, team.id, pages.runtime, pages.now(), q, stage or None, page)
    return pages.page(request, "holders.html", ws, team, result=result, q=q, stage=stage, stages=STAGES)

@router.get("/holder")
def holder_page(request: Request, pages: WebPages, id: _Id) -> Response:
    ws, team = pages.team(request)
    return detail(pages, request, ws, team, id)

@router.post("/holder/renewal")
def confirm_renewal(request: Request, pages: WebPages, id: _Id, csrf: _Text = "", expires_on: _Text = "") -> Response:
    ws, team = pages.posted(request, csrf)
    lang = lang_of(request)
    with pages.runtime.unit(team.actor) as uow:
        holder = holder_of(uow.session, team.id, id)
        if holder is None:
            raise NotFound(id)
        current = holder.expires_on
        problem: str | None
        try:
            new_expiry = date.fromisoformat(expires_on.strip())
        except ValueError:
            problem = translate(lang, "err.date")
        else:
            # Checked here so HR reads it in their words, not the CLI's "--expires-on" message.
            problem = None if new_expiry > current else translate(lang, "err.renewal_not_later",
                                                                  date=current.isoformat())
        if problem is None:
            service.confirm_renewal(uow, service.team_of(uow, team.id), id, new_expiry)
            uow.commit()
    if problem is not None:
        return detail(pages, request, ws, team, id, 422, {"renewal": problem}, {"expires_on": expires_on})
    ws.add_flash("ok", translate(lang, "flash.renewed", date=new_expiry.isoformat()))
    return redirect(_url(id))

@router.post("/holder/pause")
def pause(request: Request, pages: WebPages, id: _Id, csrf: _Text = "", until: _Text = "",
          reason: _Text = "") -> Response:
    ws, team = pages.posted(request, csrf)
    lang = lang_of(request)
    try:
        day = date.fromisoformat(until.strip())
    except ValueError:
        return detail(pages, request, ws, team, id, 422, {"pause": translate(lang, "err.date")},
                      {"until": until, "reason": reason})
    try:
        with pages.runtime.unit(team.actor) as uow:
            if holder_of(uow.session, team.id, id) is None:
                raise NotFound(id)
            service.pause_holder(uow, service.team_of(uow, team.id), id, day, reason)
            uow.commit()
    except NotFound:
        raise
    except BadInput as exc:  # in the past, too far, a reason that cannot be stored
        return detail(pages, request, ws, team, id, 422, {"pause": said(lang, exc)}, {"until": until, "reason": reason})
    ws.add_flash("ok", translate(lang, "flash.paused", date=day.isoformat()))
    return redirect(_url(id))

@router.post("/holder/resume")
def resume(request: Request, pages: WebPages, id: _Id, csrf: _Text = "") -> Response:
    ws, team = pages.posted(request, csrf)
    try:
        with pages.runtime.unit(team.actor) as uow:
            if holder_of(uow.session, team.id, id) is None:
                raise NotFound(id)
            service.resume_holder(uow, service.team_of(uow, team.id), id)
            uow.handle_events()
            uow.commit()
    except NotFound:
        raise
    except BadInput as exc:  # not paused (a second click, another tab)
        return detail(pages, request, ws, team, id, 422, {"pause": said(lang_of(request), exc)})
    ws.add_flash("ok", translate(lang_of(request), "flash.resumed"))
    return redirect(_url(id))

@router.post("/holder/contact")
def edit_contact(request: Request, pages: WebPages, id: _Id, csrf: _Text = "", name: _Text = "", phone: _Text = "",
                 email: _Text = "", locale: _Text = "zh-CN", wecom_userid: _Text = "") -> Response:
    ws, team = pages.posted(request, csrf)
    lang = lang_of(request)
    values = {"name": name, "phone": phone, "email": email, "locale": locale, "wecom_userid": wecom_userid}
    try:
        with pages.runtime.unit(team.actor) as uow:
            holder = holder_of(uow.session, team.id, id)
            if holder is None:
                raise NotFound(id)
            # The API's path: the same validation as a roster row, then the same import.
            row = roster_row(id, values, holder)
            service.save_holder(uow, service.team_of(uow, team.id), row, pages.runtime.settings.fingerprint_key)
            uow.commit()
    except RosterError as exc:
        errors = {f"contact.{e.column}": roster_error(lang, e.reason) for e in exc.errors}
        return detail(pages, request, ws, team, id, 422, errors, values)
    ws.add_flash("ok", translate(lang, "flash.saved"))
    return redirect(_url(id))

@router.post("/holder/delete")
def delete_holder(request: Request, pages: WebPages, id: _Id, csrf: _Text = "") -> Response:
    ws, team = pages.posted(request, csrf)
    service.erase_holder(pages.runtime.factory, pages.runtime.engine, team.id, id, team.actor)  # NotFound -> 404 page
    ws.add_flash("ok", translate(lang_of(request), "flash.deleted", id=id))
    return redirect("/web/holders")
