"""Tencent's pushes: SMS status reports and holders' replies, as HTTP routes of the worker.

Tencent signs neither push, so each callback URL configured in the console carries a secret:
`https://<public>/webhooks/tencent/status?token=<PERMIT_TENCENT_CALLBACK_TOKEN>` (and .../reply).
A wrong or missing token gets 403 and changes nothing; without the variable every request does.
Bodies are JSON arrays (one push may carry several items); a single object is accepted too. A
body that is not JSON, or any item that is not a well-formed report or reply, gets 400 and
nothing of it is applied. Success is answered as Tencent's docs require:
{"result": 0, "errmsg": "OK"} (anything else makes Tencent push again).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, Request, Response

from notifiers.base import InboundSink, sms_backend_selected
from notifiers.tencent.receipts import receipt_from, reply_from

log = structlog.get_logger("worker.webhooks")

STATUS_PATH = "/webhooks/tencent/status"
REPLY_PATH = "/webhooks/tencent/reply"
TOKEN_VARIABLE = "PERMIT_TENCENT_CALLBACK_TOKEN"
OK_BODY = {"result": 0, "errmsg": "OK"}

T = TypeVar("T")


def _answer(status: int, body: Mapping[str, Any]) -> Response:
    return Response(status_code=status, content=json.dumps(body, ensure_ascii=False), media_type="application/json")


def _refuse(status: int, error: str) -> Response:
    return _answer(status, {"result": 1, "errmsg": error})


def _parse_all(raw: bytes, parse: Callable[[Mapping[str, Any]], T | None]) -> list[T] | None:
    """Every item of a JSON array (or one object) parsed; None when any of them is not."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    items = body if isinstance(body, list) else [body]
    parsed = [parse(item) if isinstance(item, dict) else None for item in items]
    return None if any(item is None for item in parsed) else [item for item in parsed if item is not None]


def webhook_router(sink: InboundSink, env: Mapping[str, str], public_url: str | None) -> APIRouter:
    """The routes Tencent calls. `env` holds PERMIT_TENCENT_CALLBACK_TOKEN; without it every
    request is refused. `public_url` is not needed: the token does not depend on the URL."""
    router = APIRouter()
    expected = (env.get(TOKEN_VARIABLE) or "").strip().encode()
    if not expected and sms_backend_selected(env, "tencent"):
        log.warning("webhook.disabled", provider="tencent",
                    reason=f"{TOKEN_VARIABLE} is not set: every Tencent webhook request gets 403")

    def authorized(request: Request) -> bool:
        given = request.query_params.get("token", "").encode()
        return bool(expected) and hmac.compare_digest(given, expected)

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_report(request: Request) -> Response:
        if not authorized(request):
            log.warning("webhook.rejected", provider="tencent", reason="status report token")
            return _refuse(403, "invalid or missing token")
        receipts = _parse_all(await request.body(), receipt_from)
        if receipts is None:
            return _refuse(400, "expected a JSON array of status reports with sid and report_status")
        for receipt in receipts:
            outcome = sink.receipt(receipt)
            log.info("webhook.status", provider="tencent", message_id=receipt.message_id, status=receipt.status,
                     error_code=receipt.error_code, outcome=outcome)
        return _answer(200, OK_BODY)

    @router.post(REPLY_PATH, include_in_schema=False)
    async def reply_push(request: Request) -> Response:
        if not authorized(request):
            log.warning("webhook.rejected", provider="tencent", reason="reply token")
            return _refuse(403, "invalid or missing token")
        replies = _parse_all(await request.body(), reply_from)
        if replies is None:
            return _refuse(400, "expected a JSON reply (or an array of them) with mobile and text")
        for reply in replies:
            outcome = sink.reply(reply)
            log.info("webhook.reply", provider="tencent", message_id=reply.message_id, outcome=outcome)
        return _answer(200, OK_BODY)

    return router
