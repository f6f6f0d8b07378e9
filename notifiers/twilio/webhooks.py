"""Twilio's webhooks: delivery status callbacks and inbound SMS replies.

Every request must carry a valid X-Twilio-Signature, computed by Twilio over the public URL it
called and the form fields, with the account's auth token; anything else gets 403 and changes
nothing. Behind a proxy, set PERMIT_PUBLIC_URL so the URL checked is the one Twilio used.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator

from notifiers.base import InboundSink, sms_backend_selected
from notifiers.twilio.receipts import receipt_from, reply_from

log = structlog.get_logger("worker.webhooks")

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _json(status: int, error: str) -> Response:
    return Response(status_code=status, content=f'{{"error": "{error}"}}', media_type="application/json")


def webhook_router(sink: InboundSink, env: Mapping[str, str], public_url: str | None) -> APIRouter:
    """The routes Twilio calls. `env` holds TWILIO_AUTH_TOKEN (from the settings' environment);
    without it every request is refused."""
    router = APIRouter()
    auth_token = env.get("TWILIO_AUTH_TOKEN") or None
    base_url = (public_url or "").rstrip("/") or None
    validator = RequestValidator(auth_token) if auth_token else None
    if validator is None and sms_backend_selected(env, "twilio"):
        log.warning("webhook.disabled", reason="TWILIO_AUTH_TOKEN is not set: every webhook request gets 403")

    async def verified_form(request: Request) -> dict[str, str] | None:
        signature = request.headers.get("X-Twilio-Signature")
        if validator is None or not signature:
            return None
        form = {k: str(v) for k, v in (await request.form()).items()}
        url = f"{base_url}{request.url.path}" if base_url else str(request.url)
        if base_url and request.url.query:
            url += f"?{request.url.query}"
        return form if validator.validate(url, form, signature) else None

    async def signed(request: Request, what: str) -> dict[str, str] | Response:
        form = await verified_form(request)
        if form is None:
            log.warning("webhook.rejected", reason=f"{what} signature")
            return _json(403, "invalid or missing X-Twilio-Signature")
        return form

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_callback(request: Request) -> Response:
        form = await signed(request, "status callback")
        if isinstance(form, Response):
            return form
        receipt = receipt_from(form)
        if receipt is None:
            return _json(400, "MessageSid and MessageStatus are required")
        outcome = sink.receipt(receipt)
        log.info("webhook.status", message_sid=receipt.message_id, status=receipt.status,
                 error_code=receipt.error_code, outcome=outcome)
        return Response(status_code=204)

    @router.post(INBOUND_PATH, include_in_schema=False)
    async def inbound_sms(request: Request) -> Response:
        form = await signed(request, "inbound")
        if isinstance(form, Response):
            return form
        reply = reply_from(form)
        outcome = sink.reply(reply)
        log.info("webhook.inbound", message_sid=reply.message_id, outcome=outcome)
        # An empty TwiML answer: Twilio sends nothing back (an auto-reply would cost a message).
        return Response(content=EMPTY_TWIML, media_type="text/xml")

    return router
