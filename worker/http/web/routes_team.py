"""The team page: the channel order reminders follow, which backend serves each channel on this
worker, and "send a test message" (the CLI's `teams test-message`, the same code), so HR can
check a channel before the first real reminder and see what the provider answered.

Sending costs money and reaches a real phone, so a team gets a few tests and then one a minute
(per process), and the address is masked in what the page says back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from notifiers.base import NotifierConfigError
from worker.delivery.test_message import send_test
from worker.http.web.i18n import translate
from worker.http.web.pages import WebPages
from worker.http.web.render import WebRoute, lang_of, redirect
from worker.planning.evaluation import team_channels
from worker.registry.records import BadInput
from worker.store.db import unit_of_work
from worker.store.models import Team
from worker.store.privacy import mask_text

router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)


@router.get("/team")
def team_page(request: Request, pages: WebPages) -> Response:
    ws, team = pages.team(request)
    settings = pages.runtime.settings
    with unit_of_work(pages.runtime.factory) as session:
        row = session.get(Team, team.id)
        order = team_channels(row.channels if row else None) or pages.runtime.policy.channels
    backends = {"sms": settings.sms_backend, "email": settings.email_backend,
                "wecom": "wecom" if settings.wecom_enabled else None}
    return pages.page(request, "team.html", ws, team, order=order, backends=backends)


@router.post("/team/test-message")
def test_message(request: Request, pages: WebPages, csrf: Annotated[str, Form(max_length=100)] = "",
                 to: Annotated[str, Form(max_length=320)] = "") -> Response:
    ws, team = pages.posted(request, csrf)
    lang = lang_of(request)
    if pages.test_messages.check(team.id) > 0:
        ws.add_flash("error", translate(lang, "team.test_limited"))
        return redirect("/web/team")
    runtime = pages.runtime
    try:
        sent = send_test(runtime.notifiers(), to, team.name, runtime.sms_templates,
                         datetime.now(runtime.settings.tz).date())
    except BadInput as exc:  # not an address, or no backend for its channel
        ws.add_flash("error", translate(lang, "team.test_bad", why=str(exc)))
        return redirect("/web/team")
    except NotifierConfigError as exc:  # a backend selected but misconfigured: say which setting
        ws.add_flash("error", translate(lang, "team.test_config", why=str(exc)))
        return redirect("/web/team")
    result = sent.result
    answer = result.status.value + (f" (id {result.provider_message_id})" if result.provider_message_id else "") \
        + (f": {mask_text(result.error)}" if result.error else "") \
        + (f" [code {result.error_code}]" if result.error_code else "")
    key = "team.test_sent" if result.status.value == "sent" else "team.test_failed"
    ws.add_flash("ok" if key == "team.test_sent" else "error",
                 translate(lang, key, channel=sent.channel, to=mask_text(sent.to), notifier=sent.notifier,
                           answer=answer))
    return redirect("/web/team")
