"""Twilio webhooks: delivery status callbacks and inbound SMS replies.

Every request must carry a valid X-Twilio-Signature, computed by Twilio over the public URL it
called and the form fields, with the account's auth token; anything else gets 403 and changes
nothing. Behind a proxy, set PERMIT_PUBLIC_URL so the URL checked is the one Twilio used.
"""

from __future__ import annotations

import os

import structlog
from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator

from worker.delivery.inbound import apply_status_callback, handle_sms_reply
from worker.ops.runtime import Runtime
from worker.store.db import unit_of_work
from worker.store.models import utcnow

log = structlog.get_logger("worker.webhooks")

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _forbidden(reason: str) -> Response:
    log.warning("webhook.rejected", reason=reason)
    return Response(status_code=403, content='{"error": "invalid or missing X-Twilio-Signature"}',
                    media_type="application/json")


def webhook_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    auth_token = os.environ.get("TWILIO_AUTH_TOKEN") or None
    public_url = (runtime.settings.public_url or "").rstrip("/") or None
    validator = RequestValidator(auth_token) if auth_token else None
    if validator is None:
        log.warning("webhook.disabled", reason="TWILIO_AUTH_TOKEN is not set: every webhook request gets 403")

    async def verified_form(request: Request) -> dict[str, str] | None:
        signature = request.headers.get("X-Twilio-Signature")
        if validator is None or not signature:
            return None
        form = {k: str(v) for k, v in (await request.form()).items()}
        url = f"{public_url}{request.url.path}" if public_url else str(request.url)
        if public_url and request.url.query:
            url += f"?{request.url.query}"
        return form if validator.validate(url, form, signature) else None

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_callback(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return _forbidden("status callback signature")
        sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
        if not sid or not status:
            return Response(status_code=400, content='{"error": "MessageSid and MessageStatus are required"}',
                            media_type="application/json")
        with unit_of_work(runtime.factory) as session:
            outcome = apply_status_callback(session, sid, status, form.get("ErrorCode") or None, utcnow(),
                                            max_attempts=runtime.settings.max_attempts)
        log.info("webhook.status", message_sid=sid, status=status, error_code=form.get("ErrorCode"), outcome=outcome)
        return Response(status_code=204)

    @router.post(INBOUND_PATH, include_in_schema=False)
    async def inbound_sms(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return _forbidden("inbound signature")
        with unit_of_work(runtime.factory) as session:
            outcome = handle_sms_reply(session, form.get("From", ""), form.get("Body", ""), utcnow(),
                                       message_id=form.get("MessageSid") or None)
        log.info("webhook.inbound", message_sid=form.get("MessageSid"), outcome=outcome)
        # An empty TwiML answer: Twilio sends nothing back (an auto-reply would cost a message).
        return Response(content=EMPTY_TWIML, media_type="text/xml")

    return router
